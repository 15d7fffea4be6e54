"""Product catalog and procedural product assets (meshes, textures, collision hulls).

Pure numpy / trimesh-free / OpenCV: nothing here imports pybullet; the simulator
consumes the arrays of :class:`ProductAsset`.
"""

from graspsim.assets.catalog import (CATALOG, ProductClass, ProductVariant, class_index, class_names, get_class,
                                     get_variant, variants)
from graspsim.assets.library import ProductAsset, cache_dir, clear_memory_cache, load_product_asset

__all__ = ["CATALOG", "ProductAsset", "ProductClass", "ProductVariant", "cache_dir", "class_index", "class_names",
           "clear_memory_cache", "get_class", "get_variant", "load_product_asset", "variants"]
