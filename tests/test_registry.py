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
    tiny = list_models("*-tiny")
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
