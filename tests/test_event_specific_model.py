"""Event-specific model: MC3 backbone (torchvision mc3_18 layout), audio CNN, registry, converter, save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import avperceive as avp
from avperceive.backbones.audio_cnn import AudioCNN
from avperceive.backbones.mc3 import MC3
from avperceive.errors import CheckpointError, ConfigError
from avperceive.hub import convert_checkpoint
from avperceive.models.event_specific import EventSpecificModel

# torchvision.models.video.mc3_18: every state-dict key and shape, written out from torchvision's resnet.py
# (tests/data/SOURCES.md). Truth the model code did not produce.
MC3_18 = json.loads((Path(__file__).parent / "data" / "mc3" / "mc3_18_state_dict_keys.json").read_text())
MC3_18_SHAPES = {k: tuple(v) for k, v in MC3_18["state_dict"].items()}


def _manifest_params(shapes: dict[str, tuple[int, ...]]) -> int:
    """Trainable parameters: conv/linear weights and biases, BatchNorm affine weight/bias (no running stats)."""
    return sum(math.prod(s) for k, s in shapes.items() if k.endswith((".weight", ".bias")))


@pytest.fixture(scope="module")
def mc3_full():
    return MC3()


def test_mc3_has_torchvision_mc3_18_layout(mc3_full):
    ours = {k: tuple(v.shape) for k, v in mc3_full.state_dict().items()}
    backbone = {k: s for k, s in MC3_18_SHAPES.items() if not k.startswith("fc.")}
    assert sorted(ours) == sorted(backbone)  # every key, none extra
    assert ours == backbone  # every shape
    params = sum(p.numel() for p in mc3_full.parameters())
    assert params == _manifest_params(backbone)
    # torchvision documents 11,695,440 parameters for mc3_18 with its 400-way classifier
    assert _manifest_params(MC3_18_SHAPES) == 11_695_440 == params + 512 * 400 + 400


def test_mc3_has_no_temporal_stride(mc3_full):
    mc3_full.eval()
    with torch.no_grad():
        fmap = mc3_full.forward_features(torch.randn(1, 3, 5, 32, 32))
    assert fmap.shape == (1, 512, 5, 2, 2)
    tiny = MC3(widths=(4, 4, 4, 8), blocks=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        assert tiny.forward_features(torch.randn(1, 3, 100, 112, 112)).shape == (1, 8, 100, 7, 7)
        z = tiny(torch.randn(2, 3, 7, 48, 48))
    assert z.shape == (2, 7, 8)


def test_audio_cnn_gives_100_steps_for_1000_frames():
    net = AudioCNN(channels=(4, 8, 8, 16)).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1000, 80)).shape == (2, 100, 16)
        assert net(torch.randn(2, 1, 995, 80)).shape == (2, 100, 16)  # ceil_mode: 995 frames -> 100 steps
    assert net.frames_per_step == 10
    with pytest.raises(ValueError, match="log-mel"):
        net(torch.randn(1000, 80))


def _torchvision_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """A DataParallel-saved mc3_18 checkpoint: every manifest key, random values of the manifest's shapes."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in MC3_18_SHAPES.items():
        if key.endswith("num_batches_tracked"):
            sd[f"module.{key}"] = torch.tensor(7, dtype=torch.int64)
        elif key.endswith("running_var"):
            sd[f"module.{key}"] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[f"module.{key}"] = torch.randn(shape, generator=g) * 0.1
    return sd


def _torchvision_features(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """VideoResNet.forward up to layer4 (before avgpool/fc), written from resnet.py with torch.nn.functional.

    BasicStem: conv (3,7,7) stride (1,2,2) pad (1,3,3) -> BN -> ReLU. BasicBlock: conv1 -> BN -> ReLU -> conv2
    -> BN, plus the (downsampled) input, ReLU. Conv3DSimple: (3,3,3) kernel, stride s, pad 1 (layer1);
    Conv3DNoTemporal: (1,3,3) kernel, stride (1,s,s), pad (0,1,1); downsample: 1x1x1 conv, same stride, BN.
    """
    import torch.nn.functional as F

    def bn(t, p):
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            training=False, eps=1e-5)

    x = F.relu(bn(F.conv3d(x, sd["stem.0.weight"], stride=(1, 2, 2), padding=(1, 3, 3)), "stem.1"))
    for layer in range(1, 5):
        temporal = layer == 1  # conv_makers = [Conv3DSimple] + [Conv3DNoTemporal] * 3
        for block in range(2):
            p = f"layer{layer}.{block}"
            s = 2 if layer > 1 and block == 0 else 1
            stride, pad = ((s, s, s), (1, 1, 1)) if temporal else ((1, s, s), (0, 1, 1))
            out = F.relu(bn(F.conv3d(x, sd[f"{p}.conv1.0.weight"], stride=stride, padding=pad), f"{p}.conv1.1"))
            out = bn(F.conv3d(out, sd[f"{p}.conv2.0.weight"], padding=pad), f"{p}.conv2.1")
            if f"{p}.downsample.0.weight" in sd:
                x = bn(F.conv3d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + x)
    return x


def test_mc3_torchvision_converter_on_the_torchvision_layout():
    ckpt = _torchvision_checkpoint()
    report = convert_checkpoint("mc3-torchvision", ckpt, return_report=True)
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"]
    assert {k: tuple(v.shape) for k, v in report.state_dict.items()} == {
        k: s for k, s in MC3_18_SHAPES.items() if not k.startswith("fc.")
    }
    widths = [MC3_18_SHAPES[f"layer{i}.0.conv1.0.weight"][0] for i in range(1, 5)]
    blocks = [len({k.split(".")[1] for k in MC3_18_SHAPES if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
    assert report.config == {"widths": widths, "blocks": blocks}
    target = MC3(**report.config).eval()
    avp.hub.load_state_dict_strict(target, report.state_dict)
    for key, value in target.state_dict().items():
        assert torch.equal(value, ckpt[f"module.{key}"]), key  # loaded as a pure copy
    # forward: ours vs resnet.py's equations on the same weights (float64: only summation order differs)
    x = torch.randn(1, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sd64 = {k.removeprefix("module."): v.double() if v.is_floating_point() else v for k, v in ckpt.items()}
    with torch.no_grad():
        ours = target.double().forward_features(x)
        want = _torchvision_features(sd64, x)
    assert ours.shape == want.shape == (1, 512, 3, 2, 2)
    torch.testing.assert_close(ours, want, rtol=1e-10, atol=1e-10)  # float64 rounding differences only


def test_mc3_converter_refuses_r2plus1d_and_r3d():
    sd = {k: v for k, v in MC3(widths=(4, 8, 8, 16), blocks=(1, 1, 1, 1)).state_dict().items()}
    with pytest.raises(CheckpointError, match="R\\(2\\+1\\)D"):
        convert_checkpoint("mc3-torchvision", {**sd, "stem.3.weight": torch.zeros(4, 4, 3, 1, 1)})
    r3d = dict(sd)
    r3d["layer3.0.conv1.0.weight"] = torch.zeros(8, 8, 3, 3, 3)
    with pytest.raises(CheckpointError, match="R3D"):
        convert_checkpoint("mc3-torchvision", r3d)


def test_registry_input_settings():
    cfg = avp.models.get_pretrained_cfg("event-specific-mc3")
    assert cfg.input["task"] == "clip-classification"
    assert (cfg.input["sample_rate"], cfg.input["segment_seconds"]) == (16000, 10.0)
    onsets = cfg.input["extra_inputs"]["onset_mask"]
    assert (cfg.input["frames_per_segment"], cfg.input["size"], onsets["steps"]) == (100, 112, 100)
    assert (cfg.input["logmel"]["frames"], cfg.input["logmel"]["n_mels"]) == (1000, 80)
    assert cfg.hub_id is None
    assert {"event-specific-mc3.untrained", "event-specific-tiny.untrained"} <= set(avp.list_models(pretrained=True))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return avp.create_model("event-specific-tiny").eval()


def test_tiny_forward_layouts_wave_and_logmel(tiny):
    torch.manual_seed(1)
    video = torch.randn(2, 12, 3, 32, 32)
    wave = torch.randn(2, 120 * 160)
    onsets = torch.zeros(2, 12, dtype=torch.bool)
    onsets[:, ::4] = True
    with torch.no_grad():
        out = tiny.forward_layers(video, wave, onsets)
        first = tiny.forward_layers(video.permute(0, 2, 1, 3, 4), wave, onsets, channels_first=True)
        from_mel = tiny.forward_layers(video, tiny.logmel(wave), onsets)
    assert list(out) == ["continuous", "instant", "onset", "visual", "audio"]
    assert out["onset"].shape == (2, 10)
    for name in out:
        torch.testing.assert_close(first[name], out[name])
        torch.testing.assert_close(from_mel[name], out[name])
    assert not torch.allclose(out["onset"], out["continuous"])


def test_tiny_padding_localize_and_errors(tiny):
    torch.manual_seed(2)
    video, mel = torch.randn(2, 10, 3, 32, 32), torch.randn(2, 100, 80)
    padding = torch.zeros(2, 10, dtype=torch.bool)
    padding[1, 6:] = True
    with torch.no_grad():
        out = tiny.forward_layers(video, mel, padding_mask=padding)
        z_v, z_a, v_map = tiny.encode(video, mel)
        expected = tiny.fusion(z_v[1:, :6], z_a[1:, :6])
    torch.testing.assert_close(out["continuous"][1:], expected["continuous"])
    assert v_map.shape == (2, 10, 32, 2, 2)
    maps = tiny.localize(video, mel)
    assert maps.shape == (2, 10, 32, 32)
    torch.testing.assert_close(tiny.localize(video, mel, upsample=False), torch.einsum("btdhw,btd->bthw", v_map, z_a))
    with pytest.raises(ValueError, match="steps"):
        tiny.forward_layers(video, torch.randn(2, 90, 80))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        tiny.forward_layers(video.permute(0, 2, 1, 3, 4), mel)
    with pytest.raises(ConfigError, match="dot product"):
        EventSpecificModel(video_widths=(8, 8, 8, 16), audio_channels=(8, 8, 8, 8))


def test_tiny_save_load_and_bf16(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "m")
    loaded = EventSpecificModel.from_pretrained(tmp_path / "m").eval()
    video, mel = torch.randn(1, 10, 3, 32, 32), torch.randn(1, 100, 80)
    with torch.no_grad():
        a, b = tiny.forward_layers(video, mel), loaded.forward_layers(video, mel)
        torch.testing.assert_close(a["instant"], b["instant"], rtol=0, atol=0)  # bit-exact weights, same kernels
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny.forward_layers(video, mel)
    assert low["audio"].dtype == torch.bfloat16
    assert torch.isfinite(low["audio"].float()).all()
