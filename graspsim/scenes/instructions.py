"""The instructions of the pick tasks: how a target is phrased, and how a phrase is read back.

Ordinary picks name a class: ``"pick the soda can"`` (:func:`pick_instruction`).
Part-aware picks name a class and one of its grasp parts
(:mod:`graspsim.assets.parts`) in one of :data:`PHRASINGS` ("pick the ketchup
bottle by its cap", "grab the milk carton by the body", "take the soda can by
the top", ...); :func:`parse_instruction` maps every phrasing (and ordinary
instructions) back to ``(class, part)``.

Generalisation splits (documented lists, used by the ``*-parts-train`` /
``*-parts-test`` suites of :mod:`graspsim.scenes.suites`):

* :data:`HELDOUT_PHRASINGS`: phrasing ids that only test suites use;
* :data:`HELDOUT_PAIRS`: (class, part) pairs that only test suites ask for.
  Each held-out part word stays in training on other classes (a cap is
  trained on the water bottle, asked of the ketchup bottle), so a policy is
  tested on composing a known part with a known product.

Train suites draw among the other phrasings and pairs only; test suites among
all of them.
"""

from __future__ import annotations

import re

from graspsim.assets.catalog import CATALOG, get_class
from graspsim.assets.parts import PART_WORDS, part_names

#: Phrasing templates, by id: ``{n}`` is the product's display name, ``{p}`` the part name.
PHRASINGS: tuple[str, ...] = (
    "pick the {n} by its {p}",           # 0
    "grab the {n} by the {p}",           # 1
    "take the {n} by the {p}",           # 2
    "pick up the {n} by its {p}",        # 3
    "grasp the {p} of the {n}",          # 4
    "hold the {n} at the {p}",           # 5
    "lift the {n}, gripping it at the {p}",          # 6: held out
    "get me the {n} - hold it by its {p}",           # 7: held out
    "the {p} of the {n}, please pick it up",         # 8: held out
)
#: Phrasing ids used only by test suites.
HELDOUT_PHRASINGS: frozenset[int] = frozenset({6, 7, 8})
#: (class, part) pairs asked only in test suites.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("ketchup_bottle", "cap"), ("soda_can", "top"), ("milk_carton", "top"), ("cereal_box", "body"),
    ("tea_bottle", "neck"), ("snack_tube", "bottom"),
})
#: Instruction splits: "train" (held-out phrasings and pairs excluded) and "test" (everything).
INSTRUCTION_SPLITS = ("train", "test")


def check_split(split: str) -> str:
    if split not in INSTRUCTION_SPLITS:
        raise ValueError(f"unknown instruction split {split!r}; choose one of {', '.join(INSTRUCTION_SPLITS)}")
    return split


def phrasing_ids(split: str) -> tuple[int, ...]:
    """The phrasing ids a suite of instruction split ``split`` draws from."""
    held_out = HELDOUT_PHRASINGS if check_split(split) == "train" else frozenset()
    return tuple(i for i in range(len(PHRASINGS)) if i not in held_out)


def pair_allowed(class_name: str, part: str, split: str) -> bool:
    """Whether a suite of instruction split ``split`` may ask for ``part`` of ``class_name``."""
    return check_split(split) == "test" or (class_name, part) not in HELDOUT_PAIRS


def pick_instruction(class_name: str) -> str:
    """The ordinary instruction naming a class: ``"pick the soda can"``."""
    return f"pick the {get_class(class_name).display_name}"


def part_instruction(class_name: str, part: str, phrasing: int) -> str:
    """Phrasing ``phrasing`` (an index of :data:`PHRASINGS`) of "pick ``class_name`` by ``part``"."""
    if part not in part_names(class_name):
        raise ValueError(f"{class_name} has no part {part!r}; its parts: {', '.join(part_names(class_name))}")
    if not 0 <= phrasing < len(PHRASINGS):
        raise ValueError(f"phrasing must be 0..{len(PHRASINGS) - 1}, got {phrasing}")
    return PHRASINGS[phrasing].format(n=get_class(class_name).display_name, p=part)


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


# Longest display names first, so that a name containing another one wins.
_NAMES = sorted(((c.name, _words(c.display_name)) for c in CATALOG), key=lambda item: -len(item[1]))


def parse_instruction(text: str) -> tuple[str, str | None]:
    """``(class name, part or None)`` named by an instruction, whatever its phrasing.

    The class is the catalog class whose display name occurs in the text
    (case and punctuation ignored); the part is the part word of that class
    (:data:`graspsim.assets.parts.PART_WORDS`) that occurs outside the name, or
    None when there is none (an ordinary pick). ValueError with a one-line
    reason when no class is named, when a part word is not a part of that
    class, or when the text names two different parts.
    """
    words = _words(text)
    found = next(((name, spaced) for name, spaced in _NAMES if spaced in words), None)
    if found is None:
        raise ValueError(f"no product class named in {text!r}")
    class_name, spaced = found
    rest = words.replace(spaced, " ").split()
    named = sorted({w for w in rest if w in PART_WORDS}, key=rest.index)
    if not named:
        return class_name, None
    if len(named) > 1:
        raise ValueError(f"{text!r} names more than one part ({', '.join(named)})")
    if named[0] not in part_names(class_name):
        raise ValueError(f"{text!r}: {get_class(class_name).display_name} has no part {named[0]!r}; "
                         f"its parts: {', '.join(part_names(class_name))}")
    return class_name, named[0]

