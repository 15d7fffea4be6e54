"""Named suites: a scene kind, a variant split, a task and a range of scene seeds.

Train, test and unseen ranges never overlap (the part-aware suites' neither),
so a model trained on ``shelf-train`` scenes is never scored on them.

Tasks: ``"pick"`` (the instruction names a class: "pick the soda can") and
``"parts"`` (it names a class and a grasp part: "pick the ketchup bottle by its
cap", scored on where the fingers hold; :mod:`graspsim.scenes.instructions`).
A parts suite's ``instruction_split`` says which phrasings and (class, part)
pairs it draws from: ``"train"`` leaves out the held-out ones
(:data:`~graspsim.scenes.instructions.HELDOUT_PHRASINGS`,
:data:`~graspsim.scenes.instructions.HELDOUT_PAIRS`), ``"test"`` uses them all. ``--seed S --episodes N`` runs
scenes ``first_seed + S`` ... ``first_seed + S + N - 1`` of a suite: every policy
run with the same suite, seed and episode count sees the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

from graspsim.scenes.kinds import scene_kind


@dataclass(frozen=True)
class Suite:
    name: str
    kind: str            # a scene-kind name (graspsim.scenes.kinds.SCENE_KINDS)
    variant_split: str   # "seen" (training variants) or "unseen" (held-out variants)
    first_seed: int
    size: int            # number of scenes in the suite
    description: str
    task: str = "pick"   # "pick" or "parts" (module docstring)
    instruction_split: str = "test"  # parts suites: "train" (held-out phrasings and pairs left out) or "test"
    training: bool = False  # a training suite: the only ones `graspsim render --domain-rand` may randomise

    @property
    def env_id(self) -> str:
        return scene_kind(self.kind).env_id

    def scene_seeds(self, start: int, episodes: int) -> list[int]:
        """Seeds of scenes ``start`` .. ``start + episodes - 1``; ValueError if outside the suite."""
        if start < 0 or episodes < 1 or start + episodes > self.size:
            raise ValueError(
                f"suite {self.name} has scenes 0..{self.size - 1}; --seed {start} with --episodes {episodes} "
                f"does not fit")
        return [self.first_seed + start + i for i in range(episodes)]


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("shelf-train", "shelf", "seen", 0, 1_000_000, "store shelf, training product variants, training seeds",
          training=True),
    Suite("shelf-test", "shelf", "seen", 1_000_000, 100_000, "store shelf, training product variants, held-out seeds"),
    Suite("shelf-unseen", "shelf", "unseen", 2_000_000, 100_000, "store shelf, held-out product variants"),
    Suite("tabletop-train", "tabletop", "seen", 10_000_000, 1_000_000, "cluttered table, training variants",
          training=True),
    Suite("tabletop-test", "tabletop", "seen", 11_000_000, 100_000, "cluttered table, held-out seeds"),
    Suite("tabletop-unseen", "tabletop", "unseen", 12_000_000, 100_000, "cluttered table, held-out variants"),
    Suite("shelf-parts-train", "shelf", "seen", 20_000_000, 1_000_000,
          "store shelf, pick a product by a named part, training phrasings and pairs", "parts", "train", True),
    Suite("shelf-parts-test", "shelf", "seen", 21_000_000, 100_000,
          "store shelf, pick a product by a named part, held-out seeds, all phrasings and pairs", "parts", "test"),
    Suite("tabletop-parts-train", "tabletop", "seen", 30_000_000, 1_000_000,
          "cluttered table, pick a product by a named part, training phrasings and pairs", "parts", "train", True),
    Suite("tabletop-parts-test", "tabletop", "seen", 31_000_000, 100_000,
          "cluttered table, pick a product by a named part, held-out seeds, all phrasings and pairs", "parts",
          "test"),
)}


class UnknownSuiteError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise UnknownSuiteError(f"unknown suite {name!r}; available: {', '.join(SUITES)}")
    return SUITES[name]
