"""Robustness sweeps: run the same scenes under one varied physical or perception setting.

GraspNet-1Billion reports grasp quality over a sweep of friction coefficients;
graspsim sweeps the five settings of :data:`SWEEP_PARAMETERS` (product friction
and mass scale, image gain, camera pose jitter, depth noise) this way, each one
deterministic per scene seed (the scenes, targets and policy seeds stay the same
across a sweep's settings, only the swept quantity changes).

A setting is applied to a :class:`~graspsim.bench.runner.RunSpec` (its
``physics`` dict or its ``env_overrides`` dict), so it is stored in the run's
``run.json`` and a resumed run must use the same value.

Usage::

    sweep = parse_sweep("friction=0.3,0.6,1.0")
    for value in sweep.values:
        spec_v = apply_setting(spec, sweep.name, value)
        run_bench(spec_v, out / setting_label(sweep.name, value))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from graspsim.config import PhysicsConfig

if TYPE_CHECKING:  # runner imports heavier modules; sweeps stays cheap to import
    from graspsim.bench.runner import RunSpec

_DEFAULT_PHYSICS = PhysicsConfig()


@dataclass(frozen=True)
class SweepParameter:
    """One sweepable setting.

    ``target`` is ``"physics"`` (a key of ``RunSpec.physics``, i.e. a
    :class:`PhysicsConfig` field) or ``"env"`` (a PickEnv keyword argument in
    ``RunSpec.env_overrides``); ``key`` is that field or argument. ``default``
    is the value a run without the setting uses; values must be ``>= minimum``
    (or ``> minimum`` when ``minimum_exclusive``).
    """

    name: str
    target: str
    key: str
    description: str
    unit: str
    default: float
    minimum: float = 0.0
    minimum_exclusive: bool = False

    def check(self, value: float) -> float:
        """``value`` as a float, or ValueError naming the parameter and the problem."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"sweep value for {self.name!r} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"sweep value for {self.name!r} must be finite, got {value!r}")
        if number < self.minimum or (self.minimum_exclusive and number == self.minimum):
            bound = ">" if self.minimum_exclusive else ">="
            raise ValueError(f"sweep value for {self.name!r} must be {bound} {self.minimum:g} "
                             f"({self.description}), got {number:g}")
        return number


SWEEP_PARAMETERS: dict[str, SweepParameter] = {
    p.name: p for p in (
        SweepParameter("friction", "physics", "product_lateral_friction",
                       "lateral friction coefficient of every product", "coefficient",
                       _DEFAULT_PHYSICS.product_lateral_friction),
        SweepParameter("mass_scale", "physics", "product_mass_scale",
                       "factor on every product's catalog mass", "factor",
                       _DEFAULT_PHYSICS.product_mass_scale, minimum_exclusive=True),
        SweepParameter("lighting", "env", "lighting_gain",
                       "factor on the rendered RGB (replaces the scene's own gain)", "factor", 1.0),
        SweepParameter("camera_jitter", "env", "camera_jitter_m",
                       "uniform noise on camera eye and target per axis", "m", 0.0),
        SweepParameter("depth_noise", "env", "depth_noise_m",
                       "std of Gaussian noise on the perceived depth", "m", 0.0),
    )
}


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep: the parameter ``name`` and its ``values`` in the order given."""

    name: str
    values: tuple[float, ...]


def _parameter(name: str) -> SweepParameter:
    try:
        return SWEEP_PARAMETERS[name]
    except KeyError:
        raise ValueError(f"unknown sweep parameter {name!r}; choose one of {', '.join(SWEEP_PARAMETERS)}") from None


def parse_sweep(text: str) -> Sweep:
    """Parse ``"NAME=V1,V2,..."`` (e.g. ``"friction=0.3,0.6,1.0"``) into a :class:`Sweep`.

    Raises ValueError naming the problem: no ``=``, unknown name, no values, an
    empty value (``"0.3,,1"``), a value that is not a finite number, one below
    the parameter's minimum (negative friction, a mass scale of 0, ...), or two
    values that give the same setting label (the same run directory).
    """
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"a sweep looks like NAME=V1,V2,... (e.g. friction=0.3,0.6,1.0), got {text!r}")
    name, _, rest = text.partition("=")
    name = name.strip()
    if not name:
        raise ValueError(f"sweep {text!r} names no parameter; choose one of {', '.join(SWEEP_PARAMETERS)}")
    parameter = _parameter(name)
    if not rest.strip():
        raise ValueError(f"sweep {name!r} has no values; give them as {name}=V1,V2,...")
    values = []
    for position, item in enumerate(rest.split(","), start=1):
        item = item.strip()
        if not item:
            raise ValueError(f"sweep {name!r}: value {position} is empty in {rest!r}")
        values.append(parameter.check(item))
    labels = [setting_label(name, value) for value in values]
    for i, value in enumerate(values):
        if labels[i] in labels[:i]:
            raise ValueError(f"sweep {name!r} lists the value {value:g} twice")
    return Sweep(name=name, values=tuple(values))


def apply_setting(spec: "RunSpec", name: str, value: float) -> "RunSpec":
    """A copy of ``spec`` with sweep parameter ``name`` set to ``value``.

    Physics parameters change one key of ``spec.physics``; perception ones one
    key of ``spec.env_overrides``. Everything else (and ``spec`` itself) stays
    as it was. Raises ValueError for an unknown name or a bad value.
    """
    parameter = _parameter(name)
    number = parameter.check(value)
    if parameter.target == "physics":
        return replace(spec, physics={**spec.physics, parameter.key: number})
    return replace(spec, env_overrides={**spec.env_overrides, parameter.key: number})


def setting_label(name: str, value: float) -> str:
    """``"friction=0.3"``: names a setting; safe as a directory name (letters, digits, ``_=.+-``).

    The value is its shortest plain text (12 significant digits): 0.3 -> "0.3", 1.0 -> "1", -0.0 -> "0".
    """
    _parameter(name)
    text = format(float(value), ".12g")
    return f"{name}={'0' if text == '-0' else text}"
