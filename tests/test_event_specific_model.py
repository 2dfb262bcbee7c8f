"""Event-specific model: MC3 backbone (torchvision mc3_18 layout), audio CNN, registry, converter, save/load."""

from __future__ import annotations

import pytest
import torch

import avperceive as avp
from avperceive.backbones.audio_cnn import AudioCNN
from avperceive.backbones.mc3 import MC3
from avperceive.errors import CheckpointError, ConfigError
from avperceive.hub import convert_checkpoint
from avperceive.models.event_specific import EventSpecificModel

# torchvision.models.video.mc3_18: (key, shape) of a few entries of each kind, and the documented
# parameter count of the Kinetics-400 model (11,695,440 with its 400-way fc).
MC3_18_KEYS = {
    "stem.0.weight": (64, 3, 3, 7, 7),
    "stem.1.running_var": (64,),
    "layer1.0.conv1.0.weight": (64, 64, 3, 3, 3),
    "layer1.1.conv2.1.weight": (64,),
    "layer2.0.conv1.0.weight": (128, 64, 1, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1),
    "layer2.0.downsample.1.bias": (128,),
    "layer3.1.conv2.0.weight": (256, 256, 1, 3, 3),
    "layer4.0.conv1.0.weight": (512, 256, 1, 3, 3),
    "layer4.1.conv2.1.num_batches_tracked": (),
}


@pytest.fixture(scope="module")
def mc3_full():
    return MC3()


def test_mc3_has_torchvision_mc3_18_layout(mc3_full):
    sd = mc3_full.state_dict()
    assert len(sd) == 120  # stem 6 + 8 blocks x 12 + 3 downsamples x 6
    for key, shape in MC3_18_KEYS.items():
        assert tuple(sd[key].shape) == shape, key
    params = sum(p.numel() for p in mc3_full.parameters())
    assert params + 512 * 400 + 400 == 11_695_440


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


def _torchvision_style(model: MC3) -> dict:
    sd = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    sd["module.fc.weight"] = torch.randn(400, model.out_dim)
    sd["module.fc.bias"] = torch.randn(400)
    return sd


def test_mc3_torchvision_converter_roundtrip():
    torch.manual_seed(0)
    source = MC3(widths=(4, 8, 8, 16), blocks=(2, 1, 2, 1))
    report = convert_checkpoint("mc3-torchvision", _torchvision_style(source), return_report=True)
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"]
    assert report.config == {"widths": [4, 8, 8, 16], "blocks": [2, 1, 2, 1]}
    target = MC3(**report.config)
    avp.hub.load_state_dict_strict(target, report.state_dict)
    x = torch.randn(1, 3, 4, 32, 32)
    source.eval(), target.eval()
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


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
        torch.testing.assert_close(a["instant"], b["instant"], rtol=0, atol=0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny.forward_layers(video, mel)
    assert low["audio"].dtype == torch.bfloat16
    assert torch.isfinite(low["audio"].float()).all()
