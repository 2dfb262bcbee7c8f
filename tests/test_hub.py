"""Save / load, Hub cache resolution (offline), sha256 pinning, legacy refusal, Lightning allow-list."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import avperceive
from avperceive.errors import CheckpointError
from avperceive.hub import PretrainedMixin, load_state_dict_strict
from avperceive.hub.convert import read_checkpoint
from avperceive.hub.download import is_offline, parse_hub_source, resolve_checkpoint, sha256_file
from avperceive.models import registry
from avperceive.models.registry import PretrainedCfg, create_model

REV = "0123456789abcdef0123456789abcdef01234567"
ARCH = "test-hub-tiny"
ARCH_OFFICIAL = "test-hub-official"


class TinyNet(nn.Module, PretrainedMixin):
    """(B, dim) -> (B, num_classes)."""

    def __init__(self, dim: int = 4, num_classes: int = 3):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.proj(x)))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any name lookup or socket connection raises, and is recorded: the test fails even if the
    library catches the error (an offline path must not try the network and fall back)."""
    attempts: list[str] = []

    def refuse(name):
        def refused(*args, **kwargs):
            attempts.append(f"{name}{args[1:2] if name == 'socket.connect' else args[:1]}")
            raise OSError(f"test tried to use the network ({name})")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"


@pytest.fixture(scope="module", autouse=True)
def registered():
    registry.register_model(ARCH, pretrained_cfgs={
        "untrained": PretrainedCfg(label_names=("a", "b", "c"), input={"task": "clip-classification"}),
        "hub": PretrainedCfg(hub_id="avp-test/tiny", revision=REV, sha256=None, license="MIT"),
    })(lambda **kw: TinyNet(**kw))
    registry.register_model(ARCH_OFFICIAL, pretrained_cfgs={
        "official": PretrainedCfg(converter="test-kind", official_checkpoint="https://example.org/ckpt"),
    })(lambda **kw: TinyNet(**kw))
    yield
    registry._REGISTRY.pop(ARCH)
    registry._REGISTRY.pop(ARCH_OFFICIAL)


def make_hub_cache(cache: Path, repo_id: str, folder: Path, revision: str = REV) -> Path:
    """Write the real cache layout models--org--name/{blobs,snapshots/<rev>,refs/main} from ``folder``."""
    org, name = repo_id.split("/")
    root = cache / f"models--{org}--{name}"
    (root / "blobs").mkdir(parents=True)
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        data = f.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    return root


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model(ARCH, dim=4, num_classes=3)
    out = model.save_pretrained(tmp_path / "saved")
    return model, out


def test_save_pretrained_writes_config_and_safetensors(saved):
    model, out = saved
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == ARCH
    assert cfg["dim"] == 4 and cfg["num_classes"] == 3
    assert cfg["model_class"].endswith("TinyNet")
    assert cfg["pretrained_cfg"]["label_names"] == ["a", "b", "c"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_from_pretrained_folder_roundtrip(saved):
    model, out = saved
    loaded = TinyNet.from_pretrained(out)
    assert not loaded.training
    x = torch.randn(2, 4)
    assert torch.equal(loaded(x), model(x))
    assert loaded.architecture == ARCH
    assert loaded.pretrained_cfg.label_names == ("a", "b", "c")


def test_create_model_local_dir_and_file_and_source_name(saved):
    model, out = saved
    x = torch.randn(3, 4)
    for src in (f"local-dir:{out}", str(out), out / "model.safetensors"):
        m = create_model(ARCH, pretrained=src)
        assert torch.equal(m(x), model(x)), src
    m = create_model(f"local-dir:{out}")
    assert type(m) is TinyNet and torch.equal(m(x), model(x))


def test_strict_loading_names_keys(saved, tmp_path):
    model, out = saved
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd.pop("head.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["proj.weight"] = torch.zeros(5, 4)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(TinyNet(), sd)
    assert info.value.missing == ["head.bias"]
    assert info.value.unexpected == ["extra.weight"]
    assert info.value.mismatched == [("proj.weight", (5, 4), (4, 4))]
    msg = str(info.value)
    assert "head.bias" in msg and "extra.weight" in msg and "proj.weight" in msg


def test_config_difference_is_explained(saved):
    _, out = saved
    with pytest.raises(CheckpointError, match=r"num_classes=3 in config.json vs 5 in the model") as info:
        create_model(ARCH, pretrained=str(out), num_classes=5)
    assert [m[0] for m in info.value.mismatched] == ["head.bias", "head.weight"]


def test_wrong_architecture_refused(saved):
    _, out = saved
    with pytest.raises(CheckpointError, match="weights of 'test-hub-tiny', not 'test-hub-official'"):
        create_model(ARCH_OFFICIAL, pretrained=str(out))


def test_hub_cache_offline_env(saved, tmp_path, monkeypatch):
    model, out = saved
    cache = tmp_path / "hub"
    make_hub_cache(cache, "avp-test/tiny", out)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline()
    x = torch.randn(2, 4)
    loaded = TinyNet.from_pretrained("avp-test/tiny", cache_dir=cache)
    assert torch.equal(loaded(x), model(x))  # bit-exact weights (safetensors), same input and kernels
    pinned = TinyNet.from_pretrained(f"hf-hub:avp-test/tiny@{REV}", cache_dir=cache)
    assert torch.equal(pinned(x), model(x))
    # the registry's own source (hub_id + pinned revision) through create_model(pretrained=True)
    m = create_model(f"{ARCH}.hub", pretrained=True, cache_dir=cache)
    assert torch.equal(m(x), model(x))
    # a Hub source as the name: the architecture comes from the cached config.json
    m = create_model("hf-hub:avp-test/tiny", cache_dir=cache)
    assert type(m) is TinyNet and m.architecture == ARCH and torch.equal(m(x), model(x))
    # no timing assert: the autouse no_network guard proves that nothing was fetched or even looked up


def test_hub_cache_local_files_only_without_env(saved, tmp_path):
    model, out = saved
    cache = tmp_path / "hub"
    make_hub_cache(cache, "avp-test/tiny", out)
    resolved = resolve_checkpoint("hf-hub:avp-test/tiny", cache_dir=cache, local_files_only=True)
    assert resolved.revision == REV
    assert resolved.weights.name == "model.safetensors" and resolved.config.name == "config.json"
    loaded = TinyNet.from_pretrained("hf-hub:avp-test/tiny", cache_dir=cache, local_files_only=True, revision=REV)
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_offline_miss_fails_fast_with_instructions(tmp_path, monkeypatch, no_network):
    """Fails without trying the network (no retries, no timeouts): the guard records any attempt."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as info:
        create_model(ARCH, pretrained="hf-hub:avp-test/absent@" + REV, cache_dir=tmp_path)
    assert no_network == []
    msg = str(info.value)
    assert "hf-hub:avp-test/absent" in msg and "HF_HUB_OFFLINE" in msg
    assert f"hf download avp-test/absent --revision {REV}" in msg and "local-dir:" in msg
    with pytest.raises(CheckpointError, match="local_files_only=True"):
        monkeypatch.delenv("HF_HUB_OFFLINE")
        TinyNet.from_pretrained("avp-test/absent", cache_dir=tmp_path, local_files_only=True)


def test_sha256_pin_checked(saved, tmp_path):
    _, out = saved
    good = sha256_file(out / "model.safetensors")
    assert good == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    TinyNet.from_pretrained(out, sha256=good)
    with pytest.raises(CheckpointError, match="sha256 is " + good):
        TinyNet.from_pretrained(out, sha256="0" * 64)
    # a registry entry pinning a wrong sha256 refuses the cached file
    registry.register_model("test-hub-pinned", pretrained_cfgs={
        "x": PretrainedCfg(hub_id="avp-test/pinned", revision=REV, sha256="f" * 64)})(lambda **kw: TinyNet(**kw))
    try:
        pinned_dir = create_model("test-hub-pinned").save_pretrained(tmp_path / "pinned")
        good = sha256_file(pinned_dir / "model.safetensors")
        cache = tmp_path / "hub"
        make_hub_cache(cache, "avp-test/pinned", pinned_dir)
        with pytest.raises(CheckpointError, match="f" * 64):
            create_model("test-hub-pinned", pretrained=True, cache_dir=cache, local_files_only=True)
        registry._REGISTRY["test-hub-pinned"].pretrained_cfgs["x"] = PretrainedCfg(
            hub_id="avp-test/pinned", revision=REV, sha256=good)
        m = create_model("test-hub-pinned", pretrained=True, cache_dir=cache, local_files_only=True)
        assert m.head.weight.shape == (3, 4)
    finally:
        registry._REGISTRY.pop("test-hub-pinned")


def test_no_published_weights_message():
    with pytest.raises(CheckpointError) as info:
        create_model(f"{ARCH_OFFICIAL}.official", pretrained=True)
    msg = str(info.value)
    assert "no published avperceive weights" in msg
    assert "avperceive convert test-kind" in msg and "https://example.org/ckpt" in msg
    assert "docs/pretrained.md" in msg
    with pytest.raises(CheckpointError, match="no published"):
        create_model(f"{ARCH}.untrained", pretrained=True)


def test_legacy_pickle_refused_with_convert_hint(saved, tmp_path):
    model, _ = saved
    pt = tmp_path / "weights.pt"
    torch.save(model.state_dict(), pt)
    for call in (lambda: TinyNet.from_pretrained(pt), lambda: create_model(ARCH, pretrained=str(pt))):
        with pytest.raises(CheckpointError, match=r"avperceive convert KIND .*weights\.pt OUT_DIR"):
            call()
    folder = tmp_path / "legacy"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "model.ckpt")
    with pytest.raises(CheckpointError, match="avperceive convert"):
        TinyNet.from_pretrained(folder)


def test_source_parsing():
    assert parse_hub_source("hf-hub:org/x@abc").repo_id == "org/x"
    assert parse_hub_source("hf-hub:org/x@abc").revision == "abc"
    assert parse_hub_source("hf_hub:org/x").revision is None
    assert parse_hub_source("org/name") is not None
    assert parse_hub_source("/abs/path") is None
    assert parse_hub_source("a/b/c") is None
    with pytest.raises(CheckpointError):
        parse_hub_source("hf-hub:not a repo")


def _fake_lightning_module():
    mod = types.ModuleType("lightning.fabric.utilities.data")

    class AttributeDict(dict):
        def __getattr__(self, key):
            return self[key]

    AttributeDict.__module__ = "lightning.fabric.utilities.data"
    AttributeDict.__qualname__ = "AttributeDict"
    mod.AttributeDict = AttributeDict
    return mod, AttributeDict


def test_lightning_ckpt_metadata_allow_list(tmp_path, monkeypatch):
    import numpy as np

    mod, attribute_dict = _fake_lightning_module()
    for name in ("lightning", "lightning.fabric", "lightning.fabric.utilities"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "lightning.fabric.utilities.data", mod)
    weights = {"model.proj.weight": torch.randn(4, 4), "model.head.bias": torch.randn(3)}
    ckpt = {
        "epoch": 7,
        "global_step": 70,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": weights,
        "hyper_parameters": attribute_dict(lr=0.001, num_classes=3),
        "hparams_namespace": argparse.Namespace(batch_size=8),
        "callbacks": {"ModelCheckpoint": {"dirpath": Path("/tmp/run"), "best_model_score": np.float64(0.5)}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.001}]}],
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    for name in ("lightning", "lightning.fabric", "lightning.fabric.utilities", "lightning.fabric.utilities.data"):
        monkeypatch.delitem(sys.modules, name)
    # plain weights_only loading refuses it; ours reads it without the lightning package
    with pytest.raises(Exception, match="AttributeDict"):
        torch.load(path, weights_only=True)
    sd = read_checkpoint(path)
    assert sorted(sd) == sorted(weights)
    assert torch.equal(sd["model.proj.weight"], weights["model.proj.weight"])


def test_unknown_global_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="outside the allow-list: .*system"):
        read_checkpoint(path)


def test_push_to_hub_uploads_both_files(saved, monkeypatch):
    model, _ = saved
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw["exist_ok"])

        def upload_folder(self, *, repo_id, folder_path, **kw):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["config"] = json.loads((Path(folder_path) / "config.json").read_text())
            return "commit-info"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert model.push_to_hub("me/tiny", token="t") == "commit-info"
    assert calls["create"] == ("me/tiny", True)
    assert calls["files"] == ["config.json", "model.safetensors"]
    assert calls["config"]["architecture"] == ARCH and calls["token"] == "t"


def test_bare_safetensors_file_without_config(tmp_path):
    torch.manual_seed(1)
    ref = TinyNet()
    path = tmp_path / "w.safetensors"
    save_file(ref.state_dict(), str(path))
    m = create_model(ARCH, pretrained=str(path))
    assert torch.equal(m.proj.weight, ref.proj.weight)
    with pytest.raises(CheckpointError, match="no config.json"):
        TinyNet.from_pretrained(path)


def test_top_level_api_exposes_create_model():
    assert avperceive.create_model is create_model
