"""Keep test runs from writing outside the project: caches go to a temporary directory.

Set at import time so subprocesses started by tests (the CLI) inherit them too.
GRASPSIM_CACHE is respected when the caller set it (CI sets a fresh one).
"""

import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="graspsim-tests-")
os.environ.setdefault("GRASPSIM_CACHE", os.path.join(_TMP, "graspsim"))
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(_TMP, "xdg"))  # Mesa's shader cache
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_TMP, "matplotlib"))
