"""Bad checkpoints: a typed error naming the file (and the key or field), never code, never a header-sized allocation.

Each case is a folder (``config.json`` + ``model.safetensors`` of the ``lavish-ave-tiny`` model
with one thing broken) or a reference file for the converters. Every case goes through
``LAVisH.from_pretrained``, ``create_model("local-dir:...")``, ``create_model(name,
pretrained=...)`` (what ``predict --pretrained`` calls), ``avperceive predict --pretrained``,
``convert_checkpoint`` and ``avperceive convert``. Pickles carry a ``__reduce__`` that would
create a marker file; the marker must never appear. Truth: what is broken is fixed by how each
file was made (the safetensors layout is the published format: 8-byte little-endian header
length, JSON header, data).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import avperceive as avp
from avperceive.cli import main
from avperceive.errors import CheckpointError, ConfigError
from avperceive.hub import convert_checkpoint
from avperceive.io import AVClip, write_clip
from avperceive.models.lavish import LAVisH

MODEL = "lavish-ave-tiny"
KIND = "lavish-adapter"  # any converter kind: reading the file fails before the key map runs
MEMORY_LIMIT_BYTES = 2 * 1024**3


class _Marker:
    """Unpickling this calls ``Path.touch(marker)``: proof that code from the file ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _craft(path: Path, header: dict, data: bytes) -> None:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    avp.create_model(MODEL).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def marker(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("marker") / "CODE_RAN"


def _weights_cases(good: Path, root: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """``{case: (folder, text the message must contain)}`` for broken ``model.safetensors`` files."""
    weights = good / "model.safetensors"
    raw = weights.read_bytes()
    header, data = _header(weights)
    first = next(k for k in header if k != "__metadata__")
    cases: dict[str, tuple[Path, str]] = {}

    def folder(name: str) -> Path:
        out = root / name
        out.mkdir()
        shutil.copy(good / "config.json", out / "config.json")
        return out

    out = folder("truncated")
    (out / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = (out, "outside")
    out = folder("header-length-beyond-file")
    (out / "model.safetensors").write_bytes(struct.pack("<Q", len(raw) * 10) + raw[8:])
    cases["header-length-beyond-file"] = (out, "header length")
    out = folder("offsets-past-end")
    bad = json.loads(json.dumps(header))
    bad[first]["data_offsets"][1] += 10**6
    _craft(out / "model.safetensors", bad, data)
    cases["offsets-past-end"] = (out, first)
    out = folder("header-not-json")
    (out / "model.safetensors").write_bytes(struct.pack("<Q", 16) + b"{not json at all" + data)
    cases["header-not-json"] = (out, "not JSON")
    out = folder("dim-2-pow-40")
    _craft(out / "model.safetensors", {first: {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 4]}}, data[:4])
    cases["dim-2-pow-40"] = (out, first)
    out = folder("size-overflow")  # 2**32 * 2**32 * 4 elements * 4 bytes wraps to 0 in 64-bit arithmetic
    _craft(out / "model.safetensors", {first: {"dtype": "F32", "shape": [2**32, 2**32, 4], "data_offsets": [0, 0]}},
           b"")
    cases["size-overflow"] = (out, first)
    out = folder("pickle-named-safetensors")
    torch.save({"w": torch.zeros(2), "x": _Marker(marker)}, out / "model.safetensors")
    cases["pickle-named-safetensors"] = (out, "not a safetensors file")
    out = folder("safetensors-is-a-directory")
    (out / "model.safetensors").mkdir()
    cases["safetensors-is-a-directory"] = (out, "is a directory")

    state = {k: v.clone() for k, v in avp.create_model(MODEL).state_dict().items()}
    key = sorted(state)[0]
    for name, sd, needle in (
        ("wrong-shape", {**state, key: torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)}, key),
        ("missing-key", {k: v for k, v in state.items() if k != key}, key),
        ("extra-key", {**state, "surprise.weight": torch.zeros(3)}, "surprise.weight"),
    ):
        out = folder(name)
        save_file({k: v.contiguous() for k, v in sd.items()}, str(out / "model.safetensors"))
        cases[name] = (out, needle)
    return cases


def _config_cases(good: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """Broken ``config.json`` files (weights intact): ``ConfigError`` naming the file and the field."""
    cfg = json.loads((good / "config.json").read_text())
    cases: dict[str, tuple[Path, str]] = {}

    def folder(name: str, text: str, needle: str) -> None:
        out = root / name
        out.mkdir()
        shutil.copy(good / "model.safetensors", out / "model.safetensors")
        (out / "config.json").write_text(text)
        cases[name] = (out, needle)

    folder("config-invalid-json", '{"architecture": "lavish-ave-tiny", ', "not valid JSON")
    folder("config-a-list", json.dumps([cfg]), "JSON object")
    folder("config-unknown-class", json.dumps({**cfg, "model_class": "somewhere.Else"}), "somewhere.Else")
    folder("config-unknown-architecture", json.dumps({**cfg, "architecture": "no-such-arch"}), "architecture")
    folder("config-negative-dimension", json.dumps({**cfg, "hidden_dim": -8}), "hidden_dim=-8")
    folder("config-wrong-type", json.dumps({**cfg, "num_latents": "two"}), "num_latents")
    folder("config-bad-pretrained-cfg", json.dumps({**cfg, "pretrained_cfg": {"label_names": 5}}),
           "pretrained_cfg.label_names")
    folder("config-pretrained-cfg-list", json.dumps({**cfg, "pretrained_cfg": [1, 2]}), "pretrained_cfg")
    return cases


def _pickle_files(root: Path, marker: Path) -> dict[str, Path]:
    out = {}
    for name in ("evil.pt", "evil.pth", "evil.ckpt", "pytorch_model.bin"):
        folder = root / f"pickle-{name}"
        folder.mkdir()
        path = folder / name
        torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper": _Marker(marker)}, path)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def corpus(good, marker, tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "weights": _weights_cases(good, root, marker),
        "config": _config_cases(good, root),
        "pickles": _pickle_files(root, marker),
    }


def _expect(error_type, needle: str, names: str, call):
    with pytest.raises(error_type) as info:
        call()
    message = str(info.value)
    assert names in message, message
    assert needle in message, message
    assert "\x1b[" not in message and "\n" not in message, message
    return message


def test_good_folder_loads(good):
    """The corpus starts from a folder that does load, by each route."""
    assert isinstance(LAVisH.from_pretrained(good), LAVisH)
    assert isinstance(avp.create_model(f"local-dir:{good}"), LAVisH)
    assert isinstance(avp.create_model(MODEL, pretrained=str(good)), LAVisH)


@pytest.mark.parametrize("route", ["from_pretrained", "local-dir", "pretrained="])
def test_broken_weights_checkpoint_error(corpus, route, marker):
    for name, (folder, needle) in corpus["weights"].items():
        load = {
            "from_pretrained": lambda f=folder: LAVisH.from_pretrained(f),
            "local-dir": lambda f=folder: avp.create_model(f"local-dir:{f}"),
            "pretrained=": lambda f=folder: avp.create_model(MODEL, pretrained=str(f)),
        }[route]
        message = _expect(CheckpointError, needle, str(folder / "model.safetensors"), load)
        assert "config differs" not in message, (name, message)  # the config is the model's own
        assert "(it has model.safetensors" not in message, (name, message)
    assert not marker.exists()


@pytest.mark.parametrize("route", ["from_pretrained", "local-dir", "pretrained="])
def test_broken_config_config_error(corpus, route):
    for name, (folder, needle) in corpus["config"].items():
        if route == "from_pretrained" and name == "config-unknown-architecture":
            continue  # from_pretrained builds its own class; the architecture field is metadata there
        if route != "from_pretrained" and name == "config-unknown-class":
            continue  # the registry builds by architecture; model_class is metadata there
        load = {
            "from_pretrained": lambda f=folder: LAVisH.from_pretrained(f),
            "local-dir": lambda f=folder: avp.create_model(f"local-dir:{f}"),
            "pretrained=": lambda f=folder: avp.create_model(MODEL, pretrained=str(f)),
        }[route]
        if route == "pretrained=" and name in ("config-negative-dimension", "config-wrong-type"):
            # the model is built from the registry's own arguments and the weights fit it: a result
            assert isinstance(load(), LAVisH)
            continue
        if route == "pretrained=" and name == "config-unknown-architecture":
            # the folder holds weights of another architecture than the one asked for
            _expect(CheckpointError, "no-such-arch", str(folder / "config.json"), load)
            continue
        error = CheckpointError if name == "config-unknown-class" else ConfigError
        _expect(error, needle, str(folder / "config.json"), load)


def test_pickles_never_run(corpus, marker, tmp_path):
    for path in corpus["pickles"].values():
        _expect(CheckpointError, "avperceive convert", str(path), lambda p=path: LAVisH.from_pretrained(p.parent))
        _expect(CheckpointError, "avperceive convert", str(path),
                lambda p=path: avp.create_model(MODEL, pretrained=str(p)))
        _expect(CheckpointError, "weights_only", str(path), lambda p=path: convert_checkpoint(KIND, p))
    assert not marker.exists()


def test_convert_broken_files(corpus, marker):
    for name, (folder, needle) in corpus["weights"].items():
        if name in ("wrong-shape", "missing-key", "extra-key"):
            continue  # readable files: the converter's key map judges them
        path = folder / "model.safetensors"
        _expect(CheckpointError, needle, str(path), lambda p=path: convert_checkpoint(KIND, p))
    assert not marker.exists()


def _clip_file(tmp_path: Path) -> str:
    clip = AVClip(video=torch.zeros(10, 32, 32, 3, dtype=torch.uint8),
                  frame_times=torch.arange(10.0, dtype=torch.float64),
                  audio=torch.zeros(1, 160000), sample_rate=16000, fps=1.0, duration=10.0, has_video=True,
                  has_audio=True)
    return write_clip(clip, tmp_path / "clip.mp4", preset="ultrafast")


def _one_line(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err and "\x1b[" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_cli_predict_and_convert_one_line(corpus, marker, tmp_path, capsys):
    """``avperceive predict --pretrained`` and ``avperceive convert`` on every case: exit 2, one line."""
    clip = _clip_file(tmp_path)
    for group in ("weights", "config"):
        for name, (folder, needle) in corpus[group].items():
            if name in ("config-unknown-class", "config-negative-dimension", "config-wrong-type"):
                continue  # built from the registry, not from those fields: predicts (test_broken_config_config_error)
            if name == "config-unknown-architecture":
                needle = "no-such-arch"
            code = main(["predict", clip, "--model", MODEL, "--pretrained", str(folder), "--no-progress"])
            _one_line(capsys, code, folder.name, needle)
    for name, (folder, needle) in corpus["weights"].items():
        if name in ("wrong-shape", "missing-key", "extra-key"):
            continue
        code = main(["convert", KIND, str(folder / "model.safetensors"), str(tmp_path / f"out-{name}")])
        _one_line(capsys, code, str(folder / "model.safetensors"), needle)
    for name, path in corpus["pickles"].items():
        code = main(["convert", KIND, str(path), str(tmp_path / f"out-{name}")])
        _one_line(capsys, code, str(path), "weights_only")
        code = main(["predict", clip, "--model", MODEL, "--pretrained", str(path), "--no-progress"])
        _one_line(capsys, code, str(path), "avperceive convert")
    assert not marker.exists()


def test_console_script_bounded_memory(corpus, marker, tmp_path):
    """The installed console script, under a 2-GiB address-space limit, on the cases whose header
    claims 4 TiB / 2**66 bytes: one line, exit 2 (an allocation from the header would die instead)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))

    script = Path(sys.executable).with_name("avperceive")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "avperceive"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("dim-2-pow-40", "size-overflow"):
        path = corpus["weights"][name][0] / "model.safetensors"
        proc = subprocess.run([*cli, "convert", KIND, str(path), str(tmp_path / name)], capture_output=True,
                              timeout=60, env=env, preexec_fn=limit)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert str(path) in err
    assert not marker.exists()
