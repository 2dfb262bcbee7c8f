"""Model registry in the style of timm: ``register_model``, ``create_model``, ``list_models``.

An architecture is registered by decorating a builder function::

    @register_model("dgsct-ave-tiny", pretrained_cfgs={"official": PretrainedCfg(...)})
    def dgsct_ave_tiny(**overrides) -> DGSCT: ...

``create_model("arch.tag", pretrained=...)`` calls the builder with ``overrides`` and, when asked,
loads weights (see the ``pretrained`` argument). A weight set is described by a
:class:`PretrainedCfg`: where it lives, which revision, its sha256, licence, paper and the input
settings predict needs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["PretrainedCfg", "register_model", "create_model", "list_models", "get_pretrained_cfg", "model_entrypoint"]


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything known about one weight set of an architecture.

    Attributes:
        hub_id: Hugging Face repo id (``org/name``) holding ``config.json`` + ``model.safetensors``.
        revision: pinned commit of that repo.
        sha256: sha256 of ``model.safetensors`` (verified on load when set).
        license: licence of the weights.
        paper: the paper the weights come from.
        input: input settings predict needs (``sample_rate``, ``segments``, ``segment_seconds``,
            ``frames_per_segment``, ``size``, ``mean``, ``std``, ``frontend``, ...).
        label_names: class names in output order.
        notes: free text (how the weights were converted, known caveats).
    """

    hub_id: str | None = None
    revision: str | None = None
    sha256: str | None = None
    license: str | None = None
    paper: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    label_names: tuple[str, ...] = ()
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["label_names"] = list(self.label_names)
        return d


@dataclass
class _Entry:
    name: str
    builder: Callable[..., Any]
    pretrained_cfgs: dict[str, PretrainedCfg]
    default_tag: str | None


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    *,
    pretrained_cfgs: dict[str, PretrainedCfg] | None = None,
    default_tag: str | None = None,
):
    """Decorator: register ``builder(**overrides) -> nn.Module`` under ``name``.

    Args:
        name: architecture name (``"dgsct-ave"``); tags are added with ``pretrained_cfgs``.
        pretrained_cfgs: ``{tag: PretrainedCfg}``; the first (or ``default_tag``) is the default.
    """

    def deco(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        cfgs = dict(pretrained_cfgs or {})
        tag = default_tag or (next(iter(cfgs)) if cfgs else None)
        _REGISTRY[name] = _Entry(name, builder, cfgs, tag)
        return builder

    return deco


def _ensure_registered() -> None:
    from .. import models  # noqa: F401  (importing the package registers every model)


def _split(name: str) -> tuple[str, str | None]:
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def model_entrypoint(name: str) -> Callable[..., Any]:
    """The builder registered under ``name`` (tag ignored)."""
    _ensure_registered()
    arch, _ = _split(name)
    if arch not in _REGISTRY:
        close = fnmatch.filter(_REGISTRY, f"*{arch.split('-')[0]}*")
        hint = f"; did you mean {', '.join(close[:5])}?" if close else ""
        raise ConfigError(f"unknown model {arch!r}{hint} (avperceive.list_models() lists them)")
    return _REGISTRY[arch].builder


def get_pretrained_cfg(name: str) -> PretrainedCfg | None:
    """The :class:`PretrainedCfg` of ``arch.tag`` (or of the default tag), or ``None``."""
    model_entrypoint(name)
    arch, tag = _split(name)
    entry = _REGISTRY[arch]
    tag = tag or entry.default_tag
    if tag is None:
        return None
    if tag not in entry.pretrained_cfgs:
        raise ConfigError(f"model {arch!r} has no weight set {tag!r}; known: {sorted(entry.pretrained_cfgs)}")
    return entry.pretrained_cfgs[tag]


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered names matching the shell-style ``pattern``; with ``pretrained=True``, ``arch.tag`` names."""
    _ensure_registered()
    names: list[str] = []
    for arch, entry in sorted(_REGISTRY.items()):
        if pretrained:
            names += [f"{arch}.{t}" for t in entry.pretrained_cfgs]
        else:
            names.append(arch)
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def create_model(name: str, *, pretrained: bool | str | None = None, **overrides):
    """Build a registered model, optionally with weights.

    Args:
        name: ``"arch"`` or ``"arch.tag"``.
        pretrained: ``None``/``False`` (random init), ``True`` (the registry's source for the tag),
            ``"hf-hub:org/repo[@revision]"``, ``"local-dir:/path"``, or a folder / ``.safetensors`` path.
        **overrides: constructor arguments passed to the builder (``num_classes=...``).
    """
    builder = model_entrypoint(name)
    arch, _ = _split(name)
    model = builder(**overrides)
    model.architecture = arch
    model.pretrained_cfg = get_pretrained_cfg(name)
    if pretrained:
        from ..hub.pretrained import load_pretrained_into

        load_pretrained_into(model, name, pretrained)
    return model
