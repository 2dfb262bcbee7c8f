"""The one registry of avperceive, in the style of timm: ``register_model``, ``create_model``, ``list_models``.

It holds the assembled models (``dgsct-ave``, ``lavish-ave-tiny``, ...) and the backbones under
their timm names (``swinv2_large_window12_192``, ``htsat_audioset``, ``swinv2_test_tiny``, ...).
It sits below both :mod:`avperceive.backbones` and :mod:`avperceive.models` so that each registers
its builders here; the first look-up imports both packages (which registers everything), and
weight loading (:mod:`avperceive.hub.pretrained`, :mod:`avperceive.hub.download`) is imported only
when weights are asked for.

An architecture is registered by decorating a builder function::

    @register_model("dgsct-ave-tiny", pretrained_cfgs={"untrained": PretrainedCfg(...)})
    def dgsct_ave_tiny(**overrides) -> DGSCT: ...

``create_model("arch.tag", pretrained=...)`` calls the builder with ``overrides`` and, when asked,
loads weights (see the ``pretrained`` argument). A weight set is described by a
:class:`PretrainedCfg` (defined in :mod:`avperceive.hub.pretrained_cfg`): where it lives, which
revision, its sha256, licence, paper and the input settings predict needs. ``create_model`` also
takes a source as the name (``"hf-hub:org/repo"``, ``"local-dir:/path"``): the architecture is
then read from the folder's ``config.json``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CheckpointError, ConfigError
from .hub.pretrained_cfg import PretrainedCfg

__all__ = [
    "PretrainedCfg",
    "register_model",
    "register_config",
    "create_model",
    "list_models",
    "get_pretrained_cfg",
    "is_model",
    "model_entrypoint",
    "split_model_name",
]


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
        name: architecture name (``"dgsct-ave"``); no dots (``.`` separates the tag).
        pretrained_cfgs: ``{tag: PretrainedCfg}``; the first (or ``default_tag``) is the default.
        default_tag: the tag used when ``create_model`` gets the bare architecture name.
    """
    if "." in name or ":" in name:
        raise ConfigError(f"model name {name!r} must not contain '.' or ':'")

    def deco(builder):
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} registered twice")
        cfgs = {}
        for tag, cfg in (pretrained_cfgs or {}).items():
            if "." in tag:
                raise ConfigError(f"tag {tag!r} of {name!r} must not contain '.'")
            cfgs[tag] = dataclasses.replace(cfg, architecture=name) if cfg.architecture != name else cfg
        if default_tag is not None and default_tag not in cfgs:
            raise ConfigError(f"default_tag {default_tag!r} of {name!r} is not among {sorted(cfgs)}")
        tag = default_tag or (next(iter(cfgs)) if cfgs else None)
        _REGISTRY[name] = _Entry(name, builder, cfgs, tag)
        return builder

    return deco


def register_config(
    name: str, cls: type, doc: str, pretrained_cfgs: dict[str, PretrainedCfg] | None = None, **config
) -> Callable[..., Any]:
    """Register ``cls`` with the constructor arguments ``config`` under ``name`` (timm's one builder per variant).

    The builder is ``builder(**overrides) = cls(**{**config, **overrides})``; it is returned, named
    ``name`` and documented by ``doc``, so the module can bind it to a name of its own. The first of
    ``pretrained_cfgs`` is the default weight set.
    """

    def builder(**overrides):
        return cls(**{**config, **overrides})

    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = cls.__module__
    builder.__doc__ = doc
    return register_model(name, pretrained_cfgs=pretrained_cfgs)(builder)


def _ensure_registered() -> None:
    from . import backbones, models  # noqa: F401  (importing the packages registers every builder)


def split_model_name(name: str) -> tuple[str, str | None]:
    """``"arch.tag"`` -> ``("arch", "tag")``; ``"arch"`` -> ``("arch", None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


_split = split_model_name


def model_entrypoint(name: str) -> Callable[..., Any]:
    """The builder registered under ``name`` (tag ignored)."""
    _ensure_registered()
    arch, _ = _split(name)
    if arch not in _REGISTRY:
        close = difflib.get_close_matches(arch, list(_REGISTRY), n=5, cutoff=0.5)
        close += [n for n in fnmatch.filter(_REGISTRY, f"*{arch.split('-')[0]}*") if n not in close]
        hint = f"; did you mean {', '.join(close[:5])}?" if close else ""
        raise ConfigError(f"unknown model {arch!r}{hint} (avperceive.list_models() lists them)")
    return _REGISTRY[arch].builder


def is_model(name: str) -> bool:
    """Whether ``name`` (``"arch"`` or ``"arch.tag"``, tag not checked) is a registered architecture."""
    _ensure_registered()
    return split_model_name(name)[0] in _REGISTRY


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


def _is_source(name: str) -> bool:
    return name.startswith(("hf-hub:", "hf_hub:", "local-dir:"))


def _create_from_source(source: str, hub_kwargs: dict[str, Any], overrides: dict[str, Any]):
    from .hub.download import resolve_checkpoint
    from .hub.mixin import build_from_config, constructor_args, read_config
    from .hub.pretrained import load_pretrained_into

    resolved = resolve_checkpoint(source, **hub_kwargs)
    if resolved.config is None:
        raise ConfigError(f"{source}: no config.json, so the architecture is unknown; use create_model(arch, "
                          f"pretrained={source!r})")
    cfg = read_config(resolved.config)
    arch = cfg.get("architecture")
    if not arch:
        raise ConfigError(f"{resolved.config}: no 'architecture' field; use create_model(arch, pretrained={source!r})")
    try:
        builder = model_entrypoint(arch)
    except ConfigError as err:
        raise ConfigError(f"{resolved.config}: field 'architecture': {err}") from err
    model = build_from_config(builder, {**constructor_args(cfg), **overrides}, config_path=resolved.config, what=arch)
    model.architecture = arch
    model.pretrained_cfg = get_pretrained_cfg(arch)
    load_pretrained_into(model, arch, resolved)
    return model


def create_model(
    name: str,
    *,
    pretrained: bool | str | Path | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    **overrides,
):
    """Build a registered model, optionally with weights.

    Args:
        name: ``"arch"``, ``"arch.tag"``, or a source (``"hf-hub:org/repo[@rev]"``,
            ``"local-dir:/path"``) whose ``config.json`` names the architecture.
        pretrained: ``None``/``False`` (random init), ``True`` (the registry's source for the tag),
            ``"hf-hub:org/repo[@revision]"``, ``"local-dir:/path"``, or a folder / ``.safetensors`` path.
        cache_dir: Hub cache folder (default ``HF_HUB_CACHE``).
        local_files_only: never touch the network (``HF_HUB_OFFLINE=1`` does the same).
        token: Hub token for private / gated repos.
        **overrides: constructor arguments passed to the builder (``num_classes=...``).

    Returns:
        the model; in ``eval()`` mode when weights were loaded.
    """
    hub_kwargs = {"cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
    if _is_source(name):
        if pretrained not in (None, True):
            raise ConfigError(f"create_model({name!r}): the name is already a weight source; drop pretrained=")
        return _create_from_source(name, hub_kwargs, overrides)
    builder = model_entrypoint(name)
    arch, _ = _split(name)
    pretrained_cfg = get_pretrained_cfg(name)
    if pretrained is True and (pretrained_cfg is None or not pretrained_cfg.hub_id):
        from .hub.pretrained import no_published_weights_message

        raise CheckpointError(no_published_weights_message(name, pretrained_cfg))  # before building a large model
    model = builder(**overrides)
    model.architecture = arch
    model.pretrained_cfg = pretrained_cfg
    if pretrained is not None and pretrained is not False:
        from .hub.pretrained import load_pretrained_into

        load_pretrained_into(model, name, pretrained, **hub_kwargs)
    return model
