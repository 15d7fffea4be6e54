"""A scene plan: everything needed to build a scene, as plain data (JSON round trip).

A plan is sampled from one seeded :class:`numpy.random.Generator` (see
:mod:`graspsim.scenes.sampling`); the simulator builds it, lets it settle, and
rejects it if it does not come to rest or interpenetrates.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ProductPlacement:
    """One product instance.

    ``position_m``: (3,) world position of the product frame's origin (the centre
    of its bounding box). ``quat_xyzw``: orientation of the product frame.
    ``pose_name``: "upright" or "lying". ``slot``: where it stands, e.g.
    ``"L1-front-3"`` (shelf level 1, front row, 4th from the left) or ``"table-5"``.
    """

    class_name: str
    variant: int
    position_m: tuple[float, float, float]
    quat_xyzw: tuple[float, float, float, float]
    pose_name: str = "upright"
    slot: str = ""


@dataclass(frozen=True)
class CameraSpec:
    """Camera placement and intrinsics.

    ``eye_m`` / ``target_m``: world points; ``up``: world direction that appears
    as image "up". ``vertical_fov_deg`` with square pixels; ``width``/``height`` px.
    """

    eye_m: tuple[float, float, float]
    target_m: tuple[float, float, float]
    up: tuple[float, float, float]
    vertical_fov_deg: float
    width: int = 640
    height: int = 480
    near_m: float = 0.05
    far_m: float = 4.0


@dataclass(frozen=True)
class Lighting:
    """Renderer lighting and an image-level gain (applied the same way for both renderers).

    ``direction``: (3,) world direction towards the light. ``ambient``,
    ``diffuse``, ``specular``: TinyRenderer coefficients. ``gain``: multiplies
    the rendered RGB (1.0 = unchanged). ``shadow``: cast shadows.
    """

    direction: tuple[float, float, float] = (0.3, -1.0, 1.5)
    ambient: float = 0.6
    diffuse: float = 0.5
    specular: float = 0.1
    gain: float = 1.0
    shadow: bool = False  # cast shadows (costs ~40 ms per 640x480 frame)


@dataclass(frozen=True)
class ScenePlan:
    """A whole scene: ``kind`` ("shelf" or "tabletop"), the seed it was sampled from,
    the variant split it drew from, the products, camera and lighting."""

    kind: str
    seed: int
    variant_split: str
    products: tuple[ProductPlacement, ...]
    camera: CameraSpec
    lighting: Lighting = field(default_factory=Lighting)
    attempt: int = 0  # which resampling attempt of this seed produced the plan

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ScenePlan":
        data = json.loads(text)
        return cls(kind=data["kind"], seed=int(data["seed"]), variant_split=data["variant_split"],
                   products=tuple(ProductPlacement(**_tuples(p)) for p in data["products"]),
                   camera=CameraSpec(**_tuples(data["camera"])), lighting=Lighting(**_tuples(data["lighting"])),
                   attempt=int(data.get("attempt", 0)))


def _tuples(fields: dict) -> dict:
    """``fields`` with JSON lists turned back into the tuples the frozen dataclasses hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
