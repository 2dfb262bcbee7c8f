"""DG-SCT temporal module + CMBS-style AVE head: golden parity (g3) and unit tests."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from avperceive.errors import CheckpointError
from avperceive.hub.convert import convert_checkpoint
from avperceive.hub.mixin import load_state_dict_strict
from avperceive.nn.heads import AVEHead, CMBSHead, TemporalCMBSHead, ave_decision
from avperceive.nn.temporal import MultiheadAttention, TemporalAttention

ATOL = 1e-5


def _head_from_case(case, attn_impl: str) -> TemporalCMBSHead:
    cfg = case.meta["config"]
    conv = convert_checkpoint("dgsct-head", case.weights, return_report=True)
    num_classes = int(case.weights["CMBS.localize_module.event_classifier.weight"].shape[0])
    model = TemporalCMBSHead(
        video_dim=cfg["Cv"], audio_dim=cfg["Ca"], d_model=cfg["d_model"], video_input_dim=cfg["video_input_dim"],
        audio_input_dim=cfg["audio_input_dim"], ffn_dim=cfg["ffn_dim"], num_classes=num_classes, attn_impl=attn_impl,
    )
    assert conv.config["num_classes"] == num_classes and conv.config["d_model"] == cfg["d_model"]
    load_state_dict_strict(model, conv.state_dict)
    return model.eval()


@pytest.mark.golden_cases("*_dgsct_head")
@pytest.mark.parametrize("attn_impl", ["fused", "reference"])
def test_dgsct_head_parity(golden_case, attn_impl):
    model = _head_from_case(golden_case, attn_impl)
    x, y = golden_case.inputs, golden_case.outputs
    with torch.no_grad():
        out = model(x["v"], x["a"])
    ours = {
        "video_feature": rearrange(out["video_feature"], "b t d -> t b d"),
        "audio_feature": rearrange(out["audio_feature"], "b t d -> t b d"),
        "audio_visual_gate": rearrange(out["audio_visual_gate"], "b t -> t b 1"),
        "is_event_scores": rearrange(out["is_event"], "b t -> t b 1"),
        "event_scores": out["event_scores"],
        "av_score": out["av_score"],
    }
    for name, value in ours.items():
        diff = (value - y[name]).abs().max().item()
        print(f"{golden_case.stem} {attn_impl} {name}: max abs diff {diff:.3g}")
        assert value.shape == y[name].shape
        assert diff <= ATOL, name
    pred = ave_decision(out["is_event"], out["event_scores"])
    # decisions compare exactly: every is-event logit is farther from 0, and every top-1 class score
    # farther above the runner-up, than the ATOL within which our outputs match the reference
    top2 = out["event_scores"].topk(2, dim=-1).values
    assert out["is_event"].abs().min() > 2 * ATOL and (top2[:, 0] - top2[:, 1]).min() > 2 * ATOL
    assert torch.equal(pred, y["segment_pred"])
    target = x["labels_onehot"].argmax(-1)
    acc = (pred == target).double().mean() * 100
    assert acc.item() == pytest.approx(y["segment_accuracy"].item(), abs=1e-9)


@pytest.mark.golden_cases("*_dgsct_head")
def test_dgsct_head_converter_drops_dead_keys_parity(golden_case):
    conv = convert_checkpoint("dgsct-head", golden_case.weights, return_report=True)
    assert len(conv.state_dict) + len(conv.dropped) == len(golden_case.weights)
    dead = {k.split(".")[1] for k in conv.dropped if k.startswith("CMBS.")}
    assert dead == {"AVInter", "VAInter", "video_norm", "audio_norm"}
    # 2 encoder templates x 12 keys + 2 decoder templates x 16 keys
    assert sum(".encoder_layer." in k or ".decoder_layer." in k for k in conv.dropped) == 2 * 12 + 2 * 16
    assert sum(".self_attn." in k and ".decoder." in k for k in conv.dropped) == 2 * 4


def test_head_converter_rejects_unknown_and_foreign_keys():
    with pytest.raises(CheckpointError, match="CMBS.surprise"):
        convert_checkpoint("dgsct-head", {"CMBS.surprise.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="swin.norm.weight"):
        convert_checkpoint("dgsct-head", {"swin.norm.weight": torch.zeros(1)})


def test_multihead_attention_matches_torch_both_paths():
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(16, 4).eval()
    q, kv = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    expected = ref(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1))[0].transpose(0, 1)
    for impl in ("fused", "reference"):
        ours = MultiheadAttention(16, 4, attn_impl=impl).eval()
        ours.load_state_dict(ref.state_dict())
        diff = (ours(q, kv, kv) - expected).abs().max().item()
        print(impl, diff)
        assert diff < 1e-6


def test_cmbs_head_live_parameters_4_classes():
    head = CMBSHead(d_model=256, num_classes=4)
    assert sum(p.numel() for p in head.parameters()) == 3341


def test_cmbs_head_top_k_and_rule_by_hand():
    torch.manual_seed(1)
    head = CMBSHead(d_model=8, num_classes=3).eval()
    v, a = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    out = head(v, a)
    s_v = head.video_cas(v).sort(dim=1, descending=True).values[:, :4].mean(1)
    s_a = head.audio_cas(a).sort(dim=1, descending=True).values[:, :4].mean(1)
    torch.testing.assert_close(out["av_score"], (s_v + s_a) / 2)
    fused = (v + a) / 2
    ev = head.event_classifier(fused.max(dim=1).values) + 0.3 * out["av_score"]
    torch.testing.assert_close(out["event_scores"], ev)
    logits = torch.tensor([[2.0, -1.0, 0.0, 0.1]])
    scores = torch.tensor([[0.1, 0.9, 0.3]])
    assert ave_decision(logits, scores).tolist() == [[1, 3, 3, 1]]


def test_head_bad_shapes_name_expected_shape():
    head = CMBSHead(d_model=8, num_classes=3)
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        head(torch.randn(2, 6, 9), torch.randn(2, 6, 9))
    with pytest.raises(ValueError, match="top_k"):
        head(torch.randn(2, 3, 8), torch.randn(2, 3, 8))
    temporal = TemporalAttention(video_dim=12, audio_dim=6, d_model=8, video_input_dim=16, audio_input_dim=4, ffn_dim=8)
    with pytest.raises(ValueError, match=r"\(B, T, 6\)"):
        temporal(torch.randn(2, 5, 12), torch.randn(2, 4, 6))


def test_ave_head_backward_and_bf16_autocast():
    torch.manual_seed(2)
    model = TemporalCMBSHead(video_dim=12, audio_dim=6, d_model=8, video_input_dim=16, audio_input_dim=4, ffn_dim=8,
                    num_classes=5)
    v, a = torch.randn(2, 10, 12), torch.randn(2, 10, 6)
    out = model(v, a)
    (out["event_scores"].sum() + out["is_event"].sum() + out["audio_visual_gate"].sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out16 = model(v, a)
    with torch.no_grad():
        out32 = model(v, a)
    assert (out16["event_scores"].float() - out32["event_scores"]).abs().max() < 0.1


def test_temporal_cmbs_head_has_dgscts_keys_and_old_name():
    """Same sub-modules and state-dict keys as DG-SCT's own temporal module + head, so weights move freely."""
    from avperceive.models import create_model

    with torch.device("meta"):
        host = create_model("dgsct-ave-tiny")
        t = host.temporal
        head = TemporalCMBSHead(
            video_dim=t.video_dim, audio_dim=t.audio_dim, d_model=host.head.d_model,
            video_input_dim=t.video_proj.out_features, audio_input_dim=t.audio_proj.out_features,
            ffn_dim=t.video_encoder.layers[0].ffn.linear1.out_features, num_classes=host.head.num_classes,
        )
    host_part = {k: v.shape for k, v in host.state_dict().items() if k.startswith(("temporal.", "head."))}
    assert {k: v.shape for k, v in head.state_dict().items()} == host_part
    assert AVEHead is TemporalCMBSHead
