"""Save / load contract in the style of ``huggingface_hub.ModelHubMixin``.

A model class that inherits :class:`PretrainedMixin` gets

* ``model.config`` -- the JSON-serialisable keyword arguments it was built with (captured
  automatically from ``__init__``), plus ``architecture`` (the registry name, when built
  through :func:`avperceive.create_model`);
* ``model.save_pretrained(dir)`` -> ``dir/config.json`` + ``dir/model.safetensors``;
* ``Model.from_pretrained(dir_or_repo, ...)`` -> a model rebuilt from ``config.json`` with the
  weights loaded strictly (:func:`load_state_dict_strict`).

Only safetensors is ever read here; legacy pickles go through :mod:`avperceive.hub.convert`.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

__all__ = ["PretrainedMixin", "load_state_dict_strict", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def load_state_dict_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], *, source: str = "") -> None:
    """Load ``state_dict`` into ``module``; any missing/unexpected key or shape mismatch raises.

    Raises:
        CheckpointError: naming every missing and unexpected key and every shape mismatch.
    """
    own = module.state_dict()
    missing = sorted(k for k in own if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in own)
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in sorted(own)
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        where = f" from {source}" if source else ""
        raise CheckpointError(
            f"weights{where} do not fit {type(module).__name__}",
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )
    module.load_state_dict(state_dict, strict=True)


class PretrainedMixin:
    """Mixin for ``nn.Module`` subclasses: config capture, ``save_pretrained``, ``from_pretrained``.

    Constructor arguments must be JSON-serialisable (numbers, strings, lists, dicts, None) for
    the model to be saved; this is checked at save time with a clear error.
    """

    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        original_init = cls.__init__
        if getattr(original_init, "_captures_config", False):
            return
        signature = inspect.signature(original_init)

        def __init__(self, *args, **init_kwargs):
            if not hasattr(self, "_config_owner"):
                bound = signature.bind(self, *args, **init_kwargs)
                bound.apply_defaults()
                captured = {k: v for k, v in list(bound.arguments.items())[1:]}
                extra = captured.pop("kwargs", None) if "kwargs" in signature.parameters else None
                if extra:
                    captured.update(extra)
                object.__setattr__(self, "_config_owner", cls)
                object.__setattr__(self, "_init_config", captured)
            original_init(self, *args, **init_kwargs)

        __init__._captures_config = True  # type: ignore[attr-defined]
        __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
        __init__.__doc__ = original_init.__doc__
        __init__.__signature__ = signature  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]

    @property
    def config(self) -> dict[str, Any]:  # type: ignore[override]
        cfg = dict(getattr(self, "_init_config", {}))
        arch = getattr(self, "architecture", None)
        if arch:
            cfg["architecture"] = arch
        return cfg

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``save_directory`` (created)."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        bad = [k for k, v in cfg.items() if not _jsonable(v)]
        if bad:
            raise CheckpointError(
                f"cannot save {type(self).__name__}: constructor arguments {bad} are not JSON-serialisable"
            )
        cfg = {"model_class": f"{type(self).__module__}.{type(self).__qualname__}", **cfg}
        (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
        return out

    @classmethod
    def _from_config_dict(cls, cfg: dict[str, Any]):
        cfg = {k: v for k, v in cfg.items() if k not in ("model_class", "architecture")}
        return cls(**cfg)

    @classmethod
    def from_pretrained(cls, pretrained: str | Path, **hub_kwargs):
        """Build the model from a folder (or Hub repo) holding ``config.json`` + ``model.safetensors``.

        ``hub_kwargs`` (``revision``, ``cache_dir``, ``local_files_only``, ``token``) are passed to
        :func:`avperceive.hub.download.resolve_pretrained` for Hub ids.
        """
        from .download import resolve_pretrained

        folder = resolve_pretrained(str(pretrained), **hub_kwargs)
        cfg_path = folder / CONFIG_NAME
        if not cfg_path.is_file():
            raise CheckpointError(f"{folder}: no {CONFIG_NAME} (expected config.json + model.safetensors)")
        cfg = json.loads(cfg_path.read_text())
        model = cls._from_config_dict(cfg)
        arch = cfg.get("architecture")
        if arch:
            model.architecture = arch
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(f"{folder}: no {WEIGHTS_NAME}")
        load_state_dict_strict(model, load_file(str(weights)), source=str(weights))  # type: ignore[arg-type]
        return model
