"""Swin-V2 backbone: golden parity (timm 0.6 and timm 1.x layouts), attention paths, API, full-size counts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from avperceive.backbones.swinv2 import SwinV2, SwinV2Block, swinv2_large_window12_192, swinv2_test_tiny
from avperceive.errors import CheckpointError, ConfigError
from avperceive.hub import convert_checkpoint
from avperceive.registry import create_model

MANIFEST = Path(__file__).parent / "data" / "backbones" / "manifest_shapes.json"


def build_from_case(meta: dict) -> SwinV2:
    cfg = meta["config"]
    return SwinV2(
        img_size=cfg["img_size"],
        patch_size=cfg["patch_size"],
        in_chans=cfg["in_chans"],
        num_classes=cfg["num_classes"],
        embed_dim=cfg["embed_dim"],
        depths=cfg["depths"],
        num_heads=cfg["num_heads"],
        window_size=cfg["window_size"],
        mlp_ratio=cfg["mlp_ratio"],
        pretrained_window_sizes=cfg.get("pretrained_window_sizes", (0,) * len(cfg["depths"])),
    )


def load_case_model(golden_case) -> SwinV2:
    model = build_from_case(golden_case.meta)
    report = convert_checkpoint("swinv2-timm", golden_case.weights, return_report=True)
    model.load_state_dict(report.state_dict, strict=True)
    for key, reason in report.dropped.items():
        assert "checked equal" in reason, (key, reason)
    return model.eval()


def _tokens(t: torch.Tensor) -> torch.Tensor:
    """NHWC (timm 1.x) or (B, L, C) -> (B, L, C)."""
    return t.reshape(t.shape[0], -1, t.shape[-1])


@pytest.mark.golden_cases("g6_swinv2*", "g7_swinv2*")
@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_swinv2_parity_outputs(golden_case, impl):
    model = load_case_model(golden_case)
    model.attn_impl = impl
    x = golden_case.inputs["images"]
    out = golden_case.outputs
    with torch.no_grad():
        feats, stage_outs = model.forward_intermediates(x)
        pooled = model.forward_head(feats, pre_logits=True)
        logits = model(x)
        patch = model.patch_embed(x)
    diffs = {
        "patch_embed": (patch - _tokens(out["patch_embed"])).abs().max().item(),
        "forward_features": (feats - _tokens(out["forward_features"])).abs().max().item(),
        "pooled": (pooled - out["pooled"]).abs().max().item(),
        "logits": (logits - out["logits"]).abs().max().item(),
        "forward": (logits - out["forward"]).abs().max().item(),
    }
    timm1 = golden_case.meta["config"].get("strict_img_size") is not None or out["patch_embed"].ndim == 4
    for s, y in enumerate(stage_outs):
        last = len(model.stages[s].blocks) - 1
        diffs[f"stage{s}.blocks"] = (y - _tokens(out[f"layers.{s}.blocks.{last}"])).abs().max().item()
        if timm1 and f"layers.{s}" in out:  # timm 1.x stage output = blocks output of the stage
            diffs[f"layers.{s}"] = (y - _tokens(out[f"layers.{s}"])).abs().max().item()
    print(golden_case.stem, impl, "max abs diff", diffs)
    assert max(diffs.values()) <= 1e-5, diffs


@pytest.mark.golden_cases("g6_swinv2*")
@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_swinv2_parity_blocks_and_branches(golden_case, impl):
    """Block by block through the exposed sub-layers, as the adapter models step through them."""
    model = load_case_model(golden_case)
    model.attn_impl = impl
    out = golden_case.outputs
    worst_block, worst_branch = 0.0, 0.0
    with torch.no_grad():
        x = model.patch_embed(golden_case.inputs["images"])
        for s, stage in enumerate(model.stages):
            for b, blk in enumerate(stage.blocks):
                name = f"layers.{s}.blocks.{b}"
                attn = blk.window_attention(x)
                worst_branch = max(worst_branch, (attn - out[f"{name}.attn_branch"]).abs().max().item())
                x = x + blk.attn_branch(x)
                mlp = blk.mlp(x)
                worst_branch = max(worst_branch, (mlp - out[f"{name}.mlp_branch"]).abs().max().item())
                x = x + blk.mlp_branch(x)
                worst_block = max(worst_block, (x - out[name]).abs().max().item())
                ref_bias = out.get(f"{name}.attn.relative_position_bias")
                if ref_bias is not None:
                    assert torch.allclose(blk.attn.relative_position_bias(), ref_bias, atol=1e-6, rtol=0)
                    assert torch.equal(blk.attn.relative_position_index, out[f"{name}.attn.relative_position_index"])
                    assert torch.allclose(
                        blk.attn.relative_coords_table, out[f"{name}.attn.relative_coords_table"], atol=1e-7, rtol=0
                    )
            x = stage.downsample(x)
            if f"layers.{s}.downsample" in out:
                worst_block = max(worst_block, (x - out[f"layers.{s}.downsample"]).abs().max().item())
            worst_block = max(worst_block, (x - out[f"layers.{s}"]).abs().max().item())
    # per-block layout from the JSON (window clamping and shift rule)
    for entry in golden_case.meta.get("blocks", []):
        _, s, _, b = entry["block"].split(".")
        blk = model.stages[int(s)].blocks[int(b)]
        assert list(blk.input_resolution) == entry["input_resolution"]
        assert list(blk.window_size) == entry["window_size"]
        assert list(blk.shift_size) == entry["shift_size"]
        assert (blk.attn_mask is not None) == entry["has_attn_mask"]
    print(golden_case.stem, impl, f"max abs diff blocks {worst_block:.3g} branches {worst_branch:.3g}")
    assert worst_block <= 1e-5
    assert worst_branch <= 1e-5


@pytest.mark.golden_cases("g6_swinv2*")
def test_swinv2_parity_converter_checks_masks(golden_case):
    report = convert_checkpoint("swinv2-timm", golden_case.weights, return_report=True)
    masks = [k for k in golden_case.weights if k.endswith("attn_mask")]
    assert sorted(report.dropped) == sorted(masks)
    bad = dict(golden_case.weights)
    bad[masks[0]] = torch.zeros_like(bad[masks[0]])
    with pytest.raises(CheckpointError, match="attn_mask"):
        convert_checkpoint("swinv2-timm", bad)


def test_fused_equals_reference_within_1e5():
    torch.manual_seed(0)
    model = swinv2_test_tiny(num_classes=3).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        model.attn_impl = "fused"
        a = model.forward_features(x)
        model.attn_impl = "reference"
        b = model.forward_features(x)
    diff = (a - b).abs().max().item()
    print("fused vs reference max abs diff", diff)
    assert diff <= 1e-5
    assert all(blk.attn.attn_impl == "reference" for blk in model.blocks)
    with pytest.raises(ConfigError):
        model.attn_impl = "flash"


def test_block_api_shapes_and_residual_form():
    torch.manual_seed(1)
    model = swinv2_test_tiny().eval()
    blk = model.stages[0].blocks[1]
    assert isinstance(blk, SwinV2Block) and blk.input_resolution == (12, 12) and blk.shift_size == (3, 3)
    x = torch.randn(2, 144, 16)
    with torch.no_grad():
        a = blk.attn_branch(x)
        y = x + a
        m = blk.mlp_branch(y)
        assert a.shape == m.shape == (2, 144, 16)
        assert torch.allclose(blk(x), y + m, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 144, 16\)"):
        blk(torch.randn(2, 100, 16))
    assert isinstance(model.stages[-1].downsample, torch.nn.Identity)
    assert model.stages[0].downsample.reduction.weight.shape == (32, 64)


def test_gradient_checkpointing_same_grads():
    torch.manual_seed(2)
    model = swinv2_test_tiny()
    x = torch.randn(1, 3, 48, 48)
    model.forward_features(x).square().mean().backward()
    g0 = model.patch_embed.proj.weight.grad.clone()
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model.forward_features(x).square().mean().backward()
    assert torch.allclose(model.patch_embed.proj.weight.grad, g0, atol=1e-6)


def test_bf16_autocast_runs():
    torch.manual_seed(3)
    model = swinv2_test_tiny().eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        ref = model.forward_features(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model.forward_features(x)
    assert y.shape == ref.shape
    assert (y.float() - ref).abs().max().item() < 0.2


def test_unknown_backbone_name_raises_with_hint():
    with pytest.raises(ConfigError, match="swinv2_large_window12_192"):
        create_model("swinv2_large_window12_19")


def _meta_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def test_full_size_swinv2_large_matches_dgsct_manifest():
    """swinv2_large_window12_192 has exactly the parameters of DG-SCT's swin.* (timm 0.6) keys."""
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        model = swinv2_large_window12_192()
    report = convert_checkpoint("swinv2-timm", _meta_state_dict(manifest["swin"]), return_report=True)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in report.state_dict.items()}
    assert ours == theirs
    n_params = sum(p.numel() for p in model.parameters())
    n_dropped = sum(math.prod(manifest["swin"][k]) for k in report.dropped)
    assert sorted({k.rsplit(".", 1)[-1] for k in report.dropped}) == ["attn_mask"]
    assert n_params + n_dropped == manifest["swin_group"]["n_elems"] == 229187269
    assert n_params == 228_772_549  # 229,187,269 minus the 414,720 attn_mask elements
    # stage layout from the spec: grids 48/24/12/6, stage 2/3 windows clamped, no shift
    assert [s.input_resolution for s in model.stages] == [(48, 48), (24, 24), (12, 12), (6, 6)]
    assert model.stages[2].blocks[1].shift_size == (0, 0) and model.stages[1].blocks[1].shift_size == (6, 6)
    assert model.stages[3].blocks[0].window_size == (6, 6)


def test_timm1_layout_keys_of_full_model():
    """The >= 0.9 layout (downsample at the start of the next stage, head.fc) maps to the same keys."""
    manifest = json.loads(MANIFEST.read_text())
    timm1 = {}
    for k, v in manifest["swin"].items():
        if k.endswith(("attn_mask", "relative_position_index", "relative_coords_table")):
            continue
        parts = k.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) + 1)
        if parts[0] == "head":
            parts = ["head", "fc", parts[1]]
        timm1[".".join(parts)] = v
    report = convert_checkpoint("swinv2-timm", _meta_state_dict(timm1), return_report=True)
    assert report.dropped == {}
    with torch.device("meta"):
        model = swinv2_large_window12_192()
    assert {k: tuple(v.shape) for k, v in report.state_dict.items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()
    }
    assert report.config == {
        "embed_dim": 192,
        "in_chans": 3,
        "patch_size": 4,
        "depths": [2, 2, 18, 2],
        "num_heads": [6, 12, 24, 48],
        "num_classes": 21841,
    }


def test_converter_strips_prefix_and_keeps_only_swin_keys():
    model = swinv2_test_tiny()
    sd = {"swin." + k: v for k, v in model.state_dict().items()}
    sd["htsat.norm.weight"] = torch.ones(3)
    report = convert_checkpoint("swinv2-timm", sd, return_report=True)
    assert set(report.state_dict) == set(model.state_dict())
    assert list(report.dropped) == ["htsat.norm.weight"]
    with pytest.raises(CheckpointError):
        convert_checkpoint("swinv2-timm", {"foo": torch.zeros(1)})


def test_converter_explicit_prefix():
    model = swinv2_test_tiny()
    sd = {"visual.trunk." + k: v for k, v in model.state_dict().items()}
    sd["visual.proj"] = torch.zeros(2)
    from avperceive.hub.converters.swinv2 import convert_swinv2_timm

    report = convert_swinv2_timm(sd, prefix="visual.trunk.")
    assert set(report.state_dict) == set(model.state_dict())
    assert list(report.dropped) == ["visual.proj"]


# -- timm-style API: forward_intermediates(indices=...), reset_classifier, feature_info -----------
def _perturbed_tiny(**overrides) -> SwinV2:
    torch.manual_seed(5)
    model = swinv2_test_tiny(**overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _stage_by_stage(model: SwinV2, x: torch.Tensor) -> list[torch.Tensor]:
    """Each stage's blocks output, by stepping through the modules by hand (the independent truth)."""
    outs, t = [], model.patch_embed(x)
    for stage in model.stages:
        for blk in stage.blocks:
            t = blk(t)
        outs.append(t)
        t = stage.downsample(t)
    return outs


def test_forward_intermediates_indices_follow_timm():
    model = _perturbed_tiny()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        truth = _stage_by_stage(model, x)
        feats, every = model.forward_intermediates(x)
        assert torch.equal(feats, model.forward_features(x))
        assert [tuple(t.shape) for t in every] == [(2, 144, 16), (2, 36, 32), (2, 9, 64)]
        # same ops in the same order: bit-identical
        assert all(torch.equal(a, b) for a, b in zip(every, truth))
        _, last2 = model.forward_intermediates(x, indices=2)  # int n = the last n stages
        assert len(last2) == 2 and torch.equal(last2[0], truth[1]) and torch.equal(last2[1], truth[2])
        picked = model.forward_intermediates(x, indices=[-1, 0], intermediates_only=True)  # stage order
        assert isinstance(picked, list) and len(picked) == 2
        assert torch.equal(picked[0], truth[0]) and torch.equal(picked[1], truth[2])
        only0 = model.forward_intermediates(x, indices=[0], intermediates_only=True)
        assert len(only0) == 1 and torch.equal(only0[0], truth[0])
        normed = model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)
        assert torch.equal(normed[0], feats)  # the last stage, normed = the final features
        grid = model.forward_intermediates(x, indices=[1], output_fmt="NCHW", intermediates_only=True)[0]
        assert grid.shape == (2, 32, 6, 6)
        assert torch.equal(grid[:, :, 2, 5], truth[1][:, 2 * 6 + 5, :])  # token (row 2, col 5), row-major
        nhwc = model.forward_intermediates(x, indices=[1], output_fmt="NHWC", intermediates_only=True)[0]
        assert torch.equal(nhwc.permute(0, 3, 1, 2), grid)
    for bad in (0, 4, [3], [-4], []):
        with pytest.raises(ConfigError, match="indices"):
            model.forward_intermediates(x, indices=bad)
    with pytest.raises(ConfigError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NCL")


def test_feature_info_describes_the_intermediates():
    model = swinv2_test_tiny()
    assert model.feature_info == [
        {"num_chs": 16, "reduction": 4, "module": "stages.0"},
        {"num_chs": 32, "reduction": 8, "module": "stages.1"},
        {"num_chs": 64, "reduction": 16, "module": "stages.2"},
    ]


def test_reset_classifier_changes_the_head():
    model = _perturbed_tiny()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        pooled = model(x)  # no head: the token mean
        assert pooled.shape == (2, 64) and torch.allclose(pooled, model.forward_features(x).mean(1))
        model.reset_classifier(7)
        assert model.num_classes == 7 and model.head.weight.shape == (7, 64) and model(x).shape == (2, 7)
        assert torch.equal(model.forward_head(model.forward_features(x), pre_logits=True), pooled)
        model.reset_classifier(0)
        assert isinstance(model.head, torch.nn.Identity) and "head.weight" not in model.state_dict()
        assert torch.equal(model(x), pooled)
    with pytest.raises(ConfigError, match="num_classes"):
        model.reset_classifier(-1)


def test_rectangular_window_follows_the_shift_and_clamp_rule():
    square = _perturbed_tiny()
    tuple_window = swinv2_test_tiny(window_size=(6, 6)).eval()
    tuple_window.load_state_dict(square.state_dict())
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(tuple_window(x), square(x))  # (6, 6) is the same network as 6
    rect = swinv2_test_tiny(window_size=(6, 3))
    # stage grids 12, 6, 3: shift = half the window on odd blocks; per axis, a grid <= the window clamps it, unshifted
    assert [(b.window_size, b.shift_size) for b in rect.stages[0].blocks] == [((6, 3), (0, 0)), ((6, 3), (3, 1))]
    assert [(b.window_size, b.shift_size) for b in rect.stages[1].blocks] == [((6, 3), (0, 0)), ((6, 3), (0, 1))]
    assert rect.stages[2].blocks[1].window_size == (3, 3) and rect.stages[2].blocks[1].shift_size == (0, 0)
    with torch.no_grad():
        assert rect.forward_features(x).shape == (1, 9, 64)


def test_window_attention_goes_through_the_one_primitive(monkeypatch):
    """Every block's window attention is one call of nn.attention.attend (Swin-V2: scale folded into q)."""
    import avperceive.backbones.windowed as windowed

    seen = []
    real = windowed.attend

    def spy(q, k, v, **kw):
        seen.append((tuple(q.shape), kw["scale"], kw["impl"], tuple(kw["bias"].shape)))
        return real(q, k, v, **kw)

    monkeypatch.setattr(windowed, "attend", spy)
    model = swinv2_test_tiny().eval()
    model.attn_impl = "reference"
    with torch.no_grad():
        model.forward_features(torch.randn(2, 3, 48, 48))
    assert len(seen) == len(model.blocks) == 6
    assert {s[1] for s in seen} == {1.0} and {s[2] for s in seen} == {"reference"}
    # stage 0, shifted block: 2 images x 4 windows of 36 tokens, 2 heads -> (2, 4*2, 36, 8), bias (1, 4*2, 36, 36)
    assert seen[1][0] == (2, 8, 36, 8) and seen[1][3] == (1, 8, 36, 36)
