"""Save / load contract in the style of ``huggingface_hub.ModelHubMixin``.

A model class that inherits :class:`PretrainedMixin` gets

* ``model.config`` -- the JSON-serialisable keyword arguments it was built with (captured
  automatically from ``__init__``), plus ``architecture`` (the registry name, when built
  through :func:`avperceive.create_model`);
* ``model.save_pretrained(dir)`` -> ``dir/config.json`` + ``dir/model.safetensors``;
* ``Model.from_pretrained(dir_or_repo, ...)`` -> a model rebuilt from ``config.json`` with the
  weights loaded strictly (:func:`load_state_dict_strict`).

* ``model.push_to_hub(repo_id)`` -> the same two files uploaded with ``huggingface_hub``.

Only safetensors is ever read here; legacy pickles go through :mod:`avperceive.hub.convert`
(``from_pretrained("x.pt")`` fails with a pointer to ``avperceive convert``).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

__all__ = ["PretrainedMixin", "load_state_dict_strict", "read_config", "load_weights", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

#: keys of config.json that are metadata, not constructor arguments.
META_KEYS = ("model_class", "architecture", "pretrained_cfg", "avperceive_version")


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


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse a ``config.json``; :class:`CheckpointError` when it is not a JSON object."""
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read config ({err})") from err
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: config must be a JSON object")
    return cfg


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file on CPU; :class:`CheckpointError` when it is not one."""
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from err


def constructor_args(cfg: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of a ``config.json`` (metadata keys removed)."""
    return {k: v for k, v in cfg.items() if k not in META_KEYS}


class PretrainedMixin:
    """Mixin for ``nn.Module`` subclasses: config capture, ``save_pretrained``, ``from_pretrained``, ``push_to_hub``.

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
        """Write ``config.json`` and ``model.safetensors`` into ``save_directory`` (created).

        ``config.json`` holds the constructor arguments, ``model_class``, ``architecture`` (when
        built through the registry) and ``pretrained_cfg`` (label names, input settings) when the
        model has one, so a folder alone is enough for ``avperceive.predict``.
        """
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        bad = [k for k, v in cfg.items() if not _jsonable(v)]
        if bad:
            raise CheckpointError(
                f"cannot save {type(self).__name__}: constructor arguments {bad} are not JSON-serialisable"
            )
        cfg = {"model_class": f"{type(self).__module__}.{type(self).__qualname__}", **cfg}
        pcfg = getattr(self, "pretrained_cfg", None)
        if pcfg is not None:
            pdict = pcfg.to_dict() if hasattr(pcfg, "to_dict") else dict(pcfg)
            if _jsonable(pdict):
                cfg["pretrained_cfg"] = pdict
        (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
        return out

    @classmethod
    def _from_config_dict(cls, cfg: dict[str, Any]):
        return cls(**constructor_args(cfg))

    @classmethod
    def from_pretrained(
        cls,
        pretrained: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        sha256: str | None = None,
    ):
        """Build the model from a folder or Hub repo holding ``config.json`` + ``model.safetensors``.

        Args:
            pretrained: folder, ``"local-dir:/path"``, ``"hf-hub:org/repo[@rev]"`` or ``"org/repo"``.
            revision: Hub commit / branch / tag (pin a commit for reproducible loads).
            cache_dir: Hub cache folder (default ``HF_HUB_CACHE``).
            local_files_only: never use the network (``HF_HUB_OFFLINE=1`` does the same).
            token: Hub token for private or gated repos.
            sha256: expected sha256 of ``model.safetensors``, checked when given.

        Returns:
            the model in ``eval()`` mode, weights loaded strictly.

        Raises:
            CheckpointError: missing / unexpected keys, shape mismatches, a config of another
                class, a legacy ``.pt``/``.ckpt`` file (use ``avperceive convert``), an offline miss.
        """
        from .download import resolve_checkpoint

        resolved = resolve_checkpoint(
            pretrained,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            sha256=sha256,
        )
        if resolved.config is None:
            raise CheckpointError(f"{pretrained}: no {CONFIG_NAME} (expected config.json + model.safetensors)")
        cfg = read_config(resolved.config)
        recorded = str(cfg.get("model_class", ""))
        if recorded and recorded.rsplit(".", 1)[-1] != cls.__qualname__.rsplit(".", 1)[-1]:
            raise CheckpointError(
                f"{resolved.config}: holds a {recorded}, not a {cls.__qualname__} "
                "(use avperceive.create_model(source) to build whatever a folder holds)"
            )
        try:
            model = cls._from_config_dict(cfg)
        except TypeError as err:
            raise CheckpointError(
                f"{resolved.config}: constructor arguments do not fit {cls.__qualname__}: {err}"
            ) from err
        arch = cfg.get("architecture")
        if arch:
            model.architecture = arch
        pdict = cfg.get("pretrained_cfg")
        if isinstance(pdict, dict):
            model.pretrained_cfg = _pretrained_cfg_from_dict(pdict)
        load_state_dict_strict(model, load_weights(resolved.weights), source=str(resolved.weights))  # type: ignore[arg-type]
        model.weights_source = resolved.label
        model.eval()  # type: ignore[attr-defined]
        return model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str = "Upload avperceive model",
        private: bool | None = None,
        token: str | bool | None = None,
        branch: str | None = None,
        create_pr: bool = False,
    ):
        """Save ``config.json`` + ``model.safetensors`` to a temporary folder and upload them.

        Creates the repo if needed (``huggingface_hub.HfApi.create_repo(exist_ok=True)``) and
        returns the ``CommitInfo`` of ``upload_folder``; pin its ``oid`` as the revision.
        """
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                commit_message=commit_message,
                revision=branch,
                create_pr=create_pr,
                repo_type="model",
            )


def _pretrained_cfg_from_dict(d: dict[str, Any]):
    """Rebuild a :class:`~avperceive.hub.pretrained_cfg.PretrainedCfg` from its ``to_dict()``."""
    from .pretrained_cfg import pretrained_cfg_from_dict

    return pretrained_cfg_from_dict(d)
