"""Registry: register_model, create_model (arch.tag, overrides), list_models, PretrainedCfg."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from avperceive.cli import main as cli_main
from avperceive.errors import ConfigError
from avperceive.hub import PretrainedMixin
from avperceive.models import registry
from avperceive.models.registry import PretrainedCfg, create_model, get_pretrained_cfg, list_models

ARCH = "test-registry-tiny"


class Lin(nn.Module, PretrainedMixin):
    """(B, dim) -> (B, out)."""

    def __init__(self, dim: int = 2, out: int = 5):
        super().__init__()
        self.fc = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.fixture(scope="module", autouse=True)
def registered():
    registry.register_model(
        ARCH,
        pretrained_cfgs={
            "untrained": PretrainedCfg(label_names=("x", "y"), input={"task": "clip-classification"}),
            "alt": PretrainedCfg(license="MIT", paper="Someone 2024"),
        },
    )(lambda **kw: Lin(**kw))
    yield
    registry._REGISTRY.pop(ARCH)


def test_create_model_with_tag_and_overrides():
    m = create_model(ARCH, out=7)
    assert isinstance(m, Lin) and m.fc.out_features == 7
    assert m.architecture == ARCH
    assert m.pretrained_cfg.label_names == ("x", "y")
    assert m.pretrained_cfg.architecture == ARCH
    alt = create_model(f"{ARCH}.alt")
    assert alt.pretrained_cfg.paper == "Someone 2024"
    assert m.config == {"dim": 2, "out": 7, "architecture": ARCH}


def test_list_models_patterns():
    assert ARCH in list_models("test-registry*")
    assert list_models("test-registry*", pretrained=True) == [f"{ARCH}.untrained", f"{ARCH}.alt"]
    assert list_models("no-such-*") == []


def test_unknown_names_give_hints():
    with pytest.raises(ConfigError, match="did you mean test-registry-tiny"):
        create_model("test-registry-tine")
    with pytest.raises(ConfigError, match=r"no weight set 'nope'; known: \['alt', 'untrained'\]"):
        get_pretrained_cfg(f"{ARCH}.nope")


def test_register_twice_and_bad_names_refused():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model(ARCH)(lambda **kw: Lin(**kw))
    with pytest.raises(ValueError, match="must not contain"):
        registry.register_model("bad.name")
    with pytest.raises(ValueError, match="default_tag"):
        registry.register_model("test-registry-other", pretrained_cfgs={"a": PretrainedCfg()}, default_tag="b")(
            lambda **kw: Lin(**kw)
        )


def test_pretrained_cfg_dict_roundtrip():
    from avperceive.hub.pretrained_cfg import pretrained_cfg_from_dict

    cfg = PretrainedCfg(hub_id="o/r", revision="a" * 40, label_names=("p", "q"), input={"sample_rate": 16000})
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert pretrained_cfg_from_dict(d) == cfg
    assert pretrained_cfg_from_dict({**d, "future_field": 1}) == cfg


def test_every_tiny_architecture_builds_random():
    tiny = list_models("*tiny")
    assert {"dgsct-ave-tiny", "swinv2_test_tiny", "htsat_test_tiny"} <= set(tiny)
    for name in tiny:
        model = create_model(name)
        assert isinstance(model, nn.Module)
        assert sum(p.numel() for p in model.parameters()) > 0, name
        assert model.architecture == name


def test_cli_models_lists_tags(capsys):
    assert cli_main(["models", "test-registry*", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [f"{ARCH}.untrained", f"{ARCH}.alt"]
    # Lin(dim=2, out=5): a 2 -> 5 linear layer has 2 * 5 weights + 5 biases.
    assert [r["parameters"] for r in rows] == [15, 15]
    assert rows[0]["task"] == "clip-classification" and rows[0]["classes"] == 2 and rows[0]["weights"] == "untrained"


# -- backbones in the same registry ----------------------------------------------------------------
BACKBONES = ("swinv2_large_window12_192", "swinv2_base_window12_192", "swinv2_test_tiny", "htsat_audioset",
             "htsat_test_tiny")


def test_backbones_are_listed_with_models_under_one_registry():
    import avperceive
    import avperceive.registry as core

    everything = avperceive.list_models()
    assert set(BACKBONES) <= set(everything) and "dgsct-ave" in everything
    assert list_models("swinv2*") == ["swinv2_base_window12_192", "swinv2_large_window12_192", "swinv2_test_tiny"]
    assert list_models("htsat*", pretrained=True) == ["htsat_audioset.audioset", "htsat_test_tiny.untrained"]
    assert all(core.is_model(n) for n in BACKBONES) and not core.is_model("swinv2_huge")
    # models.registry is a view of the one registry: the same functions and the same table
    assert registry.create_model is core.create_model and registry._REGISTRY is core._REGISTRY
    assert avperceive.create_model is core.create_model


def test_create_model_builds_backbones_with_overrides_and_weight_records():
    from avperceive.backbones import HTSAT, SwinV2

    swin = create_model("swinv2_test_tiny", num_classes=3)
    assert isinstance(swin, SwinV2) and swin.head.out_features == 3 and swin.architecture == "swinv2_test_tiny"
    assert [s.dim for s in swin.stages] == [16, 32, 64]
    with torch.device("meta"):  # full size without allocating: the registered layout
        large = create_model("swinv2_large_window12_192")
    assert [len(s.blocks) for s in large.stages] == [2, 2, 18, 2] and large.head.out_features == 21841
    cfg = get_pretrained_cfg("swinv2_large_window12_192")
    assert cfg.converter == "swinv2-timm" and cfg.input["size"] == 192
    audio = create_model("htsat_test_tiny", num_classes=0)
    assert isinstance(audio, HTSAT) and audio.tscam_conv is None
    assert get_pretrained_cfg("htsat_audioset").input["sample_rate"] == 32000
    with pytest.raises(ConfigError, match="did you mean"):
        create_model("htsat_audiost")


def test_backbone_saved_folder_loads_back_through_create_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("htsat_test_tiny", num_classes=2)
    model.save_pretrained(tmp_path / "h")
    again = create_model("htsat_test_tiny", num_classes=2, pretrained=f"local-dir:{tmp_path / 'h'}")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    rebuilt = create_model(f"local-dir:{tmp_path / 'h'}")  # the folder alone names the architecture
    assert rebuilt.architecture == "htsat_test_tiny" and rebuilt.num_classes == 2


def test_models_build_their_backbone_through_the_registry():
    from avperceive.backbones import SwinV2
    from avperceive.models.dgsct import build_backbone

    swin = build_backbone("swinv2_test_tiny", SwinV2, "video_backbone", num_classes=0)
    assert isinstance(swin, SwinV2) and isinstance(swin.head, nn.Identity)
    from_dict = build_backbone(dict(img_size=32, embed_dim=8, depths=(2,), num_heads=(1,), window_size=4,
                                    num_classes=5), SwinV2, "backbone", num_classes=0)
    assert from_dict.num_classes == 0 and from_dict.patch_embed.img_size == (32, 32)
    with pytest.raises(ConfigError, match="video_backbone='htsat_test_tiny' builds a HTSAT"):
        build_backbone("htsat_test_tiny", SwinV2, "video_backbone")
