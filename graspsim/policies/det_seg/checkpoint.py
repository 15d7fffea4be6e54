"""det_seg / GR-ConvNet checkpoints (:mod:`graspsim.learn.checkpoint`): the network they describe, with its weights.

``metadata.json`` names the kind (``"model"``) and the network's ``"config"``
(:class:`DictConfig`: the config dataclasses as JSON, tuples as lists, unknown keys refused).
For the policies, the offline evaluation and ``--init``; imports no training code.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from graspsim.config import check_fields
from graspsim.learn.checkpoint import load_weights, read_metadata


class DictConfig:
    """Mixin for a network's ``@dataclass`` config: ``to_dict`` (JSON-ready) and ``from_dict`` (strict)."""

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


def net_classes(kind: str) -> tuple[type, type]:
    """``(network class, config class)`` of model ``kind`` (``det_seg`` or ``grconvnet``); imports torch."""
    if kind == "det_seg":
        from graspsim.policies.det_seg.model import DetSegConfig, DetSegNet

        return DetSegNet, DetSegConfig
    if kind == "grconvnet":
        from graspsim.policies.det_seg.grconvnet import GrConvNet, GrConvNetConfig

        return GrConvNet, GrConvNetConfig
    raise ValueError(f"unknown model kind {kind!r} (det_seg or grconvnet)")


def build_net(kind: str, config=None):
    """A freshly initialised network of ``kind`` (``config``: its config dataclass, a dict, or None = defaults)."""
    net_class, config_class = net_classes(kind)
    return net_class(config_class.coerce(config))


def checkpoint_meta(path: str | Path, kind: str | None = None) -> tuple[dict, dict | None]:
    """``(metadata, network config)`` of checkpoint directory ``path``.

    FileNotFoundError names the directory and the missing file(s); ValueError if
    ``kind`` is given and the checkpoint holds another kind.
    """
    path = Path(path)
    meta = read_metadata(path)
    model_kind = meta.get("model")
    if kind is not None and model_kind != kind:
        raise ValueError(f"checkpoint {path} holds a {model_kind!r} model, not {kind!r}")
    config = meta.get("config")
    if model_kind == "det_seg" and isinstance(config, dict) and "seg_stride" not in config:
        config = {**config, "seg_stride": 4}  # written before the stride-2 segmentation head existed
    return meta, config


def load_checkpoint(path: str | Path, kind: str | None = None):
    """The network stored in checkpoint directory ``path``, in eval mode (errors: :func:`checkpoint_meta`).

    The weights' sha256 is checked when the metadata records one.
    """
    meta, config = checkpoint_meta(path, kind)
    net = build_net(meta.get("model"), config)
    net.load_state_dict(load_weights(Path(path), meta))
    return net.eval()


def init_config(path: str | Path, kind: str, with_meta: bool = False):
    """The network config of ``--init`` checkpoint ``path`` (the base its run overrides); ``(metadata, config)``
    with ``with_meta``. FileNotFoundError / ValueError as :func:`checkpoint_meta`, prefixed with "--init"."""
    try:
        meta, config = checkpoint_meta(path, kind)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"--init {exc}") from None
    return (meta, dict(config or {})) if with_meta else dict(config or {})


def load_init_weights(net, path: str | Path, kind: str) -> dict:
    """Copy the weights of checkpoint ``path`` into ``net``; return that checkpoint's metadata.

    ``input_size`` may differ (every layer is convolutional or works on crops); any other layer mismatch raises
    ValueError naming the first differing tensors.
    """
    meta, _ = init_config(path, kind, with_meta=True)
    weights = load_weights(Path(path), meta)
    own = net.state_dict()
    bad = sorted(k for k in set(own) | set(weights)
                 if k not in own or k not in weights or tuple(own[k].shape) != tuple(weights[k].shape))
    if bad:
        raise ValueError(f"--init checkpoint {path} does not fit this network config "
                         f"({len(bad)} tensors differ, e.g. {', '.join(bad[:3])})")
    net.load_state_dict(weights)
    return meta
