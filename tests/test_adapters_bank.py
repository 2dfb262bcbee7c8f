"""AdapterBank (build, index, save/load, swap) and the single-adapter / bank converters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from avperceive.errors import CheckpointError, ConfigError
from avperceive.hub import convert_checkpoint
from avperceive.hub.converters.adapters import DGSCT_ADAPTER_KEY_MAP, LAVISH_ADAPTER_KEY_MAP
from avperceive.nn import AdapterBank, DGSCTAdapter, LAVisHAdapter

TINY = dict(video_dims=[16, 32], audio_dims=[8, 16], video_tokens=[9, 4], audio_tokens=[16, 6])


def tiny_bank(**kw) -> AdapterBank:
    torch.manual_seed(0)
    bank = AdapterBank.dgsct(**TINY, num_latents=4, reduction=4, groups=2, **kw)
    with torch.no_grad():
        for p in bank.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return bank.eval()


def to_reference_layout(adapter_sd: dict[str, torch.Tensor], key_map: dict[str, str], prefix: str = "") -> dict:
    """Inverse of the converter (squeezed 1x1 kernels back to [out, in, 1, 1]); adds the dead ``gate_tk``."""
    inverse = {ours: ref for ref, ours in key_map.items()}
    out = {}
    for k, v in adapter_sd.items():
        ref = inverse[k]
        out[prefix + ref] = v[:, :, None, None] if ref.endswith(("conv_adapter.weight", "sampler.weight")) else v
    out[prefix + "gate_tk"] = torch.ones(1)
    return out


def test_bank_layout_and_indexing():
    bank = tiny_bank()
    assert len(bank) == bank.num_layers == 2
    v = bank["video", "p1", 1]
    assert isinstance(v, DGSCTAdapter) and (v.dim, v.tokens, v.other_dim, v.other_tokens) == (32, 4, 16, 6)
    a = bank.get("a", 2, 0)
    assert a is bank.audio_p2[0] and (a.dim, a.tokens, a.other_dim, a.other_tokens) == (8, 16, 16, 9)
    assert bank["audio_p2"] is bank.family("audio", "p2")
    assert bank.keys() == ("audio_p1", "video_p1", "audio_p2", "video_p2")
    assert len(list(bank.named_adapters())) == 8
    assert sorted({k.split(".")[0] for k in bank.state_dict()}) == sorted(bank.keys())
    assert "video_p1.1.latent.latents" in bank.state_dict()
    with pytest.raises(IndexError):
        bank.get("video", "p1", 2)
    with pytest.raises(KeyError):
        bank["speech", "p1", 0]
    # run one layer pair as a host would (both read the pre-block states)
    video, audio = torch.randn(3, 9, 16), torch.randn(3, 16, 8)
    r_v, map_v = bank["video", "p1", 0](video, audio)
    r_a, map_a = bank["audio", "p1", 0](audio, video)
    assert r_v.shape == video.shape and r_a.shape == audio.shape and map_v.shape == (3, 9) and map_a.shape == (3, 16)
    bank.attn_impl = "reference"
    assert {ad.attn_impl for _, ad in bank.named_adapters()} == {"reference"}
    r_v_ref, _ = bank["video", "p1", 0](video, audio)
    assert (r_v - r_v_ref).abs().max().item() <= 1e-5


def test_bank_save_load_roundtrip(tmp_path):
    bank = tiny_bank()
    path = bank.save(tmp_path / "causal.safetensors")
    loaded = AdapterBank.load(path)
    assert loaded.config == bank.config and loaded.same_layout(bank)
    for k, v in bank.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k  # safetensors round trip: a bit-exact copy
    video, audio = torch.randn(2, 4, 32), torch.randn(2, 6, 16)
    with torch.no_grad():  # bit-identical weights and inputs through the same kernels: bit-identical outputs
        assert torch.equal(bank["video", "p2", 1](video, audio)[0], loaded.eval()["video", "p2", 1](video, audio)[0])
    # strict: a tampered file names the key
    sd = load_file(str(path))
    sd.pop("audio_p1.0.latent.gate")
    sd["audio_p1.0.extra"] = torch.zeros(1)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(sd, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="audio_p1.0.latent.gate") as err:
        AdapterBank.load(tmp_path / "bad.safetensors")
    assert err.value.missing == ["audio_p1.0.latent.gate"] and err.value.unexpected == ["audio_p1.0.extra"]
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not an AdapterBank"):
        AdapterBank.load(tmp_path / "plain.safetensors")


def test_bank_swap_into_a_host():
    class Host(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(16, 16)
            self.adapters = tiny_bank()

        def forward(self, video, audio):
            r, _ = self.adapters["video", "p1", 0](video, audio)
            return self.proj(video) + r

    host = Host().eval()
    other = tiny_bank()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1.0)
    video, audio = torch.randn(2, 9, 16), torch.randn(2, 16, 8)
    before = host(video, audio)
    assert other.same_layout(host.adapters)
    host.adapters = other
    after = host(video, audio)
    assert not torch.allclose(before, after)
    assert "adapters.video_p1.0.token_proj.weight" in host.state_dict()


def test_bank_lavish_and_config_errors():
    bank = AdapterBank.lavish([16, 16, 32], num_latents=2)
    assert isinstance(bank["audio", "p1", 2], LAVisHAdapter) and bank["audio", "p1", 2].dim == 32
    assert AdapterBank(**bank.config).same_layout(bank)
    with pytest.raises(ConfigError):
        AdapterBank("lora", [{"dim": 8}])
    with pytest.raises(ConfigError):
        AdapterBank.dgsct([16], [8, 8], [4], [4])


def test_dgsct_ave_bank_size_matches_reference():
    """The real 12-layer bank (built on the meta device) has the reference's element count minus the 48 gate_tk."""
    with torch.device("meta"):
        bank = AdapterBank.dgsct_ave()
    n = sum(t.numel() for t in bank.state_dict().values())
    manifest = json.loads((Path(__file__).parent / "data" / "dgsct" / "dgsct_state_dict_keys.json").read_text())
    groups = manifest["top_level_groups"]
    reference_total = sum(groups[f"{m}_adapter_blocks_{p}"]["n_elems"] for m in ("vis", "audio") for p in ("p1", "p2"))
    gate_tk = [k for k in manifest["all_keys"] if "_adapter_blocks_" in k and k.endswith(".gate_tk")]
    assert len(gate_tk) == 4 * 12 and all(manifest["all_keys"][k] == [1] for k in gate_tk)  # unused, not kept
    assert n == reference_total - len(gate_tk) == 2 * (60_593_328 + 33_705_960) - 48
    assert bank["audio", "p1", 0].token_proj.weight.shape == (4096, 2304)
    assert bank["video", "p2", 11].channel_proj.weight.shape == (1536, 768)


def test_dgsct_adapter_converter_is_strict():
    ours = DGSCTAdapter(16, 6, 8, 5, num_latents=4).state_dict()
    ref = to_reference_layout(ours, DGSCT_ADAPTER_KEY_MAP)
    assert len(ref) == 38
    report = convert_checkpoint("dgsct-adapter", ref, return_report=True)
    assert set(report.state_dict) == set(ours) and report.dropped.keys() == {"gate_tk"}
    assert report.config == {"dim": 16, "tokens": 6, "other_dim": 8, "other_tokens": 5, "num_latents": 4,
                             "reduction": 8, "groups": 2}
    bad = dict(ref)
    bad.pop("fc.bias")
    bad["fc.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="fc.bias") as err:
        convert_checkpoint("dgsct-adapter", bad)
    assert err.value.missing == ["fc.bias"] and err.value.unexpected == ["fc.extra"]
    bad = dict(ref)
    bad["down_sampler.weight"] = bad["down_sampler.weight"][:, :, 0, 0]
    with pytest.raises(CheckpointError, match="1x1 conv"):
        convert_checkpoint("dgsct-adapter", bad)


def test_lavish_adapter_converter_gate_tk_optional(tmp_path):
    ours = LAVisHAdapter(16, num_latents=2).state_dict()
    ref = to_reference_layout(ours, LAVISH_ADAPTER_KEY_MAP)
    report = convert_checkpoint("lavish-adapter", ref, return_report=True)  # net_trans_v2 layout (gate_tk)
    assert report.dropped.keys() == {"gate_tk"} and set(report.state_dict) == set(ours)
    ref.pop("gate_tk")
    save_file(ref, str(tmp_path / "lavish.safetensors"))  # net_trans layout, from a file
    report = convert_checkpoint("lavish-adapter", tmp_path / "lavish.safetensors", return_report=True)
    assert report.dropped == {} and len(ref) == 19
    m = LAVisHAdapter(**report.config)
    m.load_state_dict(report.state_dict, strict=True)
    assert torch.equal(m.latent.latents, ours["latent.latents"])


def test_adapter_bank_converter_from_whole_checkpoint():
    bank = tiny_bank()
    families = {"audio_p1": "audio_adapter_blocks_p1", "video_p1": "vis_adapter_blocks_p1",
                "audio_p2": "audio_adapter_blocks_p2", "video_p2": "vis_adapter_blocks_p2"}
    ref: dict[str, torch.Tensor] = {"model.swin.norm.weight": torch.ones(4), "model.CMBS.x": torch.zeros(2)}
    for ours_family, ref_family in families.items():
        for i in range(bank.num_layers):
            adapter_sd = bank.family(*ours_family.split("_"))[i].state_dict()
            ref.update(to_reference_layout(adapter_sd, DGSCT_ADAPTER_KEY_MAP, f"model.{ref_family}.{i}."))
    report = convert_checkpoint("dgsct-adapter-bank", ref, return_report=True)
    assert report.config == bank.config
    rebuilt = AdapterBank(**report.config)
    rebuilt.load_strict(report.state_dict)
    for k, v in bank.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v), k
    assert report.dropped["model.swin.norm.weight"] == "not part of the adapter bank"
    assert sum(k.endswith("gate_tk") for k in report.dropped) == 8
    with pytest.raises(CheckpointError, match="no"):
        convert_checkpoint("dgsct-adapter-bank", {"swin.x": torch.zeros(1)})


def test_example_adapters_in_your_model_runs(capsys):
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "adapters_in_your_model.py"
    runpy.run_path(str(example), run_name="__main__")  # one torch thread, set in conftest.py
    out = capsys.readouterr().out
    diffs = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if "max |diff|" in line]
    assert len(diffs) == 2 and max(diffs) <= 1e-5
    losses = [float(line.split()[-1]) for line in out.splitlines() if line.startswith("step")]
    assert len(losses) == 5 and losses[-1] < losses[0]
