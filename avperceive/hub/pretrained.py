"""Load weights into a model built by the registry: ``create_model(name, pretrained=...)``.

``pretrained`` is ``True`` (the registry's Hub repo, pinned revision and sha256 for the tag),
``"hf-hub:org/repo[@rev]"``, ``"local-dir:/path"``, a folder or a ``.safetensors`` file. Loading is
strict (:func:`avperceive.state_dict.load_state_dict_strict`). A weight set with no published Hub
weights fails for ``pretrained=True`` with the steps to convert the official checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..state_dict import load_state_dict_strict
from .convert import _CONVERTERS, _import_converters
from .download import ResolvedCheckpoint, parse_hub_source, resolve_checkpoint
from .mixin import build_from_config, constructor_args, load_weights, pretrained_cfg_of, read_config
from .pretrained_cfg import PretrainedCfg

__all__ = ["load_pretrained_into", "load_pretrained_module", "no_published_weights_message"]


def _converter_kinds_for(arch: str) -> list[str]:
    _import_converters()
    return sorted(k for k, info in _CONVERTERS.items() if info.architecture == arch)


def no_published_weights_message(name: str, cfg: PretrainedCfg | None) -> str:
    """Why ``pretrained=True`` cannot work for ``name`` and how to convert the official checkpoint."""
    arch = name.partition(".")[0]
    kinds = [cfg.converter] if cfg is not None and cfg.converter else _converter_kinds_for(arch)
    kind = kinds[0] if kinds else "KIND"
    where = cfg.official_checkpoint if cfg is not None and cfg.official_checkpoint else "the authors' release"
    lines = [
        f"{name}: no published avperceive weights on the Hub for this weight set (the registry pins none).",
        f"Convert the official checkpoint: (1) download it from {where};",
        f"(2) `avperceive convert {kind} /path/to/official.ckpt OUT_DIR`"
        + ("" if kinds else " (`avperceive convert --list` shows the kinds)")
        + ";",
        f"(3) avperceive.create_model({arch!r}, pretrained='local-dir:OUT_DIR'). Steps in docs/pretrained.md.",
    ]
    return " ".join(lines)


def _as_json(value: Any) -> Any:
    """``value`` as config.json holds it (tuples become lists), for comparing saved with built."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return value


def _differences(saved: dict[str, Any], built: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(saved) & set(built)):
        if _as_json(saved[key]) != _as_json(built[key]):
            out.append(f"{key}={saved[key]!r} in config.json vs {built[key]!r} in the model")
    return out


def load_pretrained_into(
    model: torch.nn.Module,
    name: str,
    pretrained: bool | str | Path | ResolvedCheckpoint,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> torch.nn.Module:
    """Load the weights of ``pretrained`` into ``model`` (built from ``name``) strictly, in place.

    Args:
        model: a freshly built model (``model.pretrained_cfg`` is the registry's record, if any).
        name: the ``"arch[.tag]"`` it was built from (for messages and the registry's source).
        pretrained: ``True``, a source string / path, or an already resolved checkpoint.
        cache_dir, local_files_only, token: passed to the Hub download.

    Returns:
        ``model`` in ``eval()`` mode. Its ``pretrained_cfg`` becomes the one stored in the
        folder's ``config.json`` when there is one (label names, input settings).

    Raises:
        CheckpointError: no published weights, offline miss, sha256 mismatch, legacy file, or
            weights that do not fit (naming the keys and the config fields that differ).
    """
    cfg: PretrainedCfg | None = getattr(model, "pretrained_cfg", None)
    sha256 = None
    revision = None
    if pretrained is True:
        if cfg is None or not cfg.hub_id:
            raise CheckpointError(no_published_weights_message(name, cfg))
        source: str | Path = f"hf-hub:{cfg.hub_id}"
        revision, sha256 = cfg.revision, cfg.sha256
    elif isinstance(pretrained, (str, Path)):
        source = pretrained
        hub = parse_hub_source(str(pretrained)) if isinstance(pretrained, str) else None
        if hub is not None and cfg is not None and cfg.hub_id == hub.repo_id and hub.revision in (None, cfg.revision):
            revision, sha256 = cfg.revision, cfg.sha256  # the registry's own repo: keep its pins
            source = f"hf-hub:{hub.repo_id}"
    elif isinstance(pretrained, ResolvedCheckpoint):
        source = pretrained.source
    else:
        raise CheckpointError(f"pretrained={pretrained!r}: expected True, a source string or a path")

    resolved = (
        pretrained
        if isinstance(pretrained, ResolvedCheckpoint)
        else resolve_checkpoint(
            source,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            sha256=sha256,
        )
    )
    saved: dict[str, Any] = read_config(resolved.config) if resolved.config is not None else {}
    saved_pcfg = pretrained_cfg_of(saved, resolved.config) if saved else None
    arch = name.partition(".")[0]
    saved_arch = saved.get("architecture")
    if saved_arch and saved_arch != arch:
        raise CheckpointError(
            f"{resolved.config}: weights of {saved_arch!r}, not {arch!r} "
            f"(use avperceive.create_model('local-dir:...') to build what the folder holds)"
        )
    state = load_weights(resolved.weights)
    try:
        load_state_dict_strict(model, state, source=str(resolved.weights))
    except CheckpointError as err:
        built = getattr(model, "config", {}) or {}
        diffs = _differences(constructor_args(saved), built) if saved else []
        if diffs:
            hint = (
                f"; config differs: {'; '.join(diffs)} (pass those as create_model overrides, or build from "
                "the folder alone with create_model('local-dir:...'))"
            )
            richer = CheckpointError(str(err) + hint)
            richer.missing, richer.unexpected, richer.mismatched = err.missing, err.unexpected, err.mismatched
            raise richer from err
        raise
    if saved_pcfg is not None:
        model.pretrained_cfg = saved_pcfg
    model.weights_source = resolved.label
    model.eval()
    return model


def load_pretrained_module(cls: type[torch.nn.Module], source: str | Path, **hub_kwargs) -> torch.nn.Module:
    """Build any ``nn.Module`` class from a folder / Hub repo written by ``avperceive convert``.

    For single reference modules (an adapter, a head) that do not inherit
    :class:`~avperceive.hub.mixin.PretrainedMixin`: ``cls(**config.json args)``, weights loaded strictly.

    Args:
        cls: the module class (``avperceive.nn.heads.TemporalCMBSHead``).
        source: folder, ``"local-dir:/path"`` or ``"hf-hub:org/repo[@rev]"``.
        **hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``sha256``.
    """
    resolved = resolve_checkpoint(source, **hub_kwargs)
    if resolved.config is None:
        raise CheckpointError(f"{source}: no config.json (expected config.json + model.safetensors)")
    cfg = read_config(resolved.config)
    recorded = str(cfg.get("model_class", ""))
    if recorded and recorded.rsplit(".", 1)[-1] != cls.__qualname__.rsplit(".", 1)[-1]:
        raise CheckpointError(f"{resolved.config}: holds a {recorded}, not a {cls.__qualname__}")
    module = build_from_config(cls, constructor_args(cfg), config_path=resolved.config, what=cls.__qualname__)
    load_state_dict_strict(module, load_weights(resolved.weights), source=str(resolved.weights))
    return module.eval()
