"""avperceive.io: load_clip on real encoded files (written with PyAV in the test), frame choice by
presentation time, seeking, resampling, segments, missing modalities."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avperceive.errors import MediaError
from avperceive.io import AVClip, load_clip, probe, write_clip, zero_modality

MEDIA = Path(__file__).parent / "data" / "media"


def _ramp_clip(duration=2.0, fps=25, sr=16000, clicks=(0.5, 1.0, 1.5), size=(32, 48), channels=1) -> AVClip:
    """Frame k has red level 5k (a readable frame id); audio has clicks at ``clicks``."""
    n = int(round(duration * fps))
    video = torch.zeros(n, *size, 3, dtype=torch.uint8)
    video[..., 0] = (torch.arange(n) * 5).clamp(max=255).to(torch.uint8)[:, None, None]
    audio = torch.zeros(channels, int(duration * sr))
    for c in clicks:
        audio[:, int(c * sr) : int(c * sr) + 40] = 0.8
    return AVClip(video=video, frame_times=torch.arange(n, dtype=torch.float64) / fps, audio=audio,
                  sample_rate=sr, fps=fps, duration=duration, has_video=True, has_audio=True)


def _first_clicks(audio: torch.Tensor, sr: int, start: float = 0.0) -> list[float]:
    idx = torch.nonzero(audio.abs().amax(0) > 0.3)[:, 0].tolist()
    return [start + i / sr for j, i in enumerate(idx) if j == 0 or i - idx[j - 1] > sr // 20]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("io")
    clip = _ramp_clip()
    out = {"mp4": write_clip(clip, d / "ramp.mp4", gop=12, preset="ultrafast"),
           "mkv": write_clip(clip, d / "ramp.mkv", gop=12, preset="ultrafast")}
    return out


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_round_trip_timing_exact(files, ext):
    clip = load_clip(files[ext])
    assert clip.video.shape == (50, 32, 48, 3) and clip.video.dtype == torch.uint8
    assert clip.audio.shape == (1, 32000) and clip.sample_rate == 16000
    assert clip.fps == 25 and abs(clip.duration - 2.0) < 0.05
    assert torch.allclose(clip.frame_times, torch.arange(50, dtype=torch.float64) / 25)
    # frame identity survives H.264: red level 5k +- 3
    assert (clip.video[:, 10, 10, 0].float() - torch.arange(50) * 5).abs().max() <= 3
    # AAC priming is accounted for: clicks decode where they were written (within 1 ms)
    assert np.allclose(_first_clicks(clip.audio, 16000), [0.5, 1.0, 1.5], atol=1e-3)


def test_num_frames_picks_frames_by_time_and_matches_full_decode(files):
    full = load_clip(files["mp4"], audio=False)
    sparse = load_clip(files["mp4"], num_frames=10, audio=False)
    # centres of 10 equal intervals of 2 s: 0.1, 0.3, ... -> frames shown then: 0.08, 0.28, ...
    assert np.allclose(sparse.frame_times.numpy(), np.arange(10) * 0.2 + 0.08)
    for i, t in enumerate(sparse.frame_times.tolist()):
        k = int(round(t * 25))
        assert torch.equal(sparse.video[i], full.video[k])  # seeking decodes the same pixels
    assert sparse.fps == pytest.approx(5.0)


def test_skipping_unreferenced_b_frames_keeps_pixels(tmp_path):
    path = write_clip(_ramp_clip(), tmp_path / "bframes.mp4", gop=12)  # x264 "medium": B-frames
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.has_b_frames
    full = load_clip(path, audio=False)
    for skip in (True, False):
        sparse = load_clip(path, num_frames=7, audio=False, skip_nonref=skip)
        for i, t in enumerate(sparse.frame_times.tolist()):
            assert torch.equal(sparse.video[i], full.video[int(round(t * 25))])
        assert np.allclose(sparse.frame_times.numpy(), np.floor(((np.arange(7) + 0.5) * 2 / 7) * 25) / 25)


def test_window_fps_size_resample(files):
    clip = load_clip(files["mkv"], start=0.45, duration=0.5, fps=10, size=16, sample_rate=8000)
    assert clip.frame_times.tolist() == pytest.approx([0.44, 0.52, 0.64, 0.72, 0.84])
    assert clip.video.shape == (5, 16, 16, 3)
    assert clip.audio.shape == (1, 4000) and clip.sample_rate == 8000
    assert _first_clicks(clip.audio, 8000, start=0.45) == pytest.approx([0.5], abs=2e-3)
    rect = load_clip(files["mp4"], num_frames=2, size=(8, 20), audio=False)
    assert rect.video.shape == (2, 8, 20, 3)


def test_variable_frame_rate_uses_presentation_times(tmp_path):
    path = tmp_path / "vfr.mkv"
    times_ms = [0, 40, 80, 500, 540, 1500]  # irregular: index / fps would be wrong
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(times_ms):
            f = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 40 * k, np.uint8), format="rgb24")
            f.pts, f.time_base = ms, Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    clip = load_clip(path, fps=4, duration=1.75, audio=False)  # targets 0, .25, .5, .75, 1.0, 1.25, 1.5
    assert clip.frame_times.tolist() == pytest.approx([0.0, 0.08, 0.5, 0.54, 0.54, 0.54, 1.5])
    ids = (clip.video[:, 8, 8].float().mean(-1) / 40).round().tolist()
    assert ids == [0, 2, 3, 4, 4, 4, 5]


def test_segments_layout_and_padding(files):
    clip = load_clip(files["mp4"], num_frames=4, size=16, sample_rate=8000)
    seg = clip.segments(T=3, seconds=1.0)
    assert seg.video.shape == (3, 1, 16, 16, 3) and seg.audio.shape == (3, 1, 8000)
    assert seg.valid.tolist() == [True, True, False]
    assert seg.video[2].abs().sum() == 0 and seg.audio[2].abs().sum() == 0  # past the end: zeros
    assert torch.equal(seg.video[1, 0], clip.video[clip.frame_at(1.5)])
    assert torch.equal(seg.audio[1], clip.audio[:, 8000:16000])
    video, audio = seg.model_inputs()
    assert video.shape == (3, 3, 16, 16) and audio.shape == (3, 8000)
    assert float(video.max()) <= 1.0
    full = load_clip(files["mp4"], size=16, audio=False)
    two = full.segments(T=2, seconds=1.0, frames_per_segment=2)  # frames on screen at 0.25, 0.75, 1.25, 1.75 s
    assert two.video.shape == (2, 2, 16, 16, 3) and two.model_inputs()[0].shape == (2, 2, 3, 16, 16)
    assert torch.equal(two.video[1, 1], full.video[round(1.75 * 25 - 0.5)])


def test_window_past_end_of_file_is_padded_and_marked(files):
    clip = load_clip(files["mkv"], num_frames=4, size=8, duration=4.0)  # the file lasts 2 s
    assert clip.audio.shape == (1, 64000) and clip.audio[:, 33000:].abs().sum() == 0
    seg = clip.segments(T=4, seconds=1.0)
    assert seg.valid.tolist() == [True, True, False, False]
    assert seg.video[2:].abs().sum() == 0 and seg.video[:2].float().mean() > 0


def test_missing_audio_stream_gives_zeros_or_error(tmp_path):
    clip = _ramp_clip()
    clip.has_audio = False
    path = write_clip(clip, tmp_path / "silent.mp4", preset="ultrafast")
    got = load_clip(path, num_frames=3, size=8, sample_rate=16000)
    assert not got.has_audio and got.has_video
    assert got.audio.shape == (1, 32000) and got.audio.abs().sum() == 0
    assert torch.equal(got.audio, zero_modality("audio", channels=1, samples=32000))
    with pytest.raises(MediaError, match="no audio stream") as err:
        load_clip(path, audio="required")
    assert "silent.mp4" in str(err.value)


def test_missing_video_stream_gives_zeros_or_error(tmp_path):
    clip = _ramp_clip()
    clip.has_video = False
    path = write_clip(clip, tmp_path / "audio_only.mp4")
    got = load_clip(path, num_frames=5, size=(8, 12))
    assert got.has_audio and not got.has_video
    assert got.video.shape == (5, 8, 12, 3) and got.video.sum() == 0
    assert _first_clicks(got.audio, 16000) == pytest.approx([0.5, 1.0, 1.5], abs=1e-3)
    with pytest.raises(MediaError, match="no video stream"):
        load_clip(path, video="required")


def test_audio_files_through_soundfile():
    snare = load_clip(MEDIA / "drum_snare_hard.flac")
    assert not snare.has_video and snare.sample_rate == 44100 and snare.audio.shape == (1, 19621)
    amen = load_clip(MEDIA / "loop_amen_full.flac", mono=False, sample_rate=16000, start=1.0, duration=2.0)
    assert amen.audio.shape == (2, 32000)


def test_soundfile_resampling_keeps_tone(tmp_path):
    import soundfile as sf

    t = np.arange(44100 * 2) / 44100
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    clip = load_clip(tmp_path / "tone.wav", sample_rate=16000, start=0.5, duration=1.0)
    assert clip.audio.shape == (1, 16000) and clip.sample_rate == 16000
    spectrum = np.abs(np.fft.rfft(clip.audio[0, 1000:15000].numpy()))
    assert abs(np.argmax(spectrum) * 16000 / 14000 - 440) < 2
    assert float(clip.audio[0, 1000:15000].abs().max()) == pytest.approx(0.5, abs=0.01)


def test_probe_smpte():
    info = probe(MEDIA / "smpte-2997.mp4")
    assert info["has_video"] and info["has_audio"]
    assert (info["width"], info["height"], info["sample_rate"]) == (1920, 1080, 48000)
    assert info["duration"] == pytest.approx(10.048, abs=0.01)


def test_bad_arguments():
    with pytest.raises(ValueError, match="not both"):
        load_clip(MEDIA / "smpte-2997.mp4", num_frames=2, fps=2)
    with pytest.raises(ValueError, match="True, False or 'required'"):
        load_clip(MEDIA / "smpte-2997.mp4", audio="yes")
    with pytest.raises(MediaError, match="no such file"):
        load_clip("/nonexistent/clip.mp4")
