"""``PretrainedCfg``: the record of one weight set (where it lives, what it expects, what it outputs).

Defined here, in the hub layer, so that a saved folder's ``config.json`` can carry it and be
read back without importing the models; :mod:`avperceive.models.registry` re-exports it.
Fields follow timm's ``PretrainedCfg`` and open_clip's pretrained tags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ConfigError

__all__ = ["PretrainedCfg", "pretrained_cfg_from_dict"]


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything known about one weight set of an architecture.

    Attributes:
        hub_id: Hugging Face repo id (``org/name``) holding ``config.json`` + ``model.safetensors``;
            ``None`` when no weights are published (random init, or convert the official checkpoint).
        revision: pinned commit of that repo (40 hex digits).
        sha256: sha256 of ``model.safetensors`` (verified on load when set).
        license: licence of the weights.
        paper: the paper the weights come from.
        input: input settings predict needs: ``task`` (``"ave"`` | ``"clip-classification"`` |
            ``"av-correspondence"``), ``sample_rate``, ``segments``, ``segment_seconds``,
            ``frames_per_segment``, ``size``, ``mean``, ``std``, ``audio_frontend``, ``audio_steps``,
            ``extra_inputs`` (see :mod:`avperceive.models.inputs`).
        label_names: class names in output order.
        notes: free text (how the weights were converted, known caveats).
        architecture: the registered architecture (filled in by ``register_model``).
        converter: ``avperceive convert`` kind that turns the official checkpoint into these weights.
        official_checkpoint: where the official checkpoint is published (URL or description).
    """

    hub_id: str | None = None
    revision: str | None = None
    sha256: str | None = None
    license: str | None = None
    paper: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    label_names: tuple[str, ...] = ()
    notes: str = ""
    architecture: str | None = None
    converter: str | None = None
    official_checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["label_names"] = list(self.label_names)
        return d


_STRING_FIELDS = ("hub_id", "revision", "sha256", "license", "paper", "notes", "architecture", "converter",
                  "official_checkpoint")


def pretrained_cfg_from_dict(d: dict[str, Any]) -> PretrainedCfg:
    """Inverse of :meth:`PretrainedCfg.to_dict`; unknown keys are ignored.

    Raises:
        ConfigError: ``d`` is not a mapping, or a field has the wrong type (named:
            ``pretrained_cfg.label_names must be a list of strings``).
    """
    if not isinstance(d, dict):
        raise ConfigError(f"pretrained_cfg must be a JSON object, not a {type(d).__name__}")
    known = {f.name for f in fields(PretrainedCfg)}
    kwargs = {k: v for k, v in d.items() if k in known}
    for key in _STRING_FIELDS:
        if kwargs.get(key) is not None and not isinstance(kwargs[key], str):
            raise ConfigError(f"pretrained_cfg.{key} must be a string or null, got {kwargs[key]!r}")
    if "label_names" in kwargs:
        names = kwargs["label_names"] or ()
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"pretrained_cfg.label_names must be a list of strings, got {names!r}")
        kwargs["label_names"] = tuple(names)
    if "input" in kwargs:
        section = kwargs["input"] or {}
        if not isinstance(section, dict):
            raise ConfigError(f"pretrained_cfg.input must be a JSON object, got {section!r}")
        kwargs["input"] = dict(section)
    return PretrainedCfg(**kwargs)
