"""STFT, mel filterbanks, dB scaling, front-end modules and Kaldi fbank: shapes, dtypes, librosa agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avperceive.signal import (
    HTSATFrontend,
    KaldiFbankFrontend,
    VGGishFrontend,
    YAMNetFrontend,
    hz_to_mel,
    kaldi_fbank,
    kaldi_window,
    lavish_audio_image,
    mel_filterbank,
    mel_to_hz,
    melspectrogram,
    power_to_db,
    stft_power,
)


def _wave(n: int, batch: int | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if batch is None else (batch, n)
    return 0.3 * torch.randn(shape, generator=g)


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None, 1.0, 2.0, math.inf])
def test_mel_filterbank_matches_librosa(htk, norm):
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=40, fmin=30.0, fmax=9000.0, htk=htk, norm=norm)
    ours = mel_filterbank(22050, 1024, 40, 30.0, 9000.0, htk=htk, norm=norm)
    assert ours.shape == (40, 513) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6, atol=1e-9)


def test_mel_scale_round_trip_and_known_values():
    f = torch.tensor([0.0, 200.0, 1000.0, 4000.0, 11025.0], dtype=torch.float64)
    for htk in (False, True):
        torch.testing.assert_close(mel_to_hz(hz_to_mel(f, htk), htk), f)
    torch.testing.assert_close(hz_to_mel(torch.tensor(1000.0), htk=False), torch.tensor(15.0, dtype=torch.float64))
    torch.testing.assert_close(hz_to_mel(torch.tensor(700.0), htk=True),
                               torch.tensor(2595 * math.log10(2), dtype=torch.float64))


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_stft_power_matches_librosa(pad_mode):
    librosa = pytest.importorskip("librosa")
    x = _wave(5000, seed=1).double()
    ref = np.abs(librosa.stft(x.numpy(), n_fft=512, hop_length=128, win_length=400, pad_mode=pad_mode)) ** 2
    ours = stft_power(x, 512, 128, win_length=400, pad_mode=pad_mode)
    assert ours.shape == (257, 1 + 5000 // 128) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9, atol=1e-9)
    nocenter = stft_power(x, 512, 128, center=False, power=1.0)
    assert nocenter.shape == (257, 1 + (5000 - 512) // 128)


def test_power_to_db_matches_librosa_per_item():
    librosa = pytest.importorskip("librosa")
    spec = torch.rand(3, 20, 30, dtype=torch.float64) ** 8
    for top_db in (80.0, 20.0, None):
        ours = power_to_db(spec, ref=2.0, top_db=top_db)
        for i in range(3):
            np.testing.assert_allclose(ours[i].numpy(), librosa.power_to_db(spec[i].numpy(), ref=2.0, top_db=top_db))
    with pytest.raises(ValueError):
        power_to_db(spec, amin=0.0)


def test_melspectrogram_batched_unbatched_and_librosa():
    librosa = pytest.importorskip("librosa")
    x = _wave(8000, batch=2)
    out = melspectrogram(x, 16000, n_fft=400, hop_length=160, n_mels=40)
    assert out.shape == (2, 40, 51)
    torch.testing.assert_close(melspectrogram(x[1], 16000, n_fft=400, hop_length=160, n_mels=40), out[1])
    ref = librosa.feature.melspectrogram(y=x[0].double().numpy(), sr=16000, n_fft=400, hop_length=160, n_mels=40)
    np.testing.assert_allclose(out[0].numpy(), ref, rtol=1e-4, atol=1e-6 * float(ref.max()))


def test_htsat_frontend_shapes_dtype_and_buffers():
    fe = HTSATFrontend()
    x = _wave(32000, batch=2)
    out = fe(x)
    assert out.shape == (2, 1, 101, 64) and out.dtype == torch.float32
    torch.testing.assert_close(fe(x[0]), out[0], rtol=0, atol=1e-4)
    assert fe.state_dict() == {}  # nothing to load: the filterbank is a non-persistent buffer
    out64 = fe(x.double())
    assert out64.dtype == torch.float64
    assert (out64 - out).abs().max() < 1e-3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = fe(x)
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, out)
    with pytest.raises(ValueError, match="samples"):
        fe(torch.zeros(1, 2, 3))


def test_vggish_and_yamnet_frontends():
    x = _wave(48000, batch=2)
    vg, ya = VGGishFrontend(), YAMNetFrontend()
    v_log, y_log = vg.log_mel(x), ya.log_mel(x)
    assert v_log.shape == y_log.shape == (2, 1 + (48000 - 400) // 160, 64)
    # same mel energies, different log offsets (0.01 vs 0.001)
    torch.testing.assert_close(v_log.exp() - 0.01, y_log.exp() - 0.001, rtol=1e-4, atol=1e-6)
    ex = vg(x)
    assert ex.shape == (2, 3, 96, 64)
    torch.testing.assert_close(ex[:, 1], v_log[:, 96:192])
    # YAMNet pads to 15600 + k*7680 samples and hops patches by 48 frames
    assert ya.padded_length(16000) == 15600 + 7680 and ya.padded_length(100) == 15600
    patches = ya(x)
    n_frames = 1 + (ya.padded_length(48000) - 400) // 160
    assert patches.shape == (2, 1 + (n_frames - 96) // 48, 96, 64)
    torch.testing.assert_close(patches[:, 1], y_log[:, 48:144])
    assert ya(x[0]).shape == patches.shape[1:]
    assert vg(_wave(8000)).shape == (0, 96, 64)  # shorter than one example


def _kaldi_reference_frame(frame: torch.Tensor, window: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """One Kaldi fbank frame written out plainly (float64)."""
    x = frame - frame.mean()
    x = torch.cat([x[:1] - 0.97 * x[:1], x[1:] - 0.97 * x[:-1]])
    x = x * window
    spec = torch.fft.rfft(torch.cat([x, x.new_zeros(512 - len(x))])).abs() ** 2
    return torch.clamp(bank.double() @ spec, min=torch.finfo(torch.float32).eps).log()


def test_kaldi_fbank_matches_plain_formula_and_frontend():
    from avperceive.signal import kaldi_mel_banks

    x = _wave(16000, batch=2).double()
    fb = kaldi_fbank(x, 16000, num_mel_bins=64, frame_shift_ms=5.2, window_type="povey")
    assert fb.shape == (2, 1 + (16000 - 400) // 83, 64) and fb.dtype == torch.float64
    window = torch.hann_window(400, periodic=False, dtype=torch.float64) ** 0.85
    bank = kaldi_mel_banks(64, 512, 16000)
    for t in (0, 7, fb.shape[1] - 1):
        ref = _kaldi_reference_frame(x[1, 83 * t : 83 * t + 400], window, bank)
        torch.testing.assert_close(fb[1, t], ref, rtol=1e-9, atol=1e-9)
    fe = KaldiFbankFrontend()
    out = fe(x.float())
    assert out.shape == (2, 188, 192)
    torch.testing.assert_close(out, kaldi_fbank(x, 16000, num_mel_bins=192, frame_shift_ms=5.2,
                                                window_type="hanning").float(), rtol=0, atol=2e-3)
    assert kaldi_fbank(torch.zeros(100), 16000).shape == (0, 23)
    # dither is seeded and changes the result; 0 is deterministic
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    d1 = kaldi_fbank(x[0], 16000, dither=1e-3, generator=g1)
    torch.testing.assert_close(d1, kaldi_fbank(x[0], 16000, dither=1e-3, generator=g2))
    assert not torch.allclose(d1, kaldi_fbank(x[0], 16000))


@pytest.mark.parametrize("kind", ["hanning", "povey", "hamming", "rectangular", "blackman"])
def test_kaldi_windows(kind):
    n = 400
    i = torch.arange(n, dtype=torch.float64)
    a = 2 * math.pi / (n - 1)
    expected = {
        "hanning": 0.5 - 0.5 * torch.cos(a * i),
        "povey": (0.5 - 0.5 * torch.cos(a * i)) ** 0.85,
        "hamming": 0.54 - 0.46 * torch.cos(a * i),
        "rectangular": torch.ones(n, dtype=torch.float64),
        "blackman": 0.42 - 0.5 * torch.cos(a * i) + 0.08 * torch.cos(2 * a * i),
    }[kind]
    torch.testing.assert_close(kaldi_window(kind, n, dtype=torch.float64, device=torch.device("cpu")), expected)


def test_lavish_audio_image():
    x = _wave(10 * 16000, batch=2)
    img = lavish_audio_image(x)
    assert img.shape == (2, 10, 192, 192)
    seg3 = kaldi_fbank(x[1, 3 * 16000 : 4 * 16000], 16000, num_mel_bins=192, frame_shift_ms=5.2,
                       window_type="hanning")
    assert seg3.shape == (188, 192)
    torch.testing.assert_close(img[1, 3, :188], (seg3 + 4.9848) / (2 * 3.7080))
    assert torch.all(img[:, :, 188:] == 0)
    short = lavish_audio_image(x[0, : 16000 * 3])  # zero-padded to 10 s: silent segments sit at the log floor
    assert short.shape == (10, 192, 192)
    floor = (math.log(torch.finfo(torch.float32).eps) + 4.9848) / (2 * 3.7080)
    torch.testing.assert_close(short[5, :188], torch.full((188, 192), floor))


def test_frontends_follow_device_of_module_and_input():
    fe = HTSATFrontend(n_fft=256, hop_length=64, n_mels=16, fmax=8000.0)
    meta = fe.to("meta")
    out = meta(torch.zeros(2, 1000, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 1, 1 + 1000 // 64, 16)


@pytest.mark.parametrize("n_mels,htk", [(128, False), (40, True), (20, False)])
def test_mel_frames_blocked_banded_equals_dense_product(n_mels, htk):
    from avperceive.signal import mel_frames, spectrogram_frames

    x = _wave(3 * 22050, batch=2, seed=4)  # > one cache block of frames per item
    fb = mel_filterbank(22050, 1024, n_mels, htk=htk)
    dense = spectrogram_frames(x, 1024, 128) @ fb.T
    ours = mel_frames(x, 1024, 128, fb)
    assert ours.shape == dense.shape == (2, 1 + 3 * 22050 // 128, n_mels)
    torch.testing.assert_close(ours, dense, rtol=1e-4, atol=1e-6 * float(dense.max()))
    magnitude = mel_frames(x, 1024, 128, fb, power=1.0)
    torch.testing.assert_close(magnitude, spectrogram_frames(x, 1024, 128, power=1.0) @ fb.T, rtol=1e-4, atol=1e-5)
