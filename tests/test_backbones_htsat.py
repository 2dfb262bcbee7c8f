"""HTS-AT backbone: golden parity (from the log-mel and from the waveform), API, converter, full-size counts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from avperceive.backbones.htsat import HTSAT, HTSATBlock, htsat_audioset, htsat_test_tiny
from avperceive.errors import CheckpointError, ConfigError
from avperceive.hub import convert_checkpoint

MANIFEST = Path(__file__).parent / "data" / "backbones" / "manifest_shapes.json"
HEAD_OUTPUTS = ("latent_output", "clipwise_output", "framewise_output")


def build_from_case(meta: dict) -> HTSAT:
    cfg = meta["config"]
    return HTSAT(
        sample_rate=cfg["sample_rate"],
        n_fft=cfg["window_size_fft"],
        hop_length=cfg["hop_size"],
        n_mels=cfg["mel_bins"],
        fmin=cfg["fmin"],
        fmax=cfg["fmax"],
        spec_size=cfg["spec_size"],
        patch_size=cfg["patch_size"],
        patch_stride=cfg["patch_stride"],
        num_classes=cfg["classes_num"],
        embed_dim=cfg["embed_dim"],
        depths=cfg["depths"],
        num_heads=cfg["num_heads"],
        window_size=cfg["window_size"],
    )


def load_case_model(golden_case) -> HTSAT:
    model = build_from_case(golden_case.meta)
    report = convert_checkpoint(
        "htsat", {"sed_model." + k: v for k, v in golden_case.weights.items()}, return_report=True
    )
    model.load_state_dict(report.state_dict, strict=True)
    assert set(report.dropped) >= {"head.weight", "head.bias", "logmel_extractor.melW"}
    return model.eval()


@pytest.mark.golden_cases("g4_htsat*")
@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_htsat_parity_from_logmel(golden_case, impl):
    """Stored log-mel -> bn0 -> image -> stages -> head, compared at every stored intermediate."""
    model = load_case_model(golden_case)
    model.attn_impl = impl
    out = golden_case.outputs
    with torch.no_grad():
        image = model.wav_to_image(model.normalize_logmel(out["logmel"]))
        feats, stages = model.forward_intermediates(out["image"])
        head = model.forward_head(feats)
    diffs = {"image": (image - out["image"]).abs().max().item()}
    diffs["final_stage_tokens"] = (stages[-1] - out["final_stage_tokens"]).abs().max().item()
    diffs.update({k: (head[k] - out[k]).abs().max().item() for k in HEAD_OUTPUTS})
    print(golden_case.stem, impl, "max abs diff", diffs)
    assert diffs["image"] <= 2e-3
    assert max(v for k, v in diffs.items() if k != "image") <= 1e-4, diffs


@pytest.mark.golden_cases("g4_htsat*")
def test_htsat_parity_from_waveform(golden_case):
    """The whole model from the waveform, with the signal layer's HTS-AT front-end."""
    model = load_case_model(golden_case)
    out = golden_case.outputs
    with torch.no_grad():
        logmel = model.frontend(golden_case.inputs["waveform"])
        result = model(golden_case.inputs["waveform"])
    diffs = {"logmel_dB": (logmel - out["logmel"]).abs().max().item()}
    diffs.update({k: (result[k] - out[k]).abs().max().item() for k in HEAD_OUTPUTS})
    print(golden_case.stem, "max abs diff", diffs)
    assert diffs["logmel_dB"] <= 2e-3
    assert max(diffs[k] for k in HEAD_OUTPUTS) <= 1e-4, diffs


@pytest.mark.golden_cases("g4_htsat*")
def test_htsat_parity_block_by_block(golden_case):
    """Stepping through attn_branch / mlp_branch reproduces the stored last-stage tokens."""
    model = load_case_model(golden_case)
    with torch.no_grad():
        x = model.patch_embed(golden_case.outputs["image"])
        for stage in model.stages:
            for blk in stage.blocks:
                x = x + blk.attn_branch(x)
                x = x + blk.mlp_branch(x)
            x = stage.downsample(x)
    diff = (x - golden_case.outputs["final_stage_tokens"]).abs().max().item()
    print(golden_case.stem, "block-by-block max abs diff", diff)
    assert diff <= 1e-4


@pytest.mark.golden_cases("g4_htsat*")
def test_htsat_parity_converter_rejects_wrong_buffers(golden_case):
    sd = {"sed_model." + k: v for k, v in golden_case.weights.items()}
    key = next(k for k in sd if k.endswith("relative_position_index"))
    sd[key] = sd[key].flip(0)
    with pytest.raises(CheckpointError, match="relative_position_index"):
        convert_checkpoint("htsat", sd)


def test_fused_equals_reference_within_1e5():
    torch.manual_seed(0)
    model = htsat_test_tiny().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    image = torch.randn(1, 1, 256, 256)
    with torch.no_grad():
        model.attn_impl = "fused"
        a = model.forward_features(image)
        model.attn_impl = "reference"
        b = model.forward_features(image)
    diff = (a - b).abs().max().item()
    print("fused vs reference max abs diff", diff)
    assert diff <= 1e-5
    with pytest.raises(ConfigError):
        model.attn_impl = "xformers"


def test_block_api_and_layout():
    torch.manual_seed(1)
    model = htsat_test_tiny().eval()
    blk = model.stages[0].blocks[1]
    assert isinstance(blk, HTSATBlock) and blk.input_resolution == (64, 64) and blk.shift_size == (4, 4)
    assert model.stages[3].blocks[0].window_size == (8, 8) and model.stages[3].blocks[0].shift_size == (0, 0)
    assert isinstance(model.stages[-1].downsample, torch.nn.Identity)
    x = torch.randn(1, 4096, 16)
    with torch.no_grad():
        a = blk.attn_branch(x)
        y = x + a
        assert torch.allclose(blk(x), y + blk.mlp_branch(y), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 4096, 16\)"):
        blk(torch.randn(1, 100, 16))


def test_wav_to_image_folding_is_exact():
    model = htsat_test_tiny()
    spec = torch.arange(1024 * 64, dtype=torch.float32).reshape(1, 1, 1024, 64)
    image = model.wav_to_image(spec)
    r, f, t = 2, 5, 7
    assert image.shape == (1, 1, 256, 256)
    assert image[0, 0, r * 64 + f, t] == spec[0, 0, r * 256 + t, f]
    with pytest.raises(ValueError, match="1024"):
        model.wav_to_image(torch.zeros(1, 1, 1100, 64))


def test_forward_shapes_short_wave_and_grad_checkpointing():
    torch.manual_seed(2)
    model = htsat_test_tiny(num_classes=3)
    wave = 0.1 * torch.randn(2, 32000)  # 1 s: time is resized up to 1024 frames
    out = model.eval()(wave)
    assert out["framewise_output"].shape == (2, 1024, 3)
    assert out["clipwise_output"].shape == (2, 3) and out["latent_output"].shape == (2, 128)
    assert 0 < out["clipwise_output"].min() and out["clipwise_output"].max() < 1
    model.train()
    image = model.forward_frontend(wave).detach()
    for blk in model.blocks:
        blk.drop_path1.p = blk.drop_path2.p = 0.0
    model.forward_features(image).square().mean().backward()
    g0 = model.patch_embed.proj.weight.grad.clone()
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model.forward_features(image).square().mean().backward()
    assert torch.allclose(model.patch_embed.proj.weight.grad, g0, atol=1e-6)


def test_full_size_htsat_audioset_matches_manifest():
    """htsat_audioset has exactly the reference's parameters; the dropped keys account for the rest."""
    manifest = json.loads(MANIFEST.read_text())
    shapes = manifest["htsat"]
    with torch.device("meta"):
        model = htsat_audioset()
    sd = {"sed_model." + k: torch.empty(v, device="meta") for k, v in shapes.items()}
    report = convert_checkpoint("htsat", sd, return_report=True)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in report.state_dict.items()}
    n_params = sum(p.numel() for p in model.parameters())
    n_buffers = sum(
        b.numel() for k, b in model.state_dict().items() if k.startswith("bn0.running") or k.endswith("tracked")
    )
    n_dropped = sum(math.prod(shapes[k]) for k in report.dropped)
    total = sum(g["n_elems"] for g in manifest["htsat_group"].values())
    assert n_params + n_buffers + n_dropped == total == 31_751_256
    assert n_params == 29_963_431
    assert report.config == {
        "embed_dim": 96,
        "depths": [2, 2, 6, 2],
        "num_heads": [4, 8, 16, 32],
        "num_classes": 527,
        "n_mels": 64,
    }
    # the DG-SCT checkpoint stores the same network under htsat.
    dg = {"htsat." + k: torch.empty(v, device="meta") for k, v in manifest["dgsct_htsat"].items()}
    dg["swin.norm.weight"] = torch.empty(3, device="meta")
    dg_report = convert_checkpoint("htsat", dg, return_report=True)
    assert set(dg_report.state_dict) == set(ours)
    assert dg_report.dropped["swin.norm.weight"].startswith("not part of the HTS-AT network")


def test_bf16_autocast_and_explicit_prefix():
    torch.manual_seed(4)
    model = htsat_test_tiny().eval()
    image = torch.randn(1, 1, 256, 256)
    with torch.no_grad():
        ref = model.forward_features(image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model.forward_features(image)
    assert y.shape == ref.shape and (y.float() - ref).abs().max().item() < 0.2
    from avperceive.hub.converters.htsat import convert_htsat_with

    sd = {"net." + k: v for k, v in model.state_dict().items()}
    report = convert_htsat_with(sd, prefix="net.")
    assert set(report.state_dict) == set(model.state_dict()) and report.dropped == {}


def test_forward_intermediates_indices_and_reset_classifier():
    torch.manual_seed(6)
    model = htsat_test_tiny().eval()
    image = torch.randn(1, 1, 256, 256)
    with torch.no_grad():
        feats, every = model.forward_intermediates(image)
        assert [tuple(t.shape) for t in every] == [(1, 4096, 16), (1, 1024, 32), (1, 256, 64), (1, 64, 128)]
        last = model.forward_intermediates(image, indices=1, intermediates_only=True)
        assert len(last) == 1 and torch.equal(last[0], every[-1]) and torch.equal(model.norm(every[-1]), feats)
        picked = model.forward_intermediates(image, indices=[2, -3], intermediates_only=True)
        assert torch.equal(picked[0], every[1]) and torch.equal(picked[1], every[2])
        grid = model.forward_intermediates(image, indices=[3], output_fmt="NCHW", intermediates_only=True)[0]
        assert grid.shape == (1, 128, 8, 8)
        full = model.forward_head(feats)
        model.reset_classifier(5)
        out = model.forward_head(feats)
        assert out["clipwise_output"].shape == (1, 5) and out["framewise_output"].shape == (1, 1024, 5)
        assert model.tscam_conv.weight.shape == (5, 128, 2, 3)
        assert torch.equal(out["latent_output"], full["latent_output"])  # the head does not touch the tokens
        model.reset_classifier(0)
        assert model.forward_head(feats).keys() == {"latent_output"}
        assert not any(k.startswith("tscam_conv") for k in model.state_dict())
    with pytest.raises(ConfigError, match="indices"):
        model.forward_intermediates(image, indices=5)
    assert [f["num_chs"] for f in model.feature_info] == [16, 32, 64, 128]
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
