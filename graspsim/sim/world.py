"""One headless pybullet world: connection, physics settings and renderer choice.

graspsim's ``sim`` package is the only place that imports pybullet. A
:class:`SimWorld` owns one DIRECT-mode client; :meth:`SimWorld.reset` empties it
and applies :class:`~graspsim.config.PhysicsConfig`, so every episode starts
from the same state whatever ran before (this is what makes results identical
with 1 or K worker processes).
"""

from __future__ import annotations

import contextlib
import os
import sys
import pkgutil
from typing import Callable, Iterator

import pybullet
from pybullet_utils.bullet_client import BulletClient

from graspsim.config import PhysicsConfig

RENDERERS = ("auto", "egl", "tiny")

# The EGL plugin keeps process-wide state: disconnecting one client that loaded it
# breaks rendering in every other client of the process. So EGL clients are only
# disconnected together, when the last one in the process is closed; until then a
# closed one is just emptied. Holding them here also keeps BulletClient.__del__
# from disconnecting them at garbage collection.
_EGL_OPEN: list[BulletClient] = []
_EGL_CLOSED: list[BulletClient] = []


class RendererError(RuntimeError):
    """The requested renderer cannot be used here."""


def check_renderer(renderer: str) -> None:
    """RendererError (listing the valid names) unless ``renderer`` is one of :data:`RENDERERS`."""
    if renderer not in RENDERERS:
        raise RendererError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")


@contextlib.contextmanager
def silence_native_output(fds: tuple[int, ...] = (1, 2)):
    """Mute C-level stdout and stderr inside the block: pybullet and its EGL plugin print banners
    ("ven = ...", "EGL device choice") that would land in users' tables (and FFmpeg its codec probes)."""
    saved = []
    try:
        for fd in fds:
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # no such stream (e.g. some test runners): nothing to mute
                pass
        with open(os.devnull, "w") as devnull:
            for fd, _ in saved:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


class SteppingClient(BulletClient):
    """A :class:`BulletClient` whose ``stepSimulation`` also tells the step listeners.

    Every physics step of graspsim goes through ``world.client.stepSimulation()``
    (directly, as the hand's and the arm's motion loops do, or via
    :meth:`SimWorld.step`), so this one method is where anything that must see
    every step hooks in (:meth:`SimWorld.on_step`: the video recorder). So step
    through the client, never with ``pybullet.stepSimulation`` itself: such steps
    would be missing from recordings (tests/test_video.py counts them). With no
    listener this costs one empty-list check, and a defined method is cheaper than
    BulletClient's ``__getattr__``, which builds a ``functools.partial`` per call
    (measured: 1.7 vs 2.9 us per step of an empty world).
    """

    def __init__(self, connection_mode: int):
        super().__init__(connection_mode=connection_mode)
        self.step_listeners: list[Callable[[], None]] = []

    def stepSimulation(self) -> None:  # noqa: N802 (pybullet's name)
        pybullet.stepSimulation(physicsClientId=self._client)
        for listener in self.step_listeners:
            listener()


class SimWorld:
    """A pybullet DIRECT client with graspsim's physics settings.

    ``renderer``: "egl" (pybullet's EGL plugin, software GL here), "tiny"
    (pybullet's TinyRenderer) or "auto" (EGL when its plugin loads, else tiny).
    ``renderer_name`` tells which one is in use.
    """

    def __init__(self, physics: PhysicsConfig = PhysicsConfig(), renderer: str = "auto"):
        check_renderer(renderer)
        self.physics = physics
        with silence_native_output():
            self.client = SteppingClient(pybullet.DIRECT)
        self.renderer_name = "tiny"
        if renderer in ("auto", "egl"):
            if self._load_egl():
                self.renderer_name = "egl"
                _EGL_OPEN.append(self.client)
                self._warm_up_egl()
            elif renderer == "egl":
                raise RendererError("pybullet's EGL renderer plugin did not load on this machine; use --renderer tiny")
        self.reset()

    def _load_egl(self) -> bool:
        loader = pkgutil.get_loader("eglRenderer")
        if loader is None:
            return False
        # Loading by file name works where loading by plugin name does not (see MACHINE_NOTES).
        with silence_native_output():
            plugin = self.client.loadPlugin(loader.get_filename(), "_eglRendererPlugin")
        return plugin >= 0

    def _warm_up_egl(self) -> None:
        """Render two throw-away frames.

        The EGL plugin's first two frames differ from every later one (measured:
        from the third frame on, shading changes on ~40k pixels of a 640x480 shelf
        image, then stays fixed). Without this, an image would depend on how many
        frames the process had rendered before: rows would differ between 1 and K
        workers, and replays would not reproduce runs.
        """
        for _ in range(2):
            self.render_image(width=8, height=8)

    @property
    def renderer_flag(self) -> int:
        return pybullet.ER_BULLET_HARDWARE_OPENGL if self.renderer_name == "egl" else pybullet.ER_TINY_RENDERER

    def reset(self) -> None:
        """Remove every body and re-apply the physics settings."""
        c = self.client
        c.resetSimulation()
        c.setGravity(0, 0, -9.81)
        c.setPhysicsEngineParameter(
            fixedTimeStep=self.physics.time_step_s,
            numSolverIterations=self.physics.solver_iterations,
            deterministicOverlappingPairs=1,
        )

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.client.stepSimulation()

    @contextlib.contextmanager
    def on_step(self, listener: Callable[[], None]) -> Iterator[None]:
        """Call ``listener()`` after every physics step taken inside the ``with`` block, by anyone.

        The listener may read and render the world but must not step or change it
        (rendering does not step the simulation, so a recorded attempt has the same
        outcome as an unrecorded one). Listeners run in the order they were added.
        """
        self.client.step_listeners.append(listener)
        try:
            yield
        finally:
            self.client.step_listeners.remove(listener)

    def render_image(self, **kwargs):
        """``getCameraImage`` with this world's renderer (EGL renders may print a banner: muted)."""
        if self.renderer_name != "egl":
            return self.client.getCameraImage(renderer=self.renderer_flag, **kwargs)
        sys.stdout.flush()
        with silence_native_output():
            return self.client.getCameraImage(renderer=self.renderer_flag, **kwargs)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        if self.renderer_name != "egl":
            _disconnect(client)
            return
        client.resetSimulation()
        _EGL_OPEN.remove(client)
        _EGL_CLOSED.append(client)
        if not _EGL_OPEN:
            with silence_native_output():
                while _EGL_CLOSED:
                    _disconnect(_EGL_CLOSED.pop())


def _disconnect(client: BulletClient) -> None:
    try:
        client.disconnect()
    except pybullet.error:
        pass
