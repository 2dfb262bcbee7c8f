"""LAVisH AVE model: shared backbone stepping, audio image, inputs, checkpoint layout, fine-tuning ranges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avperceive.hub.convert import convert_checkpoint
from avperceive.hub.mixin import load_state_dict_strict
from avperceive.models import create_model, get_pretrained_cfg
from avperceive.models.lavish import LAVisH
from avperceive.models.trainable import set_trainable

MANIFEST = Path(__file__).parent / "data" / "dgsct" / "lavish_state_dict_keys.json"
T = 3


def _tiny(**kw) -> LAVisH:
    torch.manual_seed(0)
    return create_model("lavish-ave-tiny", num_segments=T, **kw).eval()


def _inputs(b: int = 1):
    g = torch.Generator().manual_seed(3)
    return torch.randn(b, T, 3, 32, 32, generator=g), 0.1 * torch.randn(b, T, 16000, generator=g)


def _randomise_gates(model: LAVisH, value: float = 0.5) -> None:
    with torch.no_grad():
        for name, p in model.adapters.named_parameters():
            if name.endswith("gate"):
                p.fill_(value)


def test_tiny_forward_shapes_and_decision():
    model = _tiny()
    video, audio = _inputs(b=2)
    with torch.no_grad():
        out = model(video, audio)
    assert out["logits"].shape == (2, T, 29)
    torch.testing.assert_close(out["probs"].sum(-1), torch.ones(2, T))
    pred = model.predict_segments(video, audio)
    assert pred.shape == (2, T) and torch.equal(pred, out["logits"].argmax(-1))
    assert len(model.adapters["audio_p1"]) == sum(len(s.blocks) for s in model.backbone.stages) == 12


def test_fresh_adapters_reduce_to_the_shared_frozen_backbone():
    model = _tiny()
    video, audio = _inputs()
    with torch.no_grad():
        v, a = model.forward_features(video, audio)
        image = model.audio_image(audio)
        assert image.shape == (1, T, 32, 32)
        a_ref = model.backbone.forward_features(image.flatten(0, 1)[:, None].expand(-1, 3, -1, -1)).mean(1)
        v_ref = model.backbone.forward_features(video.flatten(0, 1)).mean(1)
        # a precomputed audio image gives the same result as the waveform
        v2, a2 = model.forward_features(video, image)
    assert (v[0] - v_ref).abs().max() < 1e-4 and (a[0] - a_ref).abs().max() < 1e-4
    assert torch.equal(a, a2) and torch.equal(v, v2)  # the same image tensor through the same ops


def test_fused_and_reference_attention_agree_with_active_adapters():
    model = _tiny()
    _randomise_gates(model)
    video, audio = _inputs()
    with torch.no_grad():
        fresh = _tiny()(video, audio)["logits"]
        fused = model(video, audio)["logits"]
        model.set_attn_impl("reference")
        ref = model(video, audio)["logits"]
    diff = (fused - ref).abs().max().item()
    print("fused vs reference", diff)
    assert diff < 1e-4
    assert (fused - fresh).abs().max() > 1e-3


def _stream_by_stream_features(model: LAVisH, video: torch.Tensor, audio: torch.Tensor):
    """The block equations of Lin et al. (CVPR 2023) §3 run on each stream separately, adapter by adapter."""
    b, t = video.shape[:2]
    img = model.audio_image(audio)
    bb, ad = model.backbone, model.adapters
    a = bb.patch_embed(img.flatten(0, 1)[:, None].expand(-1, 3, -1, -1))
    v = bb.patch_embed(video.flatten(0, 1))
    i = 0
    for stage in bb.stages:
        for block in stage.blocks:
            r_a1, r_v1 = ad["audio_p1"][i](a, v), ad["video_p1"][i](v, a)
            v, a = v + block.attn_branch(v) + r_v1, a + block.attn_branch(a) + r_a1
            r_a2, r_v2 = ad["audio_p2"][i](a, v), ad["video_p2"][i](v, a)
            v, a = v + block.mlp_branch(v) + r_v2, a + block.mlp_branch(a) + r_a2
            i += 1
        v, a = stage.downsample(v), stage.downsample(a)
    return bb.norm(v).mean(1).reshape(b, t, -1), bb.norm(a).mean(1).reshape(b, t, -1)


@pytest.mark.parametrize("attn_impl", ["fused", "reference"])
def test_batched_streams_equal_the_stream_by_stream_equations(attn_impl):
    """Stacking audio and video along the batch for the shared block changes no number (beyond rounding)."""
    model = _tiny(attn_impl=attn_impl)
    _randomise_gates(model)
    video, audio = _inputs(b=2)
    with torch.no_grad():
        v, a = model.forward_features(video, audio)
        v_ref, a_ref = _stream_by_stream_features(model, video, audio)
    # same kernels over a doubled batch; 12 blocks of fp32 with O(1) activations: ~1e-6 apart
    torch.testing.assert_close(v, v_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(a, a_ref, atol=1e-5, rtol=0)
    assert (a - v).abs().max() > 1e-2  # the two streams did not get mixed up


def test_bad_inputs_name_the_expected_shape():
    model = _tiny()
    video, audio = _inputs()
    with pytest.raises(ValueError, match=r"\(B, 3, 3, 32, 32\)"):
        model(video[:, :2], audio[:, :2])
    with pytest.raises(ValueError, match=r"\(B, 3, 16000\)"):
        model(video, audio[..., :8000])
    with pytest.raises(ValueError, match="floating"):
        model(video, audio.long())


def test_registry_and_trainable_ranges():
    cfg = get_pretrained_cfg("lavish-ave")
    assert cfg.input["sample_rate"] == 16000 and cfg.input["size"] == 192 and cfg.hub_id is None
    model = _tiny()
    head = sum(p.numel() for p in model.head.parameters())
    adapters = sum(p.numel() for p in model.adapters.parameters())
    assert set_trainable(model, "cls") == head == (256 * 32 + 32) + (32 * 29 + 29)
    assert set_trainable(model, "all") == head + adapters
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_full_size_reference_layout_converts_and_loads_strictly():
    man = json.loads(MANIFEST.read_text())
    keys = man["all_keys"]
    sd = {
        k: torch.empty(s, device="meta", dtype=torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
        for k, s in keys.items()
    }
    conv = convert_checkpoint("lavish-ave", sd, return_report=True)
    assert len(conv.state_dict) + len(conv.dropped) == len(keys)
    assert conv.config == {"num_classes": 28, "hidden_dim": 512, "num_latents": 2}
    with torch.device("meta"):
        model = LAVisH(**conv.config)
    load_state_dict_strict(model, conv.state_dict)
    assert set_trainable(model, "cls") == 1_573_376 + 14_877
    adapters = sum(v["n_elems"] for g, v in man["top_level_groups"].items() if "adapter_blocks" in g)
    buffers = sum(b.numel() for name, b in model.adapters.named_buffers())
    assert set_trainable(model, "adapters") == adapters - buffers
