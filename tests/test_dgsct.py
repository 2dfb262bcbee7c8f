"""DG-SCT AVE model: layer stepping, decision rule, inputs, checkpoints, fine-tuning ranges."""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path

import pytest
import torch

from avperceive.hub.convert import convert_checkpoint
from avperceive.hub.mixin import load_state_dict_strict
from avperceive.models import create_model, get_pretrained_cfg
from avperceive.models.dgsct import DGSCT, pair_layers, step_paired_layer
from avperceive.models.trainable import set_trainable
from avperceive.nn.heads import ave_decision

MANIFEST = Path(__file__).parent / "data" / "dgsct" / "dgsct_state_dict_keys.json"
T = 4  # the smallest clip the top-4 head accepts; keeps the tiny forward cheap


def _tiny(**kw) -> DGSCT:
    torch.manual_seed(0)
    return create_model("dgsct-ave-tiny", num_segments=T, **kw).eval()


def _inputs(b: int = 1, t: int = T, samples: int = 32000):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, t, 3, 32, 32, generator=g), 0.1 * torch.randn(b, t, samples, generator=g)


def _randomise_gates(model: DGSCT, value: float = 0.5) -> None:
    with torch.no_grad():
        for name, p in model.adapters.named_parameters():
            if name.endswith("gate"):
                p.fill_(value)


def test_pair_layers_reference_map():
    layers = pair_layers([2, 2, 18, 2], [2, 2, 6, 2])
    assert len(layers) == 12
    assert [(x.stage, x.video_block, x.audio_block) for x in layers[:4]] == [(0, 0, 0), (0, 1, 1), (1, 0, 0), (1, 1, 1)]
    assert [x.video_block for x in layers if x.stage == 2] == [2, 5, 8, 11, 14, 17]
    assert [x.audio_block for x in layers if x.stage == 2] == [0, 1, 2, 3, 4, 5]
    assert [(x.stage, x.video_block) for x in layers[10:]] == [(3, 0), (3, 1)]


def test_tiny_forward_shapes_and_decision():
    model = _tiny()
    video, audio = _inputs(b=2)
    with torch.no_grad():
        out = model(video, audio)
    assert out["is_event"].shape == (2, T) and out["audio_visual_gate"].shape == (2, T)
    assert out["event_scores"].shape == (2, 28) and out["av_score"].shape == (2, 28)
    assert out["video_pooled"].shape == (2, T, 128) and out["audio_pooled"].shape == (2, T, 128)
    pred = model.decide(out)
    assert pred.dtype == torch.int64 and pred.shape == (2, T)
    assert torch.equal(pred, ave_decision(out["is_event"], out["event_scores"]))
    assert torch.equal(model.predict_segments(video, audio), pred)
    assert ((pred >= 0) & (pred <= 28)).all()


@pytest.mark.parametrize("order", ["reference", "paper"])
def test_zero_residuals_reduce_to_the_frozen_backbones(order):
    """With zero adapter residuals and uniform maps the streams are the plain backbones' tokens."""
    model = _tiny(residual_order=order)
    video, audio = _inputs()

    def zero(i, position, modality, own, other):
        return torch.zeros_like(own), torch.full(own.shape[:2], 1.0 / own.shape[1])

    with torch.no_grad():
        v_pool, a_pool = model.forward_backbones(video, audio, residual_fn=zero)
        frames = video.flatten(0, 1)
        v_ref = model.video_backbone.forward_features(frames).mean(1)
        image = model.audio_backbone.forward_frontend(model.tile_audio(audio).flatten(0, 1))
        a_ref = model.audio_backbone.forward_intermediates(image)[1][-1].mean(1)
    dv, da = (v_pool[0] - v_ref).abs().max().item(), (a_pool[0] - a_ref).abs().max().item()
    print(order, dv, da)
    assert dv < 1e-4 and da < 1e-4


def test_fresh_adapters_add_nothing_and_gates_matter():
    model = _tiny()
    video, audio = _inputs()

    def zero_residual_real_map(i, position, modality, own, other):
        _, pooling_map = model.adapter_residual(i, position, modality, own, other)
        return torch.zeros_like(own), pooling_map

    with torch.no_grad():
        fresh = model(video, audio)["event_scores"]
        zeroed = model(video, audio, residual_fn=zero_residual_real_map)["event_scores"]
        _randomise_gates(model)
        gated = model(video, audio)["event_scores"]
    assert torch.allclose(fresh, zeroed, atol=1e-6)
    assert (gated - fresh).abs().max() > 1e-3


def test_residual_order_paper_differs_from_reference_when_adapters_act():
    ref, paper = _tiny(), _tiny(residual_order="paper")
    paper.load_state_dict(ref.state_dict())
    _randomise_gates(ref)
    _randomise_gates(paper)
    video, audio = _inputs()
    with torch.no_grad():
        a, b = ref(video, audio)["event_scores"], paper(video, audio)["event_scores"]
    assert (a - b).abs().max() > 1e-4


def test_fused_and_reference_attention_agree():
    model = _tiny()
    _randomise_gates(model)
    video, audio = _inputs()
    with torch.no_grad():
        fused = model(video, audio)
        model.set_attn_impl("reference")
        ref = model(video, audio)
    for k in ("is_event", "event_scores", "av_score", "audio_visual_gate", "video_pooled", "audio_pooled"):
        diff = (fused[k] - ref[k]).abs().max().item()
        print(k, diff)
        assert diff < 1e-4, k


def test_audio_tiling_matches_pretiled_input():
    model = _tiny()
    video, audio = _inputs()
    tiled = audio.repeat(1, 1, 5)
    assert torch.equal(model.tile_audio(audio), tiled)  # a copy of the samples
    with torch.no_grad():  # the same contiguous values either way, so the same kernels: bit-identical
        assert torch.equal(model(video, audio)["event_scores"], model(video, tiled)["event_scores"])


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        model = _tiny(grad_checkpointing=ckpt)
        _randomise_gates(model)
        set_trainable(model, "all")
        model.train()
        video, audio = _inputs()
        out = model(video, audio)
        (out["event_scores"].sum() + out["is_event"].sum()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert all(p.grad is None for p in model.video_backbone.parameters())
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    worst = max((grads[0][k] - grads[1][k]).abs().max().item() for k in grads[0])
    print("max grad diff", worst)
    assert worst < 1e-5


def test_bad_inputs_name_the_expected_shape():
    model = _tiny()
    video, audio = _inputs()
    with pytest.raises(ValueError, match=r"\(B, 4, 3, 32, 32\)"):
        model(video[:, :3], audio[:, :3])
    with pytest.raises(ValueError, match=r"\(B, 4, 3, 32, 32\)"):
        model(torch.randn(1, T, 3, 48, 48), audio)
    with pytest.raises(ValueError, match=r"\(B, 4, 32000\) or \(B, 4, 160000\)"):
        model(video, audio[..., :16000])
    with pytest.raises(ValueError, match="floating"):
        model(video, audio.long())


def test_registry_entries_and_save_load_roundtrip(tmp_path):
    cfg = get_pretrained_cfg("dgsct-ave")
    assert cfg.hub_id is None and cfg.input["task"] == "ave" and cfg.input["sample_rate"] == 32000
    assert cfg.input["audio_steps"] == [{"op": "tile", "samples": 320000}]
    assert cfg.input["size"] == 192 and cfg.input["segments"] == 10
    assert len(cfg.label_names) == 28 and cfg.label_names[0] == "Church bell" and cfg.label_names[27] == "Mandolin"
    model = _tiny(num_classes=5)
    _randomise_gates(model, 0.3)
    model.save_pretrained(tmp_path)
    again = DGSCT.from_pretrained(str(tmp_path)).eval()
    video, audio = _inputs()
    with torch.no_grad():  # weights saved and loaded bit-exactly, same input, same kernels
        assert torch.equal(model(video, audio)["event_scores"], again(video, audio)["event_scores"])
    assert again.head.num_classes == 5


def test_set_trainable_tiny_counts_modules():
    model = _tiny()
    head = sum(p.numel() for p in model.head.parameters())
    adapters = sum(p.numel() for p in model.adapters.parameters())
    temporal = sum(p.numel() for p in model.temporal.parameters())
    assert set_trainable(model, "cls") == head
    assert set_trainable(model, "adapters") == adapters
    assert set_trainable(model, "all") == adapters + head
    assert set_trainable(model, "all", train_temporal=True) == adapters + head + temporal
    assert not any(p.requires_grad for p in model.audio_backbone.parameters())


def _manifest():
    return json.loads(MANIFEST.read_text())


def _is_buffer(key: str) -> bool:
    """BatchNorm statistics in a reference state dict (not parameters)."""
    return key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def test_reference_cmbs_dead_parameters_and_live_count_with_4_classes():
    """The reference CMBS.* holds 531,725 elements with 4 classes; 528,384 are in discarded modules."""
    keys = _manifest()["all_keys"]

    def size(key, shape):
        shape = list(shape)
        if any(p in key for p in ("event_classifier", "audio_cas", "video_cas")) and shape[0] == 28:
            shape[0] = 4
        n = 1
        for s in shape:
            n *= s
        return n

    cmbs = {k: size(k, s) for k, s in keys.items() if k.startswith("CMBS.")}
    dead = sum(n for k, n in cmbs.items() if k.split(".")[1] in ("AVInter", "VAInter", "video_norm", "audio_norm"))
    assert sum(cmbs.values()) == 531_725
    assert dead == 528_384
    with torch.device("meta"):
        model = DGSCT(num_classes=4)
    head = sum(cmbs.values()) - dead
    assert set_trainable(model, "cls") == head == 3_341
    # the reference's four adapter families, less BatchNorm statistics and the unused gate_tk (both not trained)
    unused = _manifest()["unused_in_forward"]
    adapters = sum(
        math.prod(s) for k, s in keys.items()
        if "_adapter_blocks_p" in k and not _is_buffer(k) and not any(fnmatch.fnmatchcase(k, p) for p in unused)
    )
    assert set_trainable(model, "adapters") == adapters == 188_538_816
    assert set_trainable(model, "all") == adapters + head


def test_full_size_reference_layout_converts_and_loads_strictly():
    """A full-size state dict in the best_82.18.pt layout (meta tensors, shapes from the manifest)."""
    keys = _manifest()["all_keys"]
    sd = {
        k: torch.empty(s, device="meta", dtype=torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
        for k, s in keys.items()
    }
    conv = convert_checkpoint("dgsct-ave", sd, return_report=True)
    assert len(conv.state_dict) + len(conv.dropped) == len(keys) == 2646
    assert conv.config["num_classes"] == 28 and conv.config["num_latents"] == 32
    dead_prefixes = ("adapter_token_downsampler.", "CMBS.AVInter.", "CMBS.VAInter.", "CMBS.video_norm.", "swin.head.")
    for k in keys:
        if k.startswith(dead_prefixes) or k.endswith(".gate_tk"):
            assert k in conv.dropped, k
    with torch.device("meta"):
        model = DGSCT(**conv.config)
    load_state_dict_strict(model, conv.state_dict)
    # every parameter comes from the checkpoint: the manifest's kept keys, less the BatchNorm statistics
    kept = sum(math.prod(s) for k, s in keys.items() if k not in conv.dropped and not _is_buffer(k))
    assert sum(p.numel() for p in model.parameters()) == kept == 421_586_866


@pytest.mark.golden_cases("*_eopma_layer_pair")
def test_step_paired_layer_parity_beta0(golden_case):
    """One DG-SCT paired layer (Swin-V2 block + HTS-AT block + 4 adapters) at beta = 0."""
    from avperceive.backbones.htsat import HTSATBlock
    from avperceive.backbones.swinv2 import SwinV2Block
    from avperceive.hub.converters.adapters import convert_dgsct_adapter_state_dict
    from avperceive.nn.adapters import DGSCTAdapter

    c = golden_case.meta["config"]
    w = golden_case.weights
    vb = SwinV2Block(c["C_v"], tuple(c["res_v"]), c["heads_v"], c["window_v"], c["shift_v"]).eval()
    ab = HTSATBlock(c["C_a"], tuple(c["res_a"]), c["heads_a"], c["window_a"], c["shift_a"]).eval()
    for block, prefix in ((vb, "video_block."), (ab, "audio_block.")):
        own = block.state_dict()
        sub = {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix) and k[len(prefix):] in own}
        load_state_dict_strict(block, sub)
    n_v, n_a = c["res_v"][0] * c["res_v"][1], c["res_a"][0] * c["res_a"][1]
    adapters = {}
    for fam, ours in (("audio_adapter_blocks", "audio"), ("vis_adapter_blocks", "video")):
        for pos in ("p1", "p2"):
            conv = convert_dgsct_adapter_state_dict(w, prefix=f"causal.{fam}_{pos}.0.")
            dims = (c["C_a"], n_a, c["C_v"], n_v) if ours == "audio" else (c["C_v"], n_v, c["C_a"], n_a)
            ad = DGSCTAdapter(
                *dims, num_latents=c["num_tk"], reduction=c["reduction_factor"], groups=c["num_conv_group"]
            )
            load_state_dict_strict(ad, conv.state_dict)
            adapters[(pos, ours)] = ad.eval()

    with torch.no_grad():
        v, a, (map_v, map_a) = step_paired_layer(
            vb, ab, golden_case.inputs["v"], golden_case.inputs["a"],
            lambda pos, mod, own, other: adapters[(pos, mod)](own, other),
        )
    y = golden_case.outputs
    for name, ours, ref in (
        ("v", v, y["beta_0.v"]), ("a", a, y["beta_0.a"]),
        ("v_map", map_v, y["beta_0.v_spatial_attention"][:, 0]),
        ("a_map", map_a, y["beta_0.a_spatial_attention"][:, 0]),
    ):
        diff = (ours - ref).abs().max().item()
        print(name, diff)
        assert diff < 1e-4, name


def test_bf16_autocast_runs_and_stays_close():
    model = _tiny()
    _randomise_gates(model)
    video, audio = _inputs()
    with torch.no_grad():
        ref = model(video, audio)["event_scores"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(video, audio)["event_scores"]
    diff = (low.float() - ref).abs().max().item()
    print("bf16 vs fp32", diff, ref.abs().max().item())
    assert diff < 0.1 * ref.abs().max().item()
