"""Onset strength / detection, RMS and motion energy against librosa on real media (librosa: test extra)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from avperceive.signal import (
    motion_energy,
    onset_backtrack,
    onset_detect,
    onset_mask,
    onset_strength,
    peak_pick,
    peak_pick_defaults,
    rms,
)

librosa = pytest.importorskip("librosa")

FLAC = ["loop_amen_full.flac", "drum_snare_hard.flac", "ambi_drone.flac"]


def _mono(media_dir, name: str) -> tuple[np.ndarray, int]:
    y, sr = sf.read(media_dir / name, dtype="float32", always_2d=True)
    return y.mean(axis=1).astype(np.float32), sr


def _mp4_audio(path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray() for frame in container.decode(stream)]
        sr = stream.rate
    pcm = np.concatenate(chunks, axis=-1)  # aac decodes to planar float (channels, samples)
    return pcm.mean(axis=0).astype(np.float32), sr


@pytest.mark.parametrize("name", FLAC)
def test_onset_strength_and_detect_match_librosa(media_dir, name):
    y, sr = _mono(media_dir, name)
    y = y[: sr * 4]
    ref_env = librosa.onset.onset_strength(y=y, sr=sr)
    env = onset_strength(torch.from_numpy(y), sr)
    print(name, "max abs diff", np.abs(env.numpy() - ref_env).max())
    np.testing.assert_allclose(env.numpy(), ref_env, rtol=1e-4, atol=2e-5 * max(1.0, float(ref_env.max())))
    ref_frames = librosa.onset.onset_detect(y=y, sr=sr)
    frames = onset_detect(torch.from_numpy(y), sr)
    assert frames.dtype == torch.int64
    assert frames.tolist() == ref_frames.tolist()


def test_onsets_on_mp4_audio_match_librosa(media_dir):
    y, sr = _mp4_audio(media_dir / "smpte-2997.mp4")
    assert sr == 48000 and len(y) > 9 * sr
    ref_env = librosa.onset.onset_strength(y=y, sr=sr)
    env = onset_strength(torch.from_numpy(y), sr)
    np.testing.assert_allclose(env.numpy(), ref_env, rtol=1e-4, atol=2e-5 * float(ref_env.max()))
    ref = librosa.onset.onset_detect(onset_envelope=ref_env, sr=sr, units="time")
    ours = onset_detect(onset_envelope=env, sample_rate=sr, units="time")
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9)
    assert len(ref) >= 15  # beeps every 0.5 s


@pytest.mark.parametrize(
    "kwargs", [{"lag": 2}, {"max_size": 3}, {"max_size": 4}, {"detrend": True}, {"center": False}, {"aggregate": "max"}]
)
def test_onset_strength_options_match_librosa(media_dir, kwargs):
    y, sr = _mono(media_dir, "loop_amen_full.flac")
    y = y[: sr * 2]
    ref_kwargs = dict(kwargs)
    if ref_kwargs.get("aggregate") == "max":
        ref_kwargs["aggregate"] = np.max
    ref = librosa.onset.onset_strength(y=y, sr=sr, **ref_kwargs)
    ours = onset_strength(torch.from_numpy(y), sr, **kwargs).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-5 * float(ref.max()))


@pytest.mark.parametrize(
    "kwargs", [{}, {"backtrack": True}, {"units": "samples"}, {"wait": 0}, {"delta": 0.0, "wait": 5}, {"pre_max": 4}]
)
def test_onset_detect_options_match_librosa(media_dir, kwargs):
    y, sr = _mono(media_dir, "loop_amen_full.flac")
    env = librosa.onset.onset_strength(y=y, sr=sr)
    ref = librosa.onset.onset_detect(onset_envelope=env, sr=sr, **kwargs)
    ours = onset_detect(onset_envelope=torch.from_numpy(env), sample_rate=sr, **kwargs)
    assert ours.tolist() == ref.tolist()


def test_peak_pick_matches_librosa_on_random_signals():
    rng = np.random.default_rng(0)
    for i in range(60):
        x = rng.random(int(rng.integers(1, 200)))
        if i % 2:
            x = np.round(x * 4) / 4  # ties and plateaus
        p = dict(pre_max=int(rng.integers(0, 5)), post_max=int(rng.integers(1, 5)), pre_avg=int(rng.integers(0, 12)),
                 post_avg=int(rng.integers(1, 12)), delta=float(rng.random() * 0.2), wait=int(rng.integers(0, 12)))
        ref = librosa.util.peak_pick(x, **p)
        ours = torch.nonzero(peak_pick(torch.from_numpy(x), **p))[:, 0]
        assert ours.tolist() == ref.tolist(), p


def test_peak_pick_defaults_follow_librosa_formula():
    assert peak_pick_defaults(22050, 512) == {"pre_max": 1.0, "post_max": 1.0, "pre_avg": 4.0, "post_avg": 5.0,
                                              "wait": 1.0, "delta": 0.07}
    assert peak_pick_defaults(44100, 512)["post_avg"] == 9.0


def test_onsets_batched_equal_unbatched(media_dir):
    y, sr = _mono(media_dir, "loop_amen_full.flac")
    batch = torch.from_numpy(np.stack([y[: 2 * sr], y[2 * sr : 4 * sr], np.zeros(2 * sr, np.float32)]))
    env = onset_strength(batch, sr)
    per_item = [onset_detect(batch[i], sr) for i in range(3)]
    batched = onset_detect(batch, sr)
    for i in range(3):
        torch.testing.assert_close(env[i], onset_strength(batch[i], sr), rtol=0, atol=1e-6)
        assert batched[i].tolist() == per_item[i].tolist()
    assert len(batched[0]) > 3 and batched[2].numel() == 0  # silence: no onsets, as librosa
    dense = onset_detect(batch, sr, sparse=False)
    assert dense.shape == env.shape and dense.dtype == torch.bool
    assert torch.nonzero(dense[1])[:, 0].tolist() == per_item[1].tolist()


def test_onset_backtrack_matches_librosa():
    rng = np.random.default_rng(1)
    energy = rng.random(300)
    events = np.sort(rng.choice(300, size=20, replace=False))
    ref = librosa.onset.onset_backtrack(events, energy)
    mask = torch.zeros(300, dtype=torch.bool)
    mask[torch.from_numpy(events)] = True
    ours = torch.nonzero(onset_backtrack(mask, torch.from_numpy(energy)))[:, 0]
    assert ours.tolist() == sorted(set(ref.tolist()))


def test_onset_mask_maps_onsets_to_steps():
    sr, steps = 16000, 8
    wave = torch.zeros(2, 4 * sr)
    clicks = [int(0.3 * sr), int(1.8 * sr), int(3.1 * sr)]  # steps of 0.5 s: 0, 3, 6
    for c in clicks:
        wave[0, c : c + 64] = 0.9
    mask = onset_mask(wave, sr, steps)
    assert mask.shape == (2, steps) and mask.dtype == torch.bool
    assert torch.nonzero(mask[0])[:, 0].tolist() == [0, 3, 6]
    assert not mask[1].any()
    frames = onset_detect(wave[0], sr)
    times = frames.double() * 512 / sr
    assert torch.equal(torch.nonzero(mask[0])[:, 0], torch.unique((times * steps / 4).floor().long()))
    assert onset_mask(wave[0], sr, steps).shape == (steps,)


@pytest.mark.parametrize("name", FLAC[:2])
def test_rms_matches_librosa(media_dir, name):
    y, sr = _mono(media_dir, name)
    ref = librosa.feature.rms(y=y[:sr])[0]
    ours = rms(torch.from_numpy(y[:sr]))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-7)
    ref_nc = librosa.feature.rms(y=y[:sr], frame_length=1024, hop_length=256, center=False)[0]
    np.testing.assert_allclose(rms(torch.from_numpy(y[:sr]), 1024, 256, center=False).numpy(), ref_nc, rtol=1e-5,
                               atol=1e-7)


def test_motion_energy_values_and_layouts():
    g = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (5, 6, 7, 3), generator=g, dtype=torch.uint8)
    ours = motion_energy(clip)
    gray = (clip.double() / 255) @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    expected = torch.cat([torch.zeros(1, dtype=torch.float64), (gray[1:] - gray[:-1]).abs().mean(dim=(1, 2))])
    assert ours.shape == (5,)
    torch.testing.assert_close(ours.double(), expected, rtol=1e-5, atol=1e-6)
    model_layout = (clip.float() / 255).permute(0, 3, 1, 2)[None].repeat(2, 1, 1, 1, 1)  # (B, T, 3, H, W)
    batched = motion_energy(model_layout)
    assert batched.shape == (2, 5)
    torch.testing.assert_close(batched[1], ours, rtol=1e-5, atol=1e-6)
    assert motion_energy(torch.zeros(4, 8, 8, 3, dtype=torch.uint8)).abs().sum() == 0
    with pytest.raises(ValueError, match="T, H, W, 3"):
        motion_energy(torch.zeros(4, 3, 8, 8, dtype=torch.uint8))
