"""JSON round trip for the networks' config dataclasses (tuples stored as lists, unknown keys refused)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from graspsim.config import check_fields


class DictConfig:
    """Mixin for a ``@dataclass`` config: ``to_dict`` (JSON-ready) and ``from_dict`` (strict)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        check_fields(cls, data)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def coerce(cls, value):
        """``value`` as a config: None -> the defaults, a dict -> :meth:`from_dict`, a config -> itself."""
        if value is None:
            return cls()
        return cls.from_dict(value) if isinstance(value, dict) else value
