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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..errors import CheckpointError, ConfigError
from ..state_dict import load_state_dict_strict
from .safetensors_file import read_safetensors

__all__ = [
    "PretrainedMixin",
    "load_state_dict_strict",
    "read_config",
    "load_weights",
    "build_from_config",
    "pretrained_cfg_of",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
]

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


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse a ``config.json``; :class:`ConfigError` naming the file when it is not a JSON object."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: config must be a JSON object, not a {type(cfg).__name__}")
    for key in ("model_class", "architecture"):
        if key in cfg and not isinstance(cfg[key], str):
            raise ConfigError(f"{path}: field {key!r} must be a string, got {cfg[key]!r}")
    return cfg


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file on CPU after checking its header against the file
    (:func:`avperceive.hub.safetensors_file.check_safetensors`); :class:`CheckpointError` otherwise."""
    return read_safetensors(path)


def _suspicious_fields(args: dict[str, Any], error: BaseException) -> list[str]:
    """Constructor arguments a failure points at: negative numbers (sizes), and values the error quotes."""
    out = []
    text = str(error)
    for key, value in args.items():
        values = value if isinstance(value, list) else [value]
        negative = any(isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0 for v in values)
        quoted = isinstance(value, str) and len(value) > 0 and (repr(value) in text or f"'{value}'" in text)
        if negative or quoted or key in text.split():
            out.append(f"{key}={value!r}")
    return out


def build_from_config(factory: Callable[..., Any], args: dict[str, Any], *, config_path: str | Path, what: str):
    """``factory(**args)`` with constructor failures turned into a :class:`ConfigError` naming the file.

    A config of the right keys with a wrong type (``"depth": "four"``) or an impossible value
    (``"dim": -8``) makes the constructor raise ``TypeError`` / ``ValueError`` / ``RuntimeError``
    deep inside torch; the error then names ``config_path``, the class, the reason and the
    fields that look wrong.
    """
    try:
        return factory(**args)
    except ConfigError as err:
        raise ConfigError(f"{config_path}: {err}") from err
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError, IndexError, OverflowError) as err:
        fields = _suspicious_fields(args, err)
        hint = f"; check {', '.join(fields)}" if fields else ""
        raise ConfigError(
            f"{config_path}: constructor arguments do not fit {what} ({type(err).__name__}: {err}){hint}"
        ) from err


def pretrained_cfg_of(cfg: dict[str, Any], config_path: str | Path):
    """The ``pretrained_cfg`` section of a config as a :class:`PretrainedCfg` (``None`` when absent)."""
    from .pretrained_cfg import pretrained_cfg_from_dict

    if cfg.get("pretrained_cfg") is None:
        return None
    try:
        return pretrained_cfg_from_dict(cfg["pretrained_cfg"])
    except ConfigError as err:
        raise ConfigError(f"{config_path}: {err}") from err


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
        pcfg = pretrained_cfg_of(cfg, resolved.config)
        model = build_from_config(cls, constructor_args(cfg), config_path=resolved.config, what=cls.__qualname__)
        arch = cfg.get("architecture")
        if arch:
            model.architecture = arch
        if pcfg is not None:
            model.pretrained_cfg = pcfg
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
