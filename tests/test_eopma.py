"""EoPMA (perception-mode adapter ensembles): β = 0 / β = 1, backbone-once, modality setups, N banks,
the GEoPMA gate, residual orders, golden parity (g5), baselines and the β sweep."""

from __future__ import annotations

import copy

import pytest
import torch
from einops import rearrange

from avperceive.errors import ConfigError
from avperceive.hub.converters.adapters import convert_dgsct_adapter_state_dict
from avperceive.hub.mixin import load_state_dict_strict
from avperceive.models.dgsct import DGSCT, step_paired_layer
from avperceive.models.eopma import (
    REFERENCE_BETAS,
    PerceptionModeEnsemble,
    final_embedding_ensemble,
    reduced_alone,
    seed_ensemble,
    sweep_beta,
)
from avperceive.nn import AdapterBank
from avperceive.nn.ensemble import AdapterMix, PerceptionModeMixer, mix_residuals, resolve_stream_weights

T = 4
MICRO = dict(
    video_backbone=dict(
        img_size=16, patch_size=4, embed_dim=16, depths=(1, 1, 2), num_heads=(1, 1, 2), window_size=2, num_classes=0
    ),
    audio_backbone=dict(
        sample_rate=8000, n_fft=256, hop_length=80, n_mels=16, fmax=3800.0, spec_size=64, embed_dim=16,
        depths=(1, 1, 1), num_heads=(1, 1, 2), window_size=4, num_classes=4, drop_path_rate=0.0,
    ),
    num_classes=5, num_segments=T, segment_samples=2000, audio_input_samples=8000, num_latents=4, d_model=16,
    video_input_dim=16, audio_input_dim=8, ffn_dim=32,
)


def randomise_bank(bank: AdapterBank, seed: int) -> AdapterBank:
    """Non-trivial adapter weights (gates away from 0, BN statistics away from identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in bank.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(0.5 + 0.1 * noise if name.endswith("gate") else p + 0.2 * noise * (p.std() if p.numel() > 1 else 1))
        for name, b in bank.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return bank


def micro_host(seed: int = 0, **kw) -> DGSCT:
    torch.manual_seed(seed)
    host = DGSCT(**{**MICRO, **kw}).eval()
    randomise_bank(host.adapters, seed + 100)
    return host


def fresh_bank(host: DGSCT, seed: int) -> AdapterBank:
    torch.manual_seed(seed)
    return randomise_bank(AdapterBank(**host.adapters.config), seed).eval()


def clips(b: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, T, 3, 16, 16, generator=g), 0.1 * torch.randn(b, T, 2000, generator=g)


@pytest.fixture(scope="module")
def setup():
    host = micro_host()
    return host, fresh_bank(host, 7), clips()


def maxdiff(x: dict, y: dict, keys=("event_scores", "is_event", "av_score", "video_pooled", "audio_pooled")) -> float:
    """Largest |x - y| over the outputs. Tests below assert ``== 0.0`` only where the two sides are the same
    float operations on the same values: a weight of exactly 0 or 1 (``0·r + 1·c == c`` in IEEE arithmetic for
    finite r; zero-weight members are skipped), or the same configuration spelled two ways."""
    return max((x[k] - y[k]).abs().max().item() for k in keys)


# -- β = 0, β = 1, backbone once -------------------------------------------------------------------------
def test_beta0_reproduces_the_host_exactly(setup):
    host, reduced, (video, audio) = setup
    for modality in ("av", "a", "v"):
        ens = PerceptionModeEnsemble(host, {"causal": host.adapters, "reduced": reduced}, beta=0.0, modality=modality)
        with torch.no_grad():
            d = maxdiff(ens(video, audio), host(video, audio))
        print(f"beta=0 {modality}: max|diff| {d}")
        assert d == 0.0


def _final_tokens(model, video, audio, backbone_owner: DGSCT):
    """Capture the last video tokens (input of the final norm) and the last audio tokens."""
    got = {}
    h1 = backbone_owner.video_backbone.norm.register_forward_hook(lambda m, i, o: got.__setitem__("v", i[0]))
    h2 = backbone_owner.audio_backbone.stages[-1].downsample.register_forward_hook(
        lambda m, i, o: got.__setitem__("a", o)
    )
    try:
        with torch.no_grad():
            out = model(video, audio)
    finally:
        h1.remove()
        h2.remove()
    return got, out


def test_beta1_equals_host_with_reduced_bank_swapped_in(setup):
    host, reduced, (video, audio) = setup
    ens = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=1.0)
    swapped = reduced_alone(host, reduced)
    assert swapped.adapters is reduced and host.adapters is not reduced  # the host itself is untouched
    tok_e, out_e = _final_tokens(ens, video, audio, host)
    tok_s, out_s = _final_tokens(swapped, video, audio, host)
    dv, da = (tok_e["v"] - tok_s["v"]).abs().max().item(), (tok_e["a"] - tok_s["a"]).abs().max().item()
    print(f"beta=1 vs swapped host: max|diff| video tokens {dv}, audio tokens {da}")
    assert dv == 0.0 and da == 0.0
    # the pooling maps stay the causal bank's (reference): so the pooled features differ from the swapped host
    assert (out_e["audio_pooled"] - out_s["audio_pooled"]).abs().max() > 1e-6  # 16 audio tokens (1 video token)
    tok_h, _ = _final_tokens(host, video, audio, host)
    assert (tok_h["v"] - tok_e["v"]).abs().max() > 1e-4  # the reduced bank really changes the states


def test_backbone_runs_once_and_adapters_once_per_bank(setup):
    host, reduced, (video, audio) = setup
    ens = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.3)
    counts: dict[str, int] = {}
    hooks = []

    def counter(name):
        def hook(module, inputs, output):
            counts[name] = counts.get(name, 0) + 1
        return hook

    for bb_name, bb in (("video", host.video_backbone), ("audio", host.audio_backbone)):
        for s, stage in enumerate(bb.stages):
            for j, block in enumerate(stage.blocks):
                # paired video blocks are stepped through attn_branch/mlp_branch, so count those too
                for part_name, part in (("block", block), ("attn", block.attn), ("mlp", block.mlp)):
                    hooks.append(part.register_forward_hook(counter(f"{bb_name}.{s}.{j}.{part_name}")))
        hooks.append(bb.patch_embed.register_forward_hook(counter(f"{bb_name}.patch_embed")))
    for bank_name, bank in (("causal", host.adapters), ("reduced", reduced)):
        for (m, p, i), adapter in bank.named_adapters():
            hooks.append(adapter.register_forward_hook(counter(f"{bank_name}.{m}.{p}.{i}")))
    try:
        with torch.no_grad():
            ens(video, audio)
    finally:
        for h in hooks:
            h.remove()
    backbone = {k: v for k, v in counts.items() if k.startswith(("video", "audio"))}
    adapters = {k: v for k, v in counts.items() if k.startswith(("causal", "reduced"))}
    n_blocks = sum(len(s.blocks) for bb in (host.video_backbone, host.audio_backbone) for s in bb.stages)
    assert set(backbone.values()) == {1}, backbone
    assert sum(1 for k in backbone if k.endswith(".attn")) == n_blocks
    assert len(adapters) == 2 * 4 * host.adapters.num_layers and set(adapters.values()) == {1}


def test_modality_setups_and_per_stream_beta(setup):
    host, reduced, (video, audio) = setup
    banks = {"reduced": reduced}
    with torch.no_grad():
        out = {m: PerceptionModeEnsemble(host, banks, beta=0.4, modality=m)(video, audio) for m in ("a", "v", "av")}
        a_only = PerceptionModeEnsemble(host, banks, beta={"a": 0.4}, modality="av")(video, audio)
        v_only = PerceptionModeEnsemble(host, banks, beta={"audio": 0.0, "video": 0.4})(video, audio)
        base = host(video, audio)
    assert maxdiff(out["a"], a_only) == 0.0
    assert maxdiff(out["v"], v_only) == 0.0
    for m in ("a", "v", "av"):
        assert maxdiff(out[m], base) > 1e-6
    assert maxdiff(out["a"], out["v"]) > 1e-6 and maxdiff(out["a"], out["av"]) > 1e-6
    with pytest.raises(ConfigError):
        PerceptionModeEnsemble(host, banks, beta=1.5)
    with pytest.raises(ConfigError):
        PerceptionModeEnsemble(host, banks, beta=0.1, modality="x")


def test_n_banks_on_the_simplex(setup):
    host, reduced, (video, audio) = setup
    semantic = fresh_bank(host, 11)
    banks = {"causal": host.adapters, "reduced": reduced, "semantic": semantic}
    with torch.no_grad():
        three = PerceptionModeEnsemble(host, banks, weights={"causal": 0.8, "reduced": 0.2, "semantic": 0.0})
        two = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.2)
        assert maxdiff(three(video, audio), two(video, audio)) == 0.0
    # one position: the residual is the weighted sum of the three adapters
    mixer = PerceptionModeMixer(banks, weights={"causal": 0.5, "reduced": 0.3, "semantic": 0.2})
    g = torch.Generator().manual_seed(3)
    a0 = host.adapters["audio_p1"][0]
    own = torch.randn(3, a0.tokens, a0.dim, generator=g)
    other = torch.randn(3, a0.other_tokens, a0.other_dim, generator=g)
    with torch.no_grad():
        got, m = mixer.residual(0, "p1", "audio", own, other)
        parts = [b["audio_p1"][0](own, other) for b in (host.adapters, reduced, semantic)]
    want = 0.5 * parts[0][0] + 0.3 * parts[1][0] + 0.2 * parts[2][0]
    assert (got - want).abs().max().item() < 1e-6 and torch.equal(m, parts[0][1])
    with pytest.raises(ConfigError):
        PerceptionModeMixer(banks, weights={"causal": 0.5, "reduced": 0.6})
    with pytest.raises(ConfigError):
        PerceptionModeMixer(banks, beta=0.1)  # beta needs exactly two banks
    w = resolve_stream_weights(["causal", "reduced"], beta=0.25, modality="v")
    assert w == {"audio": {"causal": 1.0, "reduced": 0.0}, "video": {"causal": 0.75, "reduced": 0.25}}


def test_residual_orders(setup):
    host, reduced, (video, audio) = setup
    paper_host = micro_host(residual_order="paper")  # same seed -> same weights
    with torch.no_grad():
        ens = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.0, residual_order="paper")
        d = maxdiff(ens(video, audio), paper_host(video, audio))
        assert host.residual_order == "reference"  # restored after the forward
        ref = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.3, residual_order="dgsct")(video, audio)
        pap = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.3, residual_order="paper")(video, audio)
    print(f"paper order beta=0 vs paper host: {d}")
    assert d == 0.0
    assert maxdiff(ref, pap) > 1e-6


def test_learned_gate_geopma(setup):
    host, reduced, (video, audio) = setup
    ens = PerceptionModeEnsemble(copy.deepcopy(host), {"reduced": copy.deepcopy(reduced)}, gate="learned")
    gates = ens.mixer.gates
    layers = host.adapters.num_layers
    assert len(gates["p1"]) == len(gates["p2"]) == layers
    cv, ca = host.adapters.layers[0]["video_dim"], host.adapters.layers[0]["audio_dim"]
    assert gates["p1"][0].proj.in_features == cv + ca and gates["p1"][0].proj.out_features == 2
    w = gates["p1"][0](torch.randn(3, 5, cv), torch.randn(3, 7, ca))
    assert w.shape == (3, 2) and torch.allclose(w.sum(-1), torch.ones(3))
    ens.requires_grad_(False)
    gates.requires_grad_(True)
    out = ens(video, audio)
    out["event_scores"].square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gates.parameters())
    assert all(p.grad is None for p in ens.host.parameters())
    with torch.no_grad():  # saturating the gates toward the causal bank recovers the host
        for g in list(gates["p1"]) + list(gates["p2"]):
            g.proj.weight.zero_()
            g.proj.bias.copy_(torch.tensor([60.0, -60.0]))
        assert maxdiff(ens(video, audio), host(video, audio)) < 1e-5


# -- golden parity ------------------------------------------------------------------------------------
def _tag_beta(tag: str) -> float:
    return float(tag.removeprefix("beta_").replace("p", "."))


@pytest.mark.parametrize("attn_impl", ("reference", "fused"))
@pytest.mark.golden_cases("*_eopma_mix")
def test_eopma_adapter_mix_module_parity(golden_case, attn_impl):
    """:class:`AdapterMix` (one position of EoPMA) against the reference mix for every β of the case."""
    cfg = golden_case.meta["config"]
    members = []
    for name in ("causal", "reduced"):
        conv = convert_dgsct_adapter_state_dict(golden_case.weights, prefix=f"{name}.")
        c = conv.config
        got_dims = (c["dim"], c["tokens"], c["other_dim"], c["other_tokens"])
        assert got_dims == (cfg["C_x"], cfg["N_x"], cfg["C_y"], cfg["N_y"])
        from avperceive.nn import DGSCTAdapter

        ad = DGSCTAdapter(cfg["C_x"], cfg["N_x"], cfg["C_y"], cfg["N_y"], cfg["num_tk"], cfg["reduction_factor"],
                          cfg["num_conv_group"], attn_impl=attn_impl)
        load_state_dict_strict(ad, conv.state_dict)
        members.append(ad.eval())
    mix = AdapterMix(members)
    x = rearrange(golden_case.inputs["x"], "b c n 1 -> b n c")
    y = rearrange(golden_case.inputs["y"], "b c n 1 -> b n c")
    tol = golden_case.meta.get("tolerance", {}).get("suggested_parity_tolerance", {}).get("atol", 1e-5)
    betas = golden_case.meta["forward"]["betas"]
    worst = 0.0
    with torch.no_grad():
        for beta in betas:
            mix.beta = beta
            got, pooling_map = mix(x, y)
            want = golden_case.outputs["mix_beta_" + f"{beta:g}".replace(".", "p")]
            worst = max(worst, (rearrange(got, "b n c -> b c n 1") - want).abs().max().item())
        d_map = (pooling_map - golden_case.outputs["spatial_attention_causal"][:, 0]).abs().max().item()
    print(f"{golden_case.stem} [{attn_impl}] betas {betas}: max|diff| mix {worst:.3e} map {d_map:.3e} (tol {tol})")
    assert len(betas) >= 1 and worst <= tol and d_map <= tol


def _layer_pair_modules(golden_case):
    from avperceive.backbones.htsat import HTSATBlock
    from avperceive.backbones.swinv2 import SwinV2Block

    c, w = golden_case.meta["config"], golden_case.weights
    vb = SwinV2Block(c["C_v"], tuple(c["res_v"]), c["heads_v"], c["window_v"], c["shift_v"]).eval()
    ab = HTSATBlock(c["C_a"], tuple(c["res_a"]), c["heads_a"], c["window_a"], c["shift_a"]).eval()
    for block, prefix in ((vb, "video_block."), (ab, "audio_block.")):
        own = block.state_dict()
        sub = {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix) and k[len(prefix):] in own}
        load_state_dict_strict(block, sub)
    n_v, n_a = c["res_v"][0] * c["res_v"][1], c["res_a"][0] * c["res_a"][1]
    banks = {}
    for name in ("causal", "reduced"):
        bank = AdapterBank.dgsct([c["C_v"]], [c["C_a"]], [n_v], [n_a], num_latents=c["num_tk"],
                                 reduction=c["reduction_factor"], groups=c["num_conv_group"])
        for fam, ours in (("audio_adapter_blocks", "audio"), ("vis_adapter_blocks", "video")):
            for pos in ("p1", "p2"):
                conv = convert_dgsct_adapter_state_dict(w, prefix=f"{name}.{fam}_{pos}.0.")
                load_state_dict_strict(bank[ours, pos, 0], conv.state_dict)
        banks[name] = bank.eval()
    return vb, ab, banks


@pytest.mark.parametrize("attn_impl", ("reference", "fused"))
@pytest.mark.golden_cases("*_eopma_layer_pair")
def test_eopma_layer_pair_parity(golden_case, attn_impl):
    """One paired layer (Swin-V2 + HTS-AT blocks, 4 adapters per bank) with the EoPMA mix, every β tag."""
    vb, ab, banks = _layer_pair_modules(golden_case)
    for b in banks.values():
        b.set_attn_impl(attn_impl)
    vb.attn.attn_impl = ab.attn.attn_impl = attn_impl
    tags = sorted({k.split(".")[0] for k in golden_case.outputs})
    meta_tol = golden_case.meta.get("tolerance", {}).get("suggested_parity_tolerance", {}).get("atol")
    tol = meta_tol if meta_tol is not None else 1e-5
    cfg_beta = golden_case.meta["config"].get("beta")
    assert tags and (cfg_beta is None or any(_tag_beta(t) == cfg_beta for t in tags))
    for tag in tags:
        mixer = PerceptionModeMixer(banks, beta=_tag_beta(tag))
        after_p1 = {}

        def residual(pos, mod, own, other, mixer=mixer, after_p1=after_p1):
            if pos == "p2":  # the p2 adapters read the states after the p1 step
                after_p1[mod] = own
            return mixer.residual(0, pos, mod, own, other)

        with torch.no_grad():
            v, a, (map_v, map_a) = step_paired_layer(
                vb, ab, golden_case.inputs["v"], golden_case.inputs["a"], residual, "reference"
            )
        y = golden_case.outputs
        diffs = {
            "v": (v - y[f"{tag}.v"]).abs().max().item(),
            "a": (a - y[f"{tag}.a"]).abs().max().item(),
            "v_after_p1": (after_p1["video"] - y[f"{tag}.v_after_p1"]).abs().max().item(),
            "a_after_p1": (after_p1["audio"] - y[f"{tag}.a_after_p1"]).abs().max().item(),
            "v_map": (map_v - y[f"{tag}.v_spatial_attention"][:, 0]).abs().max().item(),
            "a_map": (map_a - y[f"{tag}.a_spatial_attention"][:, 0]).abs().max().item(),
        }
        print(f"{golden_case.stem} {tag} [{attn_impl}] max|diff| " + " ".join(f"{k} {d:.2e}" for k, d in diffs.items()))
        assert max(diffs.values()) <= tol, (tag, diffs)


# -- baselines and the β sweep ----------------------------------------------------------------------------
def test_final_embedding_ensemble_baseline(setup):
    host, reduced, (video, audio) = setup
    other = reduced_alone(host, reduced)
    fe = final_embedding_ensemble(host, other, beta=0.0)
    with torch.no_grad():
        assert maxdiff(fe(video, audio), host(video, audio)) == 0.0
        fe.set_beta(0.5)
        out = fe(video, audio)
        oc, orr = host(video, audio), other(video, audio)
        vf = 0.5 * orr["video_feature"] + 0.5 * oc["video_feature"]
        af = 0.5 * orr["audio_feature"] + 0.5 * oc["audio_feature"]
        want = host.head(vf, af)["event_scores"]
    assert (out["event_scores"] - want).abs().max().item() < 1e-6
    assert (out["event_scores"] - oc["event_scores"]).abs().max().item() > 1e-6


def test_seed_ensemble_and_reduced_alone(setup):
    host, reduced, (video, audio) = setup
    second = fresh_bank(host, 23)
    ens = seed_ensemble(host, second, beta=0.0)
    assert ens.mixer.member_names == ["causal", "seed"]
    manual = copy.deepcopy(host)
    manual.adapters = copy.deepcopy(reduced)
    with torch.no_grad():
        assert maxdiff(ens(video, audio), host(video, audio)) == 0.0
        assert maxdiff(reduced_alone(host, reduced)(video, audio), manual(video, audio)) == 0.0
    with pytest.raises(ConfigError):
        reduced_alone(host, AdapterBank.dgsct([16], [16], [16], [64]))


def test_sweep_beta_and_plot(setup, tmp_path):
    host, reduced, (video, audio) = setup
    g = torch.Generator().manual_seed(5)
    batches = [(video, audio, torch.randint(0, 6, (2, T), generator=g)) for _ in range(2)]
    ens = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=0.01, modality="a")
    sweep = sweep_beta(ens, batches, betas=[0.0, 0.5, 1.0], label="PT_av_a")
    assert ens.mixer.stream_weights["audio"]["reduced"] == 0.01  # restored
    assert ens.mixer.stream_weights["video"]["reduced"] == 0.0
    with torch.no_grad():
        correct = sum(int((host.decide(host(v, a)) == t).sum()) for v, a, t in batches)
    assert sweep.accuracies[0] == correct / (2 * 2 * T)
    assert sweep.baseline_accuracy == sweep.accuracies[0]
    assert sweep.best_accuracy == max(sweep.accuracies) and sweep.best_beta in (0.0, 0.5, 1.0)
    assert all(0.0 <= x <= 1.0 for x in sweep.accuracies)
    dict_batches = [{"video": video, "audio": audio, "target": torch.tensor([1, 2])}]
    clip = sweep_beta(ens, dict_batches, betas=[0.0], metric="clip")
    with torch.no_grad():
        want = float((host(video, audio)["event_scores"].argmax(-1) == torch.tensor([1, 2])).float().mean())
    assert clip.accuracies == [want]
    assert len(REFERENCE_BETAS) == 40 and REFERENCE_BETAS[1] == 0.001 and REFERENCE_BETAS[-1] == 0.039

    from avperceive.analysis.beta_plot import plot_beta_sweep

    path = plot_beta_sweep([sweep, clip], tmp_path / "beta.png", baseline=sweep.baseline_accuracy)
    assert path.is_file() and path.stat().st_size > 1000


def test_mix_residuals_validation():
    r = torch.ones(2, 3, 4)
    assert torch.equal(mix_residuals([r, 2 * r], [0.0, 1.0]), 2 * r)
    w = torch.tensor([0.25, 0.75])
    got = mix_residuals([r, 3 * r], [1 - w, w])
    assert torch.allclose(got[0], torch.full((3, 4), 1.5)) and torch.allclose(got[1], torch.full((3, 4), 2.5))
    with pytest.raises(ValueError):
        mix_residuals([r], [0.5, 0.5])
    with pytest.raises(ValueError):
        mix_residuals([r, r], [torch.ones(3), torch.ones(3)])


def test_ensemble_follows_the_host_mode(setup):
    host, reduced, _ = setup
    ens = PerceptionModeEnsemble(host, {"reduced": copy.deepcopy(reduced).train()}, beta=0.1)
    assert not ens.training and not ens.mixer.banks["reduced"].training and not host.training
    ens.train()
    assert host.head.training and not host.video_backbone.training  # frozen backbones stay in eval mode
    ens.eval()
    assert not host.training


@pytest.mark.parametrize("gate", (None, "learned"))
def test_bf16_autocast_stays_close(setup, gate):
    host, reduced, (video, audio) = setup
    ens = PerceptionModeEnsemble(host, {"reduced": reduced}, beta=None if gate else 0.3, gate=gate)
    with torch.no_grad():
        ref = ens(video, audio)["event_scores"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = ens(video, audio)["event_scores"]
    d = (ref - low.float()).abs().max().item()
    print(f"bf16 autocast ({gate}): max|diff| {d:.2e} of max {ref.abs().max().item():.2f}")
    assert torch.isfinite(low).all() and d < 0.05
