"""Typed policy configs: every ``--policy-arg`` of a policy is one field of a frozen dataclass.

A policy's config is checked before anything heavy loads (lerobot's
``PreTrainedConfig`` + factory): ``graspsim bench`` validates the user's
``--policy-arg`` values with the config alone, in the parent process, and each
worker builds the policy from the same arguments once. Building a config

* refuses an unknown key with one line listing the valid keys
  (``unknown --policy-arg 'promt_mode' for policy clip_sam; valid keys: ...``);
* coerces each value to its field's type: command-line values arrive
  JSON-decoded (``3``, ``0.5``, ``true``, ``"box"``), and the strings
  ``"true"``/``"false"``/``"yes"``/``"no"``/``"on"``/``"off"``/``"1"``/``"0"``
  are booleans too, as the policies have always accepted;
* checks choices and ranges declared with :func:`arg`, and names the key and
  what it accepts when a value is wrong.

Config modules import numpy at most (never torch, transformers or pybullet), so
a bad argument fails in well under a second. :meth:`PolicyConfig.check_files`
may add cheap existence checks of model files (a path that does not exist, a
weights name not fetched), still without loading anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from graspsim.config import GRASP_DEPTH_M, GRASP_MARGIN_M, GripperSpec

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

C = TypeVar("C", bound="PolicyConfig")


class PolicyArgError(ValueError):
    """A policy argument the policy does not take, or a value it does not accept (a one-line message)."""


def arg(default: Any, *, choices: tuple | None = None, min: float | None = None, max: float | None = None,
        min_open: bool = False) -> Any:
    """A config field with ``default`` and optional checks: one of ``choices``, ``>= min`` (``> min`` with
    ``min_open``), ``<= max``. ``None`` always passes when the field's type allows it."""
    return field(default=default, metadata={"choices": choices, "min": min, "max": max, "min_open": min_open})


def check_keys(policy: str, kwargs: Mapping[str, Any], valid: list[str]) -> None:
    """PolicyArgError, one line, if ``kwargs`` has a key outside ``valid`` (with the closest valid key)."""
    unknown = [key for key in kwargs if key not in valid]
    if not unknown:
        return
    guess = difflib.get_close_matches(unknown[0], valid, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    names = ", ".join(repr(key) for key in unknown)
    plural = "s" if len(unknown) > 1 else ""
    raise PolicyArgError(f"unknown --policy-arg{plural} {names} for policy {policy}{hint}; "
                         f"valid keys: {', '.join(valid) or '(none)'}")


def check_signature_keys(policy: str, target: Any, kwargs: Mapping[str, Any]) -> None:
    """For a policy without a config class: the keys of ``kwargs`` against the keyword parameters of
    ``target`` (a class or a function); anything goes when it takes ``**kwargs``."""
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    valid = sorted(p.name for p in params
                   if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))
    check_keys(policy, kwargs, valid)


@dataclass(frozen=True)
class PolicyConfig:
    """Base of the policy configs: subclasses are frozen dataclasses, one field per policy argument.

    ``policy_name`` (class attribute) is the registry name used in messages.
    Subclasses may override :meth:`check` (checks across fields) and
    :meth:`check_files` (cheap model-file checks, run before workers start).
    """

    policy_name: ClassVar[str] = "policy"

    def __post_init__(self) -> None:
        hints = _field_types(type(self))
        for f in fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f.metadata, f.name, self.policy_name)
            object.__setattr__(self, f.name, value)  # frozen: the coerced value replaces the given one
        self.check()

    def check(self) -> None:
        """Checks that involve several fields; raise :class:`PolicyArgError` (see :meth:`invalid`)."""

    def check_files(self) -> None:
        """Cheap checks that the model files this config names exist (FileNotFoundError saying what and where).

        Never loads a model; :func:`graspsim.policies.registry.check_policy_args` runs it before workers start.
        """

    def domain_warning(self, scene_kind: str) -> str | None:
        """One line when the model this config names was trained on other scene kinds than ``scene_kind``."""
        return None

    @classmethod
    def keys(cls) -> list[str]:
        """The valid argument names, sorted."""
        return sorted(f.name for f in fields(cls))

    @classmethod
    def from_kwargs(cls: type[C], kwargs: Mapping[str, Any]) -> C:
        """The config for keyword arguments (e.g. parsed ``--policy-arg`` values); PolicyArgError if one is bad."""
        check_keys(cls.policy_name, kwargs, cls.keys())
        return cls(**kwargs)

    @classmethod
    def resolve(cls: type[C], config: C | None, kwargs: Mapping[str, Any]) -> C:
        """What a policy constructor was given: ``config`` itself, or one built from keyword arguments."""
        if config is None:
            return cls.from_kwargs(kwargs)
        if kwargs:
            raise TypeError(f"give a {cls.__name__} or keyword arguments, not both")
        if not isinstance(config, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(config).__name__}")
        return config

    def invalid(self, message: str) -> PolicyArgError:
        """A PolicyArgError for a check across fields, naming the policy."""
        return PolicyArgError(f"bad --policy-arg for policy {self.policy_name}: {message}")


@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    # Annotations are strings (from __future__ import annotations): resolve them once per class.
    return typing.get_type_hints(cls)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """``(type, accepts None)`` of a field annotation such as ``int``, ``str | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"config fields take one type (or that type | None), got {hint}")
        return args[0], True
    return hint, False


def _coerce(value: Any, hint: Any, meta: Mapping[str, Any], key: str, policy: str) -> Any:
    """``value`` as the field's type, checked against its choices and range; PolicyArgError naming ``key`` if not."""
    kind, optional = _split_optional(hint)
    if value is None and optional:
        return None
    try:
        converted = _CONVERTERS.get(kind, _to_dataclass)(value, kind)  # each converter refuses None
        if _in_range(converted, meta):
            return converted
    except (TypeError, ValueError):
        pass
    expected = _describe(kind, meta) + (" or null" if optional else "")
    raise PolicyArgError(f"bad --policy-arg {key}={value!r} for policy {policy}: expected {expected}")


def _to_bool(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(value)


def _to_int(value: Any, kind: type) -> int:
    if isinstance(value, bool):
        raise TypeError(value)  # True is an int to Python, never a count to a user
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(value)


def _to_float(value: Any, kind: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _to_str(value: Any, kind: type) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _to_dataclass(value: Any, kind: type) -> Any:
    """A dataclass field (e.g. a GripperSpec): an instance, or a mapping of its fields (JSON from the CLI)."""
    if not dataclasses.is_dataclass(kind):
        raise TypeError(f"unsupported config field type {kind}")
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        return kind(**value)  # TypeError for an unknown key
    raise TypeError(value)


_CONVERTERS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _in_range(value: Any, meta: Mapping[str, Any]) -> bool:
    choices, low, high = meta.get("choices"), meta.get("min"), meta.get("max")
    if choices is not None and value not in choices:
        return False
    if low is not None and (value < low or (meta.get("min_open") and value == low)):
        return False
    return high is None or value <= high


def _describe(kind: Any, meta: Mapping[str, Any]) -> str:
    """What a field accepts, in words: "one of 'a', 'b'", "an integer >= 1", "a number in [0, 1]"."""
    if meta.get("choices") is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    noun = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        kind, f"a {getattr(kind, '__name__', kind)} (or a JSON object of its fields)")
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"{noun} in {'(' if meta.get('min_open') else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{noun} {'>' if meta.get('min_open') else '>='} {low:g}"
    if high is not None:
        return f"{noun} <= {high:g}"
    return noun


@dataclass(frozen=True)
class GraspPlanConfig(PolicyConfig):
    """The mask grasp planner's settings (:func:`~graspsim.grasping.mask_grasps.object_grasps`), shared by every
    policy that plans grasps on a mask."""

    gripper: GripperSpec | None = None
    """The gripper the planner plans for (None: the default :class:`GripperSpec`)."""
    grasp_depth_m: float = arg(GRASP_DEPTH_M, min=0.0)
    """How far past the visible surface the grasp point sits along the approach, metres."""
    margin_m: float = arg(GRASP_MARGIN_M, min=0.0)
    """Clearance added on each side of the object to the jaw opening, metres."""
    max_candidates: int = arg(10, min=1)
    """Most grasps planned on one mask."""
