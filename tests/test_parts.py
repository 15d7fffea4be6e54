"""Part-aware picks: the grasp-part partition, part masks, the part judgement, instructions, suites, the CLI."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from graspsim.assets.catalog import CATALOG, get_variant
from graspsim.assets.parts import MAX_PARTS, PART_WORDS, part_at, part_boxes, part_names, surface_samples
from graspsim.config import GripperSpec, PhysicsConfig
from graspsim.geometry import make_transform, project, quat_to_matrix, transform_points, invert_transform
from graspsim.scenes import instructions
from graspsim.scenes.suites import SUITES
from graspsim.types import FailureReason

CLASSES = [c.name for c in CATALOG]


# ------------------------------------------------------------------------------------------------ partition
@pytest.mark.parametrize("class_name", CLASSES)
def test_parts_tile_the_product_box_without_overlap(class_name):
    boxes = part_boxes(class_name)
    assert len(boxes) >= 2 and set(boxes) <= set(PART_WORDS) and len(boxes) <= MAX_PARTS
    lo = np.array([b[0] for b in boxes.values()])
    hi = np.array([b[1] for b in boxes.values()])
    assert (lo >= -0.5).all() and (hi <= 0.5).all() and (hi > lo).all()
    # Exact: the volumes add up to the whole box and no two boxes share any volume.
    assert math.isclose(float(np.prod(hi - lo, axis=1).sum()), 1.0, rel_tol=1e-12)
    for i, j in itertools.combinations(range(len(lo)), 2):
        assert np.prod(np.clip(np.minimum(hi[i], hi[j]) - np.maximum(lo[i], lo[j]), 0, None)) == 0
    # And by sampling: every point of the box lies in exactly one part, the one part_at names.
    f = np.random.default_rng(0).uniform(-0.5, 0.5, size=(20000, 3))
    inside = ((f[:, None, :] > lo[None]) & (f[:, None, :] < hi[None])).all(axis=2)
    assert (inside.sum(axis=1) == 1).all()
    size = np.asarray(get_variant(class_name, 0).size_m)
    assert (part_at(class_name, size, f * size) == inside.argmax(axis=1)).all()


def _pad_holds(points: np.ndarray, labels: np.ndarray, closing: int, across: int, start: float,
               gripper: GripperSpec) -> int | None:
    """The part a parallel grip holds with pads ``finger_width_m`` wide along axis ``across`` from ``start``,
    closing along axis ``closing`` (product-frame axes of the surface ``points``): None if the product is too
    wide there or the two pads' pressed surfaces (within 1 mm of the outermost points) centre on other parts."""
    window = (points[:, across] >= start) & (points[:, across] <= start + gripper.finger_width_m)
    if window.sum() < 3:
        return None
    c = points[window, closing]
    if c.max() - c.min() > gripper.max_opening_m - 2 * 0.004:  # the planner's smallest margin on each side
        return None
    held = set()
    for outer in (c.max(), c.min()):
        pressed = window.copy()
        pressed[window] = np.abs(c - outer) < 0.001
        held.add(int(np.bincount(labels[pressed]).argmax()))
    return held.pop() if len(held) == 1 else None


@pytest.mark.parametrize("class_name", CLASSES)
def test_every_part_offers_a_grip_on_the_mesh(class_name):
    """Graspable: for some closing axis (a product axis) and some placement of the 2.1 cm pads along another
    axis (the whole pad on the product), the product fits the 8 cm gripper there (with 4 mm to spare on each
    side) and the surface each pad meets first (within 1 mm of the outermost point) lies mostly on the part.
    Checked on the mesh of a seen and an unseen variant."""
    gripper = GripperSpec()
    for variant in (0, 3):
        points = surface_samples(class_name, variant)
        labels = part_at(class_name, get_variant(class_name, variant).size_m, points)
        held = set()
        for closing, across in itertools.permutations(range(3), 2):
            lo, hi = points[:, across].min(), points[:, across].max()
            for start in np.arange(lo, hi - gripper.finger_width_m + 1e-9, 0.003):
                held.add(_pad_holds(points, labels, closing, across, start, gripper))
        missing = set(part_names(class_name)) - {part_names(class_name)[k] for k in held - {None}}
        assert not missing, f"{class_name} variant {variant}: no grip on {sorted(missing)}"


def test_surface_samples_lie_on_the_product_and_are_deterministic():
    a = surface_samples("ketchup_bottle", 1)
    assert a.shape == (8000, 3) and not a.flags.writeable
    half = np.asarray(get_variant("ketchup_bottle", 1).size_m) / 2
    assert (np.abs(a) <= half + 1e-6).all()
    surface_samples.cache_clear()
    assert np.array_equal(a, surface_samples("ketchup_bottle", 1))


# ------------------------------------------------------------------------------------------- instructions
def test_every_phrasing_of_every_pair_parses_back():
    for class_name in CLASSES:
        assert instructions.parse_instruction(instructions.pick_instruction(class_name)) == (class_name, None)
        for part in part_names(class_name):
            for phrasing in range(len(instructions.PHRASINGS)):
                text = instructions.part_instruction(class_name, part, phrasing)
                assert instructions.parse_instruction(text) == (class_name, part), text
                assert len(text) <= 80 and set(text) <= set(
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -'.,")
    assert instructions.parse_instruction("Pick the KETCHUP bottle by its cap!") == ("ketchup_bottle", "cap")


@pytest.mark.parametrize("text, message", [
    ("pick the banana by its peel", "no product class named"),
    ("pick the soda can by its cap", r"soda can has no part 'cap'; its parts: bottom, body, top"),
    ("take the water bottle by the cap, not the neck", r"names more than one part \(cap, neck\)"),
])
def test_instructions_that_name_no_valid_target_are_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message):
        instructions.parse_instruction(text)


def test_held_out_phrasings_and_pairs_are_only_in_the_test_split():
    assert set(instructions.phrasing_ids("test")) == set(range(len(instructions.PHRASINGS)))
    assert set(instructions.phrasing_ids("train")) == set(range(len(instructions.PHRASINGS))) - \
        instructions.HELDOUT_PHRASINGS
    pairs = {(c, p) for c in CLASSES for p in part_names(c)}
    assert instructions.HELDOUT_PAIRS <= pairs
    trained = pairs - instructions.HELDOUT_PAIRS
    for class_name, part in instructions.HELDOUT_PAIRS:
        assert not instructions.pair_allowed(class_name, part, "train")
        assert instructions.pair_allowed(class_name, part, "test")
        assert any(p == part for _, p in trained), part  # the part word is trained on another class
        assert any(c == class_name for c, _ in trained), class_name  # and the class with another part
    with pytest.raises(ValueError, match="unknown instruction split 'val'"):
        instructions.phrasing_ids("val")


# ------------------------------------------------------------------------------------------------- suites
def test_all_suite_seed_ranges_are_disjoint_and_parts_suites_are_parts_tasks():
    ranges = sorted((s.first_seed, s.first_seed + s.size, s.name) for s in SUITES.values())
    for (_, hi, a), (lo, _, b) in zip(ranges, ranges[1:]):
        assert hi <= lo, (a, b)
    for kind in ("shelf", "tabletop"):
        train, test = SUITES[f"{kind}-parts-train"], SUITES[f"{kind}-parts-test"]
        assert (train.kind, train.task, train.instruction_split) == (kind, "parts", "train")
        assert (test.kind, test.task, test.instruction_split) == (kind, "parts", "test")
    assert all(s.task == "pick" for s in SUITES.values() if "parts" not in s.name)


# ------------------------------------------------------------------------------------- part masks (render)
@pytest.fixture(scope="module")
def parts_env():
    from graspsim.envs.pick_env import PickEnv

    env = PickEnv(suite="shelf-parts-test", privileged=True, width=320, height=240, renderer="tiny", robot="hand")
    yield env
    env.close()


def test_part_seg_agrees_with_the_projected_part_geometry(parts_env):
    """Surface points of every product, projected into the image where the rendered depth shows them (2 mm),
    carry their part's label in part_seg (points within 4 mm of a part boundary aside)."""
    env = parts_env
    obs, _ = env.reset(seed=0)
    part_seg, depth, instance = obs["part_seg"], obs["depth"], obs["instance_seg"]
    assert part_seg.dtype == np.uint8 and ((part_seg > 0) == (obs["class_seg"] >= 0)).all()
    camera = env._frames.camera
    T_camera_world = invert_transform(camera.T_world_camera)
    checked = agreed = 0
    for placement, body in zip(env._scene.plan.products, env._scene.product_bodies):
        size = np.asarray(get_variant(placement.class_name, placement.variant).size_m)
        lo, hi = (np.array([b[k] for b in part_boxes(placement.class_name).values()]) * size for k in (0, 1))
        points = surface_samples(placement.class_name, placement.variant)
        labels = part_at(placement.class_name, size, points) + 1
        # Distance of each point to the other parts' boxes: points near a boundary are left out.
        gap = np.maximum(lo[None] - points[:, None], 0) + np.maximum(points[:, None] - hi[None], 0)
        distance = np.linalg.norm(gap, axis=2)
        distance[np.arange(len(points)), labels - 1] = np.inf
        away = distance.min(axis=1) > 0.004
        position, quat = env.world.client.getBasePositionAndOrientation(body)
        p_camera = transform_points(T_camera_world @ make_transform(quat_to_matrix(quat), position), points)
        xy = np.round(project(camera.K, p_camera)).astype(int)
        ok = (xy[:, 0] >= 0) & (xy[:, 0] < camera.width) & (xy[:, 1] >= 0) & (xy[:, 1] < camera.height) & away
        rows, cols = xy[ok, 1], xy[ok, 0]
        seen = (instance[rows, cols] == body) & (np.abs(depth[rows, cols] - p_camera[ok, 2]) < 0.002)
        checked += int(seen.sum())
        agreed += int((part_seg[rows, cols][seen] == labels[ok][seen]).sum())
    assert checked > 500
    assert agreed >= 0.98 * checked, (agreed, checked)


def test_parts_observation_names_a_visible_part_in_the_instruction(parts_env):
    obs, info = parts_env.reset(seed=1)
    class_name, part = info["target_class_name"], info["target_part"]
    assert instructions.parse_instruction(obs["instruction"]) == (class_name, part)
    assert part_names(class_name)[obs["target_part"]] == part
    assert info["phrasing_id"] in instructions.phrasing_ids("test") and isinstance(info["part_graspable"], bool)
    label = part_names(class_name).index(part) + 1
    on_class = obs["class_seg"] == CLASSES.index(class_name)
    assert ((obs["part_seg"] == label) & on_class).sum() >= 9


def test_the_same_seed_draws_the_same_part_target(parts_env):
    a = parts_env.reset(seed=2)
    b = parts_env.reset(seed=2)
    assert a[0]["instruction"] == b[0]["instruction"] and a[1] == b[1]


# ----------------------------------------------------------------------------------------- part judgement
def _ketchup_on_the_table(world, x: float = 0.0):
    """A plan with one ketchup bottle upright on the table at ``(x, 0)`` (identity orientation), built."""
    from graspsim.scenes.kinds import scene_kind
    from graspsim.scenes.plan import ProductPlacement
    from graspsim.scenes.sampling import sample_plan
    from graspsim.sim.scene import build_at_rest

    size = get_variant("ketchup_bottle", 0).size_m
    top = scene_kind("tabletop").support_tops_m[0]
    bottle = ProductPlacement("ketchup_bottle", 0, (x, 0.0, top + size[2] / 2 + 0.0005), (0.0, 0.0, 0.0, 1.0))
    plan = replace(sample_plan("tabletop", 0), products=(bottle,))
    return build_at_rest(world, plan, PhysicsConfig()), np.asarray(size)


def _command(position, approach, closing, opening=0.075):
    from graspsim.types import GripperCommand

    z, y = np.asarray(approach, float), np.asarray(closing, float)
    return GripperCommand(T_world_grasp=make_transform(np.stack([np.cross(y, z), y, z], axis=1), position),
                          opening_m=opening)


@pytest.mark.parametrize("grip, held", [("cap", "cap"), ("body", "body")])
def test_a_grasp_by_construction_scores_the_part_its_fingers_hold(grip, held):
    """Pose actions (the commands ``action_mode="pose"`` executes) on a ketchup bottle of known pose: the
    jaws around the cap from above hold the cap; around the body from the side they hold the body, which
    for a "by its cap" instruction is ``wrong_part``."""
    from graspsim.sim.attempt import attempt_grasp
    from graspsim.sim.world import SimWorld

    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        scene, size = _ketchup_on_the_table(world)
        centre = np.array(world.client.getBasePositionAndOrientation(scene.live_bodies[0])[0])
        if grip == "cap":  # from above, 1.2 cm into the 3.2 cm cap: the pads cover 1.2-2.9 cm below its top
            command = _command(centre + [0, 0, size[2] / 2 - 0.012], [0, 0, -1], [1, 0, 0], opening=0.06)
        else:  # from the front (+y), at a third of the height, across the bottle's 6.2 cm width
            command = _command(centre + [0, 0, -size[2] / 6], [0, 1, 0], [1, 0, 0])
        dummy = np.zeros((scene.camera.height, scene.camera.width), np.float32)
        outcome = attempt_grasp(world, scene, command, dummy, scene.camera, "ketchup_bottle", PhysicsConfig(),
                                target_part="cap").outcome
        assert outcome.picked_class == "ketchup_bottle", outcome
        assert outcome.finger_parts == (held, held) and outcome.held_part == held
        assert (outcome.success, outcome.reason) == ((True, None) if held == "cap" else (False, FailureReason.WRONG_PART))
        record = outcome.to_dict()
        assert (record["target_part"], record["held_part"], record["finger_parts"]) == ("cap", held, [held, held])
        # The same grasp as an ordinary attempt: judged and recorded as before, the part known all the same.
        scene, _ = _ketchup_on_the_table(world)
        plain = attempt_grasp(world, scene, command, dummy, scene.camera, "ketchup_bottle", PhysicsConfig()).outcome
        assert plain.success and plain.held_part == held and "held_part" not in plain.to_dict()
    finally:
        world.close()


# ---------------------------------------------------------------------------------------------- end to end
def test_bench_on_a_parts_suite_records_parts_and_summarises_them(tmp_path):
    from click.testing import CliRunner

    from graspsim.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["bench", "--policy", "oracle", "--suite", "tabletop-parts-test", "--episodes",
                                       "2", "--out", str(out), "--width", "320", "--height", "240", "--renderer",
                                       "tiny", "--robot", "hand", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "part-correct:" in result.output and "class/part" in result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert instructions.parse_instruction(row["instruction"]) == (row["target_class"], row["target_part"])
        assert row["phrasing_id"] in range(len(instructions.PHRASINGS))
        assert row["success"] == (row["reason"] is None)
        assert row["success"] <= (row["held_part"] == row["target_part"])
    parts = json.loads((out / "summary.json").read_text())["parts"]
    assert parts["part_correct"]["attempts"] == 2
    assert parts["part_correct"]["successes"] == sum(r["success"] for r in rows)
    assert sum(b["attempts"] for b in parts["per_class_part"].values()) == 2
    assert parts["heldout_pairs"]["attempts"] + parts["trained_pairs"]["attempts"] == 2


def test_check_env_passes_for_the_parts_task():
    from gymnasium.utils.env_checker import check_env

    from graspsim.envs.pick_env import PickEnv

    env = PickEnv(kind="tabletop", task="parts", privileged=True, width=160, height=120, renderer="tiny",
                  robot="hand")
    try:
        check_env(env, skip_render_check=True)
        assert env.observation_space["target_part"].n == MAX_PARTS
    finally:
        env.close()
    with pytest.raises(ValueError, match="suite 'shelf-parts-test' has task 'parts', not 'pick'"):
        PickEnv(suite="shelf-parts-test", task="pick")
    with pytest.raises(ValueError, match="unknown task 'grab'"):
        PickEnv(task="grab")


def test_rendered_datasets_store_part_masks_and_the_part_each_label_held(tmp_path):
    from graspsim.data.format import iter_scene_dirs, read_scene
    from graspsim.data.labels import LabelConfig
    from graspsim.data.render import render_dataset

    render_dataset("tabletop-train", 1, tmp_path, width=160, height=120, renderer="tiny", progress=False,
                   robot="hand", labels=LabelConfig(max_candidates=2))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["parts"] == {c: list(part_names(c)) for c in CLASSES}
    scene = read_scene(iter_scene_dirs(tmp_path)[0])
    assert scene["part_seg"].dtype == np.uint8 and ((scene["part_seg"] > 0) == (scene["instance"] > 0)).all()
    for obj in scene["meta"]["objects"]:
        labels = scene["part_seg"][scene["instance"] == obj["product_index"] + 1]
        assert labels.max(initial=0) <= len(part_names(obj["class_name"]))
    parts = [(CLASSES[c], p) for c, p in zip(scene["grasp_classes"], scene["grasp_parts"])]
    assert parts and all(p is None or p in part_names(c) for c, p in parts)
    assert any(p is not None for _, p in parts)


def test_the_arm_check_keeps_clear_of_seen_products():
    """The oracle's and the environment's arm check with obstacles: a grasp from above the table is clear of
    nothing and of a point far off, not of a point where its wrist passes (a neighbour 10 cm above the grasp)."""
    from graspsim.grasping.arm_motion import arm_clear_of_points
    from graspsim.scenes.kinds import scene_kind
    from graspsim.types import GripperCommand

    kind, physics = scene_kind("tabletop"), PhysicsConfig()
    down = np.stack([[0, 1, 0], [1, 0, 0], [0, 0, -1]], axis=1).astype(float)  # approach down, closing along x
    command = GripperCommand(make_transform(down, [0.0, 0.0, 0.76]), 0.06)
    assert arm_clear_of_points(kind, command, physics, np.zeros((0, 3)))
    assert arm_clear_of_points(kind, command, physics, np.array([[0.3, 0.3, 0.72]]))
    assert not arm_clear_of_points(kind, command, physics, np.array([[0.0, 0.0, 0.86]]))


def test_contact_prediction_from_the_image_names_the_part_the_fingers_will_press():
    """What the oracle and the environment predict from the camera (part_seg + depth) for grasps of known pose
    on a lone ketchup bottle 20 cm to the side of the table camera (which looks straight down): around the cap,
    closing square to the line of sight -> the cap under both fingers; as deep as the body -> ruled out (the
    palm would hit the cap first); closing towards the camera -> not called (the far finger's side is out of
    view)."""
    from graspsim.assets.parts import part_index
    from graspsim.grasping.part_grasps import contact_labels
    from graspsim.sim.camera import render, scene_part_seg
    from graspsim.sim.world import SimWorld

    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        scene, size = _ketchup_on_the_table(world, x=0.2)
        frames = scene_part_seg(world, scene, render(world, scene.camera, body_to_class=scene.body_to_class))
        labels = np.where(frames.instance_seg == scene.live_bodies[0], frames.part_seg, 0)
        top = np.array(world.client.getBasePositionAndOrientation(scene.live_bodies[0])[0]) + [0, 0, size[2] / 2]

        def predict(depth_below_top, closing):
            command = _command(top - [0, 0, depth_below_top], [0, 0, -1], closing, opening=0.06)
            return contact_labels(command, labels, frames.depth_m, frames.camera)

        cap = part_index("ketchup_bottle", "cap") + 1
        assert predict(0.012, [0, 1, 0]) == (cap, cap)
        assert predict(0.10, [0, 1, 0]) == (0, 0)
        assert predict(0.012, [1, 0, 0]) == (0, 0)
    finally:
        world.close()


def test_part_label_and_word_tables_are_inverse_for_every_class():
    from graspsim.assets.catalog import CATALOG
    from graspsim.assets.parts import PART_WORDS, label_to_word, part_names, word_to_label

    for c in CATALOG:
        names = part_names(c.name)
        forward, back = label_to_word(c.name), word_to_label(c.name)
        assert forward[0] == 0 and back[0] == 0
        for k, name in enumerate(names, start=1):
            assert PART_WORDS[forward[k] - 1] == name and back[forward[k]] == k
        assert not forward[len(names) + 1:].any()  # labels the class does not have
        assert set(np.nonzero(back)[0]) == {PART_WORDS.index(n) + 1 for n in names}
