"""The Gymnasium environment: one pick attempt (or a clear-the-scene round) per episode.

``reset(seed=s)`` builds scene ``s`` (the same seed gives the same scene, bit for
bit), renders it and picks a target class among the clearly visible products;
``step(action)`` executes one grasp and returns reward 1.0 on success.

Observation (a dict):

* ``rgb`` (H, W, 3) uint8; ``depth`` (H, W) float32 metres along camera z;
* ``instruction`` text, e.g. ``"pick the soda can"``; ``target_class`` catalog index;
* ``K`` (3, 3) float64 intrinsics; ``T_world_camera`` (4, 4) float64 (OpenCV axes);
* ``scene_kind``: index into :data:`graspsim.scenes.kinds.SCENE_KINDS` (shelf 0, tabletop 1);
* ``robot``: index into :data:`graspsim.types.ROBOTS` (hand 0, panda 1): who executes the grasp;
* only with ``privileged=True``: ``instance_seg`` and ``class_seg`` (H, W) int32, ``part_seg`` (H, W)
  uint8 (0 not a product, ``k + 1`` = grasp part ``k`` of the pixel's product,
  :func:`graspsim.assets.parts.part_names` of its class), and with the arm ``robot_seg`` (H, W) uint8
  (0 not the robot, 1 arm, 2 hand and fingers);
* only with ``task="parts"``: ``target_part``, the index of the named part in ``part_names(target class)``.

Tasks: ``task="pick"`` (default) names a class; ``task="parts"`` names a class and one of its grasp parts
("pick the ketchup bottle by its cap", phrasings and splits in :mod:`graspsim.scenes.instructions`), and the
attempt succeeds only with both fingers on that part (:mod:`graspsim.sim.execute`). The target class is
drawn uniformly among the visible classes that have an eligible part, the part uniformly among its
eligible parts, both with the episode's generator: a part is eligible when an instance of the class that
is clearly visible shows at least 150 pixels of it at 640x480 (scaled with the image area), the grasp
planner finds a grasp there whose predicted finger contacts are both on it
(:func:`graspsim.grasping.part_grasps.part_grasps`, on the noise-free view) and, with the arm, the robot
model has a plan for one of them that keeps the arm clear of the other products in view (as the oracle
asks); the instruction split (``"train"`` or ``"test"``,
from the suite) says which phrasings and (class, part) pairs may be drawn. A scene where no part is
eligible names the first part in the same random order that shows enough pixels (``part_graspable``
False in ``info``; rare at 640x480). ``info`` then has ``target_part``, ``part_graspable``,
``phrasing_id``, ``heldout_pair`` and ``heldout_phrasing``. A suite's task and split come with ``suite=``.

``robot="panda"`` (the default) puts the Franka Panda on its mount (:class:`~graspsim.scenes.kinds.ArmMount`)
into every scene, parked until an attempt, in the images; ``"hand"`` is the floating hand of VGN-style
benchmarks (no robot in the images, reachability a workspace box).

The built-in policies act on this dict: ``make_policy("oracle").act(obs)``
(:func:`graspsim.policies.base.as_observation`). ``suite="shelf-test"`` makes
``reset(seed=i)`` build scene ``i`` of that suite, the scene ``graspsim bench
--suite shelf-test --seed i`` runs (without a suite the seed is the scene's own
seed, ``info["scene_seed"]``).

The simulator starts at the first ``reset``, so building an environment is
cheap and leaves no GL state behind (``AsyncVectorEnv`` forks safely); a pickled
environment is a new, independent simulation of the same configuration.

Action: ``action_mode="rect"`` (default) takes the 5-D grasp rectangle
``[x, y, w, h, theta]`` in pixels/radians (see :class:`graspsim.types.GraspRect`);
``action_mode="pose"`` takes ``[x, y, z, qx, qy, qz, qw, opening_m]``: the grasp
frame in the world (z = approach, y = closing axis) and the jaw opening.
Malformed actions (NaN, infinite, out of image, non-positive size) do not
raise: the attempt is recorded as ``invalid_action``.

Perception perturbations (robustness sweeps): ``lighting_gain`` replaces the
scene plan's image gain (the rendered RGB is multiplied by it, then clipped to
0..255); ``depth_noise_m`` adds Gaussian noise of that std (metres) to the
depth image. The noisy depth is what the robot perceives: the observation
returns it AND rectangle actions are converted to grasps with it, as a real
robot would deproject its grasp with its own noisy depth sensor. The noise is
drawn from ``np.random.default_rng([scene_seed, 5, attempt_index])`` (attempt
index 0 after ``reset``, then 1, 2, ... in clear-the-scene mode), so it is the
same in every process and for every policy.

Rendering (Gymnasium's ``render_mode``, fixed at construction; off by default,
and then nothing is recorded):

* ``"rgb_array"``: ``render()`` returns the current observation image (H, W, 3)
  uint8 with the last attempt's grasp rectangle drawn.
* ``"rgb_array_list"``: ``render()`` returns the list of frames since the last
  ``reset()`` or ``render()`` (and empties it), as Gymnasium's list modes do; but
  natively, because one ``step`` is a whole attempt: after ``reset`` the
  observation image; for every ``step`` the observation with the chosen grasp
  drawn, then the attempt's motion (pre-grasp, approach, close, lift, hold) as
  seen by the scene camera, one frame every ``1 / render_fps`` s of simulated
  time (:class:`graspsim.video.FrameRecorder`, hooked into every physics step;
  rendering does not step the simulation, so outcomes are the same as without
  recording). The robot is in the frames (the floating hand or the arm).
  ``metadata["render_fps"]`` is then the frames' rate (``render_fps`` rounded to
  a whole number of physics steps per frame), the rate to play them at
  (:func:`graspsim.video.write_video`, Gymnasium's ``RecordVideo``).
  ``render_width`` (px, default the observation width) sizes these frames
  (height by the aspect ratio): smaller frames render faster.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from graspsim.assets.catalog import CATALOG, class_index, get_variant
from graspsim.assets.parts import MAX_PARTS, part_index, part_names
from graspsim.config import GRASP_DEPTH_M, GRASP_MARGIN_M, PhysicsConfig
from graspsim.envs.text_space import InstructionText
from graspsim.geometry import make_transform, quat_to_matrix
from graspsim.grasping.arm_motion import first_executable
from graspsim.grasping.part_grasps import part_grasps, scene_points
from graspsim.scenes import instructions
from graspsim.scenes.kinds import SCENE_KINDS, scene_kind
from graspsim.scenes.sampling import SceneOptions
from graspsim.sim.attempt import Attempt, attempt_grasp
from graspsim.sim.camera import add_depth_noise, render, scene_look, scene_part_seg
from graspsim.sim.scene import BuiltScene, add_robot, build_settled_scene, settle, SceneRejected
from graspsim.scenes.suites import get_suite
from graspsim.sim.world import SimWorld, check_renderer
from graspsim.types import DEFAULT_ROBOT, ROBOTS, FailureReason, check_robot, Frames, GraspRect, GripperCommand, InvalidRectError, PickOutcome
from graspsim.video import DEFAULT_FPS, FrameRecorder, frame_stride, scaled_camera

INSTRUCTION_CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -'.,"
# A target must show at least this share of the area its box would cover unoccluded: the
# instruction names a product the camera clearly sees (others remain as clutter).
_MIN_VISIBLE_FRACTION = 0.7
# Salt of the depth-noise generator's seed: keeps its stream apart from the scene's and the policy's.
DEPTH_NOISE_SALT = 5
#: The tasks an environment poses (module docstring).
TASKS = ("pick", "parts")
# A part may be named when a visible instance shows at least this many of its pixels at 640x480 (scaled with
# the image area; the planner needs 9 at least).
_MIN_PART_PX_640x480 = 150
# Instances of a class whose parts are checked for a grasp (most part pixels first), and grasps per part
# asked of the arm: enough to find one where one exists, few enough to keep reset() near a second.
_PART_CHECK_INSTANCES = 3
_PART_CHECK_ARM = 4
# Grasps planned on a part before the contact filter (as many as the oracle's default part_candidates).
_PART_CANDIDATES = 20


def _check_domain_rand(level: str, suite, variant_split: str):
    """The :class:`~graspsim.scenes.domain_rand.DomainRandSpec` of ``level`` (None for ``"none"``); ValueError for
    an unknown level or for randomising what is evaluated: a suite that is not a training suite, or (without a
    suite) the unseen variants."""
    from graspsim.scenes.domain_rand import check_domain_rand, domain_rand_spec

    if suite is not None:
        spec = check_domain_rand(suite, level)
    else:
        spec = domain_rand_spec(level)
        if spec.enabled and variant_split != "seen":
            raise ValueError(f"domain_rand={level!r} randomises training scenes only, not the "
                             f"{variant_split} variants (use domain_rand='none')")
    return spec if spec.enabled else None


class PickEnv(gym.Env):
    """Pick a named retail product from a shelf or a table (see the module docstring).

    Keyword arguments besides the obvious ones: ``camera_jitter_m`` (metres)
    moves the camera by up to that much per scene; ``lighting_jitter``
    randomises the light per scene; ``lighting_gain`` (a factor >= 0, or None to
    keep the plan's own gain) multiplies the rendered RGB; ``depth_noise_m``
    (metres, >= 0) is the std of Gaussian noise on valid depth pixels, used for
    both the observation and the grasp conversion (module docstring);
    ``physics``: a :class:`PhysicsConfig` (friction, product mass scale, ...) or a
    dict of its fields (:meth:`PhysicsConfig.from_dict`: a nested ``gripper`` dict
    becomes a :class:`~graspsim.config.GripperSpec`). ``render_fps`` (frames per
    simulated second) and ``render_width`` (px) shape the frames of
    ``render_mode="rgb_array_list"`` (module docstring, "Rendering"). ``domain_rand``: a level of
    :data:`graspsim.scenes.domain_rand.LEVELS` for training scenes (a ``*-train`` suite, or seen variants
    without a suite): every scene's look is randomised as ``graspsim render --domain-rand`` does (``"labels"``:
    every product relabelled with a design no catalog variant has, nothing else changed), drawn from the scene
    seed; the attempt's physics is the same. Only the observations change (``rgb_array_list`` frames keep the
    renderer's background and cast).
    """

    metadata = {"render_modes": ["rgb_array", "rgb_array_list"], "render_fps": 2}

    def __init__(self, kind: str | None = None, variant_split: str | None = None, width: int = 640,
                 height: int = 480, renderer: str = "auto", privileged: bool = False, action_mode: str = "rect",
                 clear_scene: bool = False, max_attempts: int = 12, max_consecutive_failures: int = 2,
                 camera_jitter_m: float = 0.0, lighting_jitter: bool = False,
                 physics: PhysicsConfig | dict | None = None, grasp_depth_m: float = GRASP_DEPTH_M,
                 render_mode: str | None = None, lighting_gain: float | None = None,
                 depth_noise_m: float = 0.0, suite: str | None = None, robot: str = DEFAULT_ROBOT,
                 render_fps: float = DEFAULT_FPS, render_width: int | None = None,
                 task: str | None = None, instruction_split: str | None = None, domain_rand: str = "none"):
        # Every constructor argument, kept so that a pickled copy can build its own simulation (__getstate__).
        self._init_kwargs = {name: value for name, value in locals().items() if name != "self"}
        if action_mode not in ("rect", "pose"):
            raise ValueError(f"unknown action_mode {action_mode!r}; choose 'rect' or 'pose'")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"unsupported render_mode {render_mode!r}; choose one of "
                             f"{', '.join(map(repr, self.metadata['render_modes']))} (or None)")
        if render_width is not None and not (isinstance(render_width, (int, np.integer)) and render_width >= 1):
            raise ValueError(f"render_width must be a whole number of pixels >= 1 (or None), got {render_width!r}")
        if max_attempts < 1 or max_consecutive_failures < 1:
            raise ValueError("max_attempts and max_consecutive_failures must be >= 1")
        if lighting_gain is not None and not (np.isfinite(lighting_gain) and lighting_gain >= 0):
            raise ValueError(f"lighting_gain must be a finite factor >= 0 (or None), got {lighting_gain!r}")
        if not (np.isfinite(depth_noise_m) and depth_noise_m >= 0):
            raise ValueError(f"depth_noise_m must be finite and >= 0 metres, got {depth_noise_m!r}")
        self.suite = None if suite is None else get_suite(suite)
        if self.suite is not None:
            for name, given, of_suite in (("kind", kind, self.suite.kind),
                                          ("variant_split", variant_split, self.suite.variant_split),
                                          ("task", task, self.suite.task),
                                          ("instruction_split", instruction_split, self.suite.instruction_split)):
                if given not in (None, of_suite):
                    raise ValueError(f"suite {suite!r} has {name} {of_suite!r}, not {given!r}")
            kind, variant_split = self.suite.kind, self.suite.variant_split
            task, instruction_split = self.suite.task, self.suite.instruction_split
        kind, variant_split = kind or "shelf", variant_split or "seen"
        self.domain_rand = _check_domain_rand(domain_rand, self.suite, variant_split)
        scene_kind(kind)  # an unknown kind fails here, before the simulator starts
        if (task or "pick") not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        self.task = task or "pick"
        self.instruction_split = instructions.check_split(instruction_split or "test")
        check_renderer(renderer)
        self.robot = check_robot(robot)
        if isinstance(physics, dict):
            physics = PhysicsConfig.from_dict(physics)
        self.physics = physics or PhysicsConfig()
        self.kind = kind
        self.variant_split = variant_split
        self.options = SceneOptions(width=width, height=height, camera_jitter_m=camera_jitter_m,
                                    lighting_jitter=lighting_jitter)
        self.privileged = privileged
        self.action_mode = action_mode
        self.clear_scene = clear_scene
        self.max_attempts = max_attempts
        self.max_consecutive_failures = max_consecutive_failures
        self.grasp_depth_m = grasp_depth_m
        self.render_mode = render_mode
        self.render_width = None if render_width is None else int(render_width)
        # Physics steps between recorded frames (rgb_array_list); checks render_fps in every mode.
        self._render_stride = frame_stride(render_fps, self.physics.time_step_s)
        self._render_frames: list[np.ndarray] = []
        if render_mode == "rgb_array_list":
            self.metadata = {**self.metadata, "render_fps": 1.0 / (self._render_stride * self.physics.time_step_s)}
        self.lighting_gain = None if lighting_gain is None else float(lighting_gain)
        self.depth_noise_m = float(depth_noise_m)
        self._scene_seed = 0
        self._renderer = renderer
        # The simulator (and its GL context) starts at the first reset: an environment that is
        # only built and closed, like the one AsyncVectorEnv builds in the parent to read the
        # spaces before it forks its workers, leaves no EGL state for the workers to inherit.
        self._world: SimWorld | None = None
        self._scene: BuiltScene | None = None
        self._frames: Frames | None = None
        self._target_class: str | None = None
        self._target_part: str | None = None  # task "parts": the part the instruction names
        self._phrasing = 0
        self._part_graspable_found = False  # task "parts": whether a grasp on the target part was found
        self._last_rect: GraspRect | None = None
        self._attempts = 0
        self._consecutive_failures = 0
        self.timings: dict[str, float] = {}  # wall-clock ms of the last reset / step stages
        self.observation_space = self._make_observation_space(width, height)
        self.action_space = self._make_action_space(width, height)

    @property
    def world(self) -> SimWorld:
        """The pybullet world, started on first use."""
        if self._world is None:
            self._world = SimWorld(self.physics, self._renderer)
        return self._world

    def __getstate__(self) -> dict[str, Any]:
        """A pickled environment carries its configuration and generator, not the simulator.

        The copy builds its own simulation on its next reset (in this or another
        process): the two never share a pybullet client, so closing or resetting
        one leaves the other as it was.
        """
        return {"kwargs": self._init_kwargs, "np_random": self._np_random, "np_random_seed": self._np_random_seed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["kwargs"])
        self._np_random, self._np_random_seed = state["np_random"], state["np_random_seed"]

    # ----------------------------------------------------------------- spaces
    def _make_observation_space(self, width: int, height: int) -> spaces.Dict:
        entries = {
            "rgb": spaces.Box(0, 255, (height, width, 3), np.uint8),
            "depth": spaces.Box(0.0, np.inf, (height, width), np.float32),
            "instruction": InstructionText(max_length=80, min_length=1, charset=INSTRUCTION_CHARSET),
            "target_class": spaces.Discrete(len(CATALOG)),
            "K": spaces.Box(-np.inf, np.inf, (3, 3), np.float64),
            "T_world_camera": spaces.Box(-np.inf, np.inf, (4, 4), np.float64),
            "scene_kind": spaces.Discrete(len(SCENE_KINDS)),
            "robot": spaces.Discrete(len(ROBOTS)),
        }
        if self.task == "parts":
            entries["target_part"] = spaces.Discrete(MAX_PARTS)
        if self.privileged:
            entries["instance_seg"] = spaces.Box(-1, 2**24, (height, width), np.int32)
            entries["class_seg"] = spaces.Box(-1, len(CATALOG) - 1, (height, width), np.int32)
            entries["part_seg"] = spaces.Box(0, MAX_PARTS, (height, width), np.uint8)
            if self.robot == "panda":
                entries["robot_seg"] = spaces.Box(0, 2, (height, width), np.uint8)
        return spaces.Dict(entries)

    def _make_action_space(self, width: int, height: int) -> spaces.Box:
        if self.action_mode == "rect":
            return spaces.Box(np.array([0, 0, 1, 1, -np.pi / 2], dtype=np.float32),
                              np.array([width - 1, height - 1, width, height, np.pi / 2], dtype=np.float32),
                              dtype=np.float32)
        return spaces.Box(np.array([-2, -2, 0, -1, -1, -1, -1, 0], dtype=np.float32),
                          np.array([2, 2, 2, 1, 1, 1, 1, self.physics.gripper.max_opening_m], dtype=np.float32),
                          dtype=np.float32)

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None and self.suite is not None:
            # Seed i is scene i of the suite, as ``graspsim bench --suite S --seed i`` runs it; the
            # generator is seeded with the scene's own seed, as when that seed is given directly.
            seed = self.suite.scene_seeds(int(seed), 1)[0]
        super().reset(seed=seed)
        if seed is not None:
            scene_seed = int(seed)
        elif self.suite is not None:
            scene_seed = self.suite.scene_seeds(int(self.np_random.integers(self.suite.size)), 1)[0]
        else:
            scene_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._scene_seed = scene_seed
        t0 = time.perf_counter()
        self._scene = build_settled_scene(self.world, self.kind, scene_seed, self.variant_split, self.options,
                                          self.physics, domain_rand=self.domain_rand)
        add_robot(self.world, self._scene, self.robot, self.physics)
        build_ms = (time.perf_counter() - t0) * 1000
        self._attempts = 0
        self._consecutive_failures = 0
        self._last_rect = None
        render_ms = self._observe_and_choose_target()
        if self._target_class is None:  # nothing visible at all: an unusable scene is not silently used
            raise RuntimeError(f"scene {self.kind} seed {scene_seed} shows no product clearly")
        if self.render_mode == "rgb_array_list":
            self._render_frames = [self._video_frame(self._frames.rgb, None)]
        info = self._info()
        info.update(scene_seed=scene_seed, plan_attempt=self._scene.plan.attempt,
                    settle_steps=self._scene.settle_steps)
        # Wall-clock timings are kept out of ``info``: info must be a function of seed and actions.
        self.timings = {"build_ms": build_ms, "render_ms": render_ms}
        return self._observation(), info

    def _observe_and_choose_target(self) -> float:
        t0 = time.perf_counter()
        scene = self._scene
        frames = render(self.world, scene.camera, self._lighting(), scene.body_to_class, scene.robot_parts)
        frames = scene_look(scene, frames)  # a randomised scene's background and colour cast
        if self.privileged or self.task == "parts":
            frames = scene_part_seg(self.world, scene, frames)  # from the true depth, before any noise
        clean = frames
        if self.depth_noise_m > 0:
            # Seeded by scene and attempt only: the same noise in any worker and for any policy.
            rng = np.random.default_rng([self._scene_seed, DEPTH_NOISE_SALT, self._attempts])
            frames = replace(frames, depth_m=add_depth_noise(frames.depth_m, frames.camera, self.depth_noise_m, rng))
        self._frames = frames
        render_ms = (time.perf_counter() - t0) * 1000
        visible = self.visible_bodies()
        if self.task == "parts":
            self._target_class, self._target_part, self._part_graspable_found = self._choose_part_target(visible,
                                                                                                         clean)
            phrasings = instructions.phrasing_ids(self.instruction_split)
            self._phrasing = phrasings[int(self.np_random.integers(len(phrasings)))]
            return render_ms
        classes = sorted({scene.body_to_class_name[b] for b in visible})
        # Uniform over visible classes (not instances) keeps per-class statistics balanced.
        self._target_class = classes[int(self.np_random.integers(len(classes)))] if classes else None
        return render_ms

    def _lighting(self):
        """The scene plan's lighting, with ``lighting_gain`` in place of its gain when given."""
        lighting = self._scene.plan.lighting
        return lighting if self.lighting_gain is None else replace(lighting, gain=self.lighting_gain)

    def _choose_part_target(self, visible: list[int], frames: Frames) -> tuple[str | None, str | None, bool]:
        """(class, part, graspable) for the parts task: the first class of a random order of the visible classes
        that has an eligible part, and the first eligible part of a random order of its parts (so both are
        uniform among the eligible ones, module docstring); parts are checked only until one is found. When no
        part is eligible, the first part in that order that shows enough pixels (graspable False: no grasp on it
        was found); (None, None, False) when no product shows a part at all."""
        by_class: dict[str, list[int]] = {}
        for body in visible:
            by_class.setdefault(self._scene.body_to_class_name[body], []).append(body)
        classes = sorted(by_class)
        shown = None
        for c in self.np_random.permutation(len(classes)):
            class_name = classes[int(c)]
            names = part_names(class_name)
            for p in self.np_random.permutation(len(names)):
                part = names[int(p)]
                if not instructions.pair_allowed(class_name, part, self.instruction_split):
                    continue
                showing = self._showing_part(class_name, part, by_class[class_name], frames)
                if showing and shown is None:
                    shown = (class_name, part)
                if showing and self._part_graspable(class_name, part, showing, frames):
                    return class_name, part, True
        return (*shown, False) if shown else (None, None, False)

    def _showing_part(self, class_name: str, part: str, bodies: list[int], frames: Frames) -> list[int]:
        """Those of ``bodies`` that show at least ``_MIN_PART_PX_640x480`` (scaled) pixels of ``part`` (most first, at most
        ``_PART_CHECK_INSTANCES``)."""
        label = part_index(class_name, part) + 1
        min_px = max(9, round(_MIN_PART_PX_640x480 * frames.camera.width * frames.camera.height / (640 * 480)))
        on_part = {b: int(np.count_nonzero((frames.instance_seg == b) & (frames.part_seg == label))) for b in bodies}
        ranked = sorted(bodies, key=lambda b: -on_part[b])[:_PART_CHECK_INSTANCES]
        return [b for b in ranked if on_part[b] >= min_px]

    def _part_graspable(self, class_name: str, part: str, bodies: list[int], frames: Frames) -> bool:
        """Whether one of ``bodies`` (instances of ``class_name`` showing ``part``) has a grasp on ``part``: the
        planner finds one whose predicted contacts are both on it and, with the arm, the robot has a plan for
        one of the first few (module docstring)."""
        label = part_index(class_name, part) + 1
        kind = scene_kind(self.kind)
        # as the oracle asks: the arm keeps clear of the other products the camera sees, too
        neighbours = scene_points((frames.class_seg >= 0) & (frames.class_seg != class_index(class_name)),
                                  frames.depth_m, frames.camera)
        for body in bodies:
            grasps = part_grasps(label, frames.instance_seg == body, frames.part_seg, frames.depth_m, frames.camera,
                                 self.kind, self._scene.approach_world, self.physics.gripper,
                                 grasp_depth_m=self.grasp_depth_m, margin_m=GRASP_MARGIN_M,
                                 max_candidates=_PART_CANDIDATES)
            if grasps and self.robot == "hand":
                return True
            if grasps and first_executable([g.rect for g in grasps], frames.depth_m, frames.camera,
                                           self._scene.approach_world, kind, self.physics, self.grasp_depth_m,
                                           _PART_CHECK_ARM, neighbours)[0] is not None:
                return True
        return False

    def products_left(self) -> int:
        """Products still in the scene (those picked in clear-the-scene mode are removed; knocked-over ones stay)."""
        return len(self._scene.live_bodies) if self._scene is not None else 0

    def visible_bodies(self) -> list[int]:
        """Products showing at least ``_MIN_VISIBLE_FRACTION`` of their unoccluded projected area
        (:func:`visible_products` of the current scene and observation)."""
        return visible_products(self.world, self._scene, self._frames)

    # ------------------------------------------------------------------- step
    def step(self, action):
        if self._scene is None:
            raise RuntimeError("call reset() before step()")
        t0 = time.perf_counter()
        frames = self._frames
        recorder = self._recorder()
        try:
            grasp = self._parse_action(action)
        except InvalidRectError as exc:  # not even a rectangle or a pose
            attempt = Attempt(None, None, PickOutcome(False, FailureReason.INVALID_ACTION, details={"error": str(exc)}))
        else:
            with self.world.on_step(recorder) if recorder is not None else contextlib.nullcontext():
                attempt = attempt_grasp(self.world, self._scene, grasp, frames.depth_m, frames.camera,
                                        self._target_class, self.physics, self.grasp_depth_m,
                                        self._target_part)
        outcome, command = attempt.outcome, attempt.command
        self._last_rect = attempt.rect
        if recorder is not None:  # the decision, then the motion
            self._render_frames += [self._video_frame(frames.rgb, attempt.rect), *recorder.frames]
        sim_ms = (time.perf_counter() - t0) * 1000
        self._attempts += 1
        self._consecutive_failures = 0 if outcome.success else self._consecutive_failures + 1
        attempt_target, attempt_part = self._target_class, self._target_part
        terminated, truncated = True, False
        if self.clear_scene:
            terminated, truncated = self._continue_clearing(outcome)
        # info describes the attempt just made; target_class_name is the NEXT target in
        # clear-the-scene mode (the one the returned observation asks for).
        info = self._info()
        info.update(outcome=outcome.to_dict(), success=outcome.success,
                    reason=None if outcome.reason is None else outcome.reason.value,
                    gripper=None if command is None else command.to_dict(),
                    rect=None if self._last_rect is None else self._last_rect.to_dict(),
                    attempt_target_class=attempt_target)
        if self.task == "parts":
            info.update(attempt_target_part=attempt_part, held_part=outcome.held_part)
        self.timings["sim_ms"] = sim_ms
        reward = 1.0 if outcome.success else 0.0
        return self._observation(), reward, terminated, truncated, info

    def _parse_action(self, action) -> GraspRect | GripperCommand:
        """The action as a rectangle or a pose command; InvalidRectError if it is neither."""
        try:
            values = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InvalidRectError(str(exc)) from exc
        return GraspRect.from_array(values) if self.action_mode == "rect" else self._pose_command(values)

    def _pose_command(self, values: np.ndarray) -> GripperCommand:
        if values.shape != (8,):
            raise InvalidRectError(f"a pose action has 8 numbers (x, y, z, qx, qy, qz, qw, opening_m), got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise InvalidRectError("pose action contains NaN or infinite values")
        quat = values[3:7]
        if np.linalg.norm(quat) < 1e-6:
            raise InvalidRectError("pose action quaternion has zero length")
        opening = float(values[7])
        if opening <= 0:
            raise InvalidRectError(f"pose action opening must be positive, got {opening:g} m")
        clamped = ()
        if opening > self.physics.gripper.max_opening_m:
            opening, clamped = self.physics.gripper.max_opening_m, ("opening",)
        T = make_transform(quat_to_matrix(quat), values[:3])
        return GripperCommand(T_world_grasp=T, opening_m=opening, clamped=clamped)

    def _continue_clearing(self, outcome: PickOutcome) -> tuple[bool, bool]:
        """Clear-the-scene mode: remove the picked product, re-settle, choose the next target."""
        if outcome.picked_body is not None:
            self._scene.remove_body(self.world, outcome.picked_body)
        try:
            settle(self.world, self._scene, self.physics, max_time_s=1.0)
        except SceneRejected:
            pass  # a product still rolling after a pick is part of the task, not a broken scene
        self._observe_and_choose_target()
        if self._target_class is None or self._consecutive_failures >= self.max_consecutive_failures:
            return True, False
        return False, self._attempts >= self.max_attempts

    # ------------------------------------------------------------ observation
    def _observation(self) -> dict[str, Any]:
        frames = self._frames
        target = self._target_class or CATALOG[0].name
        # Fresh arrays every call: callers may keep or modify what they were given.
        instruction = self.instruction(target)
        if self.task == "parts":
            part = self._target_part or part_names(target)[0]
            instruction = instructions.part_instruction(target, part, self._phrasing)
        obs = {
            "rgb": frames.rgb.copy(),
            "depth": frames.depth_m.copy(),
            "instruction": instruction,
            "target_class": class_index(target),
            "K": frames.camera.K.astype(np.float64),
            "T_world_camera": frames.camera.T_world_camera.astype(np.float64),
            "scene_kind": list(SCENE_KINDS).index(self.kind),
            "robot": ROBOTS.index(self.robot),
        }
        if self.task == "parts":
            obs["target_part"] = part_index(target, part)
        if self.privileged:
            obs["instance_seg"] = frames.instance_seg.copy()
            obs["class_seg"] = frames.class_seg.copy()
            obs["part_seg"] = frames.part_seg.copy()
            if frames.robot_seg is not None:
                obs["robot_seg"] = frames.robot_seg.copy()
        return obs

    @staticmethod
    def instruction(class_name: str) -> str:
        """The ordinary instruction naming ``class_name`` (:func:`graspsim.scenes.instructions.pick_instruction`)."""
        return instructions.pick_instruction(class_name)

    @staticmethod
    def part_names(class_name: str) -> tuple[str, ...]:
        """The grasp parts of ``class_name`` in ``part_seg`` / ``target_part`` order
        (:func:`graspsim.assets.parts.part_names`)."""
        return part_names(class_name)

    def _info(self) -> dict[str, Any]:
        scene = self._scene
        info: dict[str, Any] = {
            "scene_kind": self.kind,
            "approach_world": scene.approach_world.tolist(),
            "target_class_name": self._target_class,
            "attempt": self._attempts,
        }
        if self.task == "parts":
            info.update(target_part=self._target_part, part_graspable=self._part_graspable_found,
                        phrasing_id=self._phrasing,
                        heldout_pair=(self._target_class, self._target_part) in instructions.HELDOUT_PAIRS,
                        heldout_phrasing=self._phrasing in instructions.HELDOUT_PHRASINGS)
        if self.privileged and self._target_class is not None:
            info["target_bodies"] = [b for b in scene.live_bodies
                                     if scene.body_to_class_name[b] == self._target_class]
        return info

    # ---------------------------------------------------------------- render
    def _recorder(self) -> FrameRecorder | None:
        """A recorder of the next attempt's motion in ``rgb_array_list`` mode, else None (nothing recorded)."""
        if self.render_mode != "rgb_array_list":
            return None
        camera = scaled_camera(self._scene.camera, self.render_width)
        return FrameRecorder(self.world, camera, self._lighting(), self._render_stride)

    def _video_frame(self, rgb: np.ndarray, rect: GraspRect | None) -> np.ndarray:
        """The observation ``rgb`` (with ``rect`` drawn, if finite) at the size of the recorded frames."""
        import cv2

        camera = scaled_camera(self._scene.camera, self.render_width)
        scale = camera.width / rgb.shape[1]
        # Drawn at full size, then resized: lines about 2 px wide in the frame.
        out = _drawn(rgb, rect, thickness=max(2, int(round(2 / scale))))
        if (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            out = cv2.resize(out, (camera.width, camera.height), interpolation=interpolation)
        return out

    def render(self):
        """See the module docstring ("Rendering")."""
        if self.render_mode == "rgb_array_list":
            frames, self._render_frames = self._render_frames, []
            return frames
        if self._frames is None:
            return None
        return _drawn(self._frames.rgb, self._last_rect)

    def close(self):
        if getattr(self, "_world", None) is not None:
            self._world.close()
            self._world = None


def visible_products(world: SimWorld, scene: BuiltScene, frames: Frames) -> list[int]:
    """The products of ``scene`` (body ids, ``scene.live_bodies`` order) that ``frames`` (a render of
    ``world`` as it stands, with ``instance_seg``) shows clearly: at least ``_MIN_VISIBLE_FRACTION`` of the
    area their box would cover unoccluded. What an instruction may name (the environment's targets, the
    grasp videos' targets of :mod:`graspsim.data.robot_views`)."""
    ids, counts = np.unique(frames.instance_seg, return_counts=True)
    pixel_count = dict(zip(ids.tolist(), counts.tolist()))
    fx = frames.camera.K[0, 0]
    T_camera_world = np.linalg.inv(frames.camera.T_world_camera)
    visible = []
    for body in scene.live_bodies:
        position, quat = world.client.getBasePositionAndOrientation(body)
        placement = scene.plan.products[scene.product_bodies.index(body)]
        size = np.asarray(get_variant(placement.class_name, placement.variant).size_m)
        depth = (T_camera_world[:3, :3] @ np.asarray(position) + T_camera_world[:3, 3])[2]
        if depth <= 0:
            continue
        R = quat_to_matrix(quat)
        view = T_camera_world[:3, :3].T[:, 2]  # camera axis in the world
        # Projected area of the box: sum over its faces of area * |cos(angle to view)|.
        face_areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]])
        area_m2 = float(np.sum(face_areas * np.abs(R.T @ view)))
        expected_px = area_m2 * (fx / depth) ** 2
        if pixel_count.get(body, 0) >= _MIN_VISIBLE_FRACTION * expected_px:
            visible.append(body)
    return visible


def _drawn(rgb: np.ndarray, rect: GraspRect | None, thickness: int = 2) -> np.ndarray:
    """A copy of ``rgb`` with ``rect`` drawn (:func:`graspsim.viz.draw_grasp`) when it is all finite."""
    from graspsim.viz import draw_grasp

    if rect is None or not all(math.isfinite(v) for v in rect.as_array()):
        return rgb.copy()
    return draw_grasp(rgb, rect, thickness=thickness)
