"""``avperceive convert KIND SRC OUT_DIR``: official checkpoint -> ``config.json`` + ``model.safetensors``.

Steps: read ``SRC`` (``torch.load(weights_only=True)`` + the Lightning metadata allow-list, or
safetensors) with a progress bar for large files; map the keys with the converter registered as
``KIND``; build the converter's target architecture (``register_converter(..., architecture=)``,
or ``--arch``) with the constructor arguments the converter inferred, and load the result
strictly (missing / unexpected keys and shape mismatches stop the conversion); write the folder;
print every key dropped on purpose and why.

The target is built here, in the command line, because validating a conversion against the model
needs the model registry: :mod:`avperceive.hub` holds the key maps and never imports
:mod:`avperceive.models`.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..errors import CheckpointError, ConfigError
from ..hub.convert import ConvertedCheckpoint, convert_checkpoint, converter_info, list_converters
from ..hub.mixin import CONFIG_NAME, WEIGHTS_NAME
from ..models import create_model, list_models
from ..state_dict import load_state_dict_strict
from . import EXIT_OK

__all__ = [
    "SUMMARY", "DESCRIPTION", "add_arguments", "run",
    "convert_to_folder", "build_target", "target_of", "DEFAULT_TARGETS",
]

#: files larger than this get a progress bar while they are read.
LARGE_FILE_BYTES = 32 * 1024 * 1024

#: Targets of the converter kinds registered without ``architecture=`` (the registration wins when
#: it names one). Class paths are ``package.module:Class``; constructor args come from the converter.
DEFAULT_TARGETS = {
    "dgsct-adapter": "avperceive.nn.adapters:DGSCTAdapter",
    "lavish-adapter": "avperceive.nn.adapters:LAVisHAdapter",
    "dgsct-adapter-bank": "avperceive.nn.adapter_bank:AdapterBank",
    "lavish-adapter-bank": "avperceive.nn.adapter_bank:AdapterBank",
    "htsat": "avperceive.backbones.htsat:HTSAT",
    "swinv2-timm": "avperceive.backbones.swinv2:SwinV2",
    "mc3-torchvision": "avperceive.backbones.mc3:MC3",
}


def target_of(kind: str) -> str | None:
    """The architecture a converter kind targets: its registration's, else :data:`DEFAULT_TARGETS`."""
    return converter_info(kind).architecture or DEFAULT_TARGETS.get(kind)


def build_target(architecture: str, config: dict[str, Any]) -> torch.nn.Module:
    """Build the model a converter targets: a registered name, or ``"package.module:Class"``."""
    if ":" in architecture:
        module_name, _, cls_name = architecture.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"target class {architecture!r} cannot be imported: {err}") from err
        try:
            return cls(**config)
        except TypeError as err:
            raise CheckpointError(f"converted config does not fit {architecture}: {err}") from err
    try:
        return create_model(architecture, **config)
    except TypeError as err:
        raise CheckpointError(f"converted config does not fit {architecture!r}: {err}") from err


def _save(model: torch.nn.Module, out_dir: Path, architecture: str, config: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(out_dir)
        return
    # A plain nn.Module (single reference module): same two files, written here.
    cfg = {"model_class": architecture.replace(":", "."), **config}
    (out_dir / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_NAME), metadata={"format": "pt"})


def convert_to_folder(
    kind: str,
    src: str | Path,
    out_dir: str | Path,
    *,
    architecture: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> tuple[ConvertedCheckpoint, str]:
    """Convert ``src`` with converter ``kind``, validate it strictly on the target, write ``out_dir``.

    Args:
        kind: a registered converter kind (``avperceive convert --list``).
        src: the reference checkpoint file.
        out_dir: folder to write ``config.json`` + ``model.safetensors`` into.
        architecture: target override (registered name or ``module:Class``).
        overrides: constructor arguments that win over the converter's inferred config.
        progress: progress bar while reading; default: for files over 32 MiB.

    Returns:
        ``(report, architecture)``: the :class:`ConvertedCheckpoint` and the target it was checked on.
    """
    converter_info(kind)  # fail early on an unknown kind, before reading a large file
    src = Path(src)
    if progress is None:
        progress = src.is_file() and src.stat().st_size > LARGE_FILE_BYTES
    report: ConvertedCheckpoint = convert_checkpoint(kind, src, return_report=True, progress=progress)
    config = dict(report.config)
    target = architecture or config.pop("architecture", None) or target_of(kind)
    config.pop("architecture", None)
    if target is None:
        if kind in list_models():
            target = kind
    if target is None:
        raise ConfigError(f"converter {kind!r} names no target architecture; pass --arch NAME (avperceive models)")
    config.update(overrides or {})
    model = build_target(target, config)
    load_state_dict_strict(model, report.state_dict, source=f"{src} converted as {kind!r}")
    _save(model, Path(out_dir), target, config)
    return report, target


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (VALUE as JSON, e.g. num_classes=29)")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    if args.list:
        for kind, desc in list_converters().items():
            arch = target_of(kind)
            print(f"{kind:20s} -> {arch or '(--arch needed)'}  {desc}")
        return EXIT_OK
    if not (args.kind and args.src and args.out_dir):
        raise ConfigError("usage: avperceive convert KIND SRC OUT_DIR (avperceive convert --list shows KINDs)")
    out = Path(args.out_dir)
    if (out / WEIGHTS_NAME).exists() and not args.force:
        raise ConfigError(f"{out / WEIGHTS_NAME} exists; pass --force to overwrite")
    report, target = convert_to_folder(
        args.kind,
        args.src,
        out,
        architecture=args.arch,
        overrides=_parse_overrides(args.set or []),
        progress=None if not args.no_progress else False,
    )
    n_params = sum(int(t.numel()) for t in report.state_dict.values())
    print(f"converted {args.src} ({args.kind}) -> {out}: {len(report.state_dict)} tensors, {n_params:,} values, "
          f"checked strictly against {target}")
    if report.dropped:
        print(f"dropped {len(report.dropped)} key(s) on purpose:")
        for key, reason in sorted(report.dropped.items()):
            print(f"  {key}: {reason}")
    else:
        print("dropped nothing")
    print(_load_hint(target, out))
    return EXIT_OK


def _load_hint(target: str, out: Path) -> str:
    if ":" not in target:
        return f"load it with avperceive.create_model({target!r}, pretrained='local-dir:{out}')"
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if hasattr(cls, "from_pretrained"):
        return f"load it with {cls_name}.from_pretrained({str(out)!r})"
    return (
        f"load it with avperceive.hub.load_pretrained_module({module_name}.{cls_name}, {str(out)!r}) "
        "(config.json holds the constructor arguments)"
    )


#: the line ``avperceive --help`` shows for ``convert``.
SUMMARY = "convert an official checkpoint to config.json + model.safetensors"
#: the heading of ``avperceive convert --help``.
DESCRIPTION = (
    "Convert a reference checkpoint (.pt/.pth/.ckpt/.safetensors) of KIND into an avperceive "
    "folder, validated strictly against the target model. Never unpickles arbitrary objects."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``avperceive convert``."""
    p.add_argument("kind", nargs="?", help="converter kind (see --list)")
    p.add_argument("src", nargs="?", help="reference checkpoint file")
    p.add_argument("out_dir", nargs="?", help="output folder (config.json + model.safetensors)")
    p.add_argument("--list", action="store_true", help="list converter kinds and their targets")
    p.add_argument("--arch", help="target architecture (registered name or package.module:Class)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="constructor argument override (JSON value)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT_DIR/model.safetensors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
