"""Bad or unusual media: each gives a correct result or a MediaError naming the file; never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avperceive.errors import MediaError
from avperceive.io import AVClip, load_clip, write_clip


def _clip(n_frames=10, size=(16, 16), fps=10, sr=16000, channels=1, duration=None, flat=False) -> AVClip:
    duration = duration or n_frames / fps
    rng = np.random.default_rng(0)
    if flat:  # cheap to encode at 4K: a horizontal grey ramp 0..255
        ramp = np.linspace(0, 255, size[1]).astype(np.uint8)
        video = torch.from_numpy(np.broadcast_to(ramp[None, None, :, None], (n_frames, *size, 3)).copy())
    else:
        video = torch.from_numpy(rng.integers(0, 255, (n_frames, *size, 3), dtype=np.uint8))
    audio = torch.from_numpy(0.3 * rng.standard_normal((channels, int(duration * sr))).astype(np.float32))
    return AVClip(video=video, frame_times=torch.arange(n_frames, dtype=torch.float64) / fps, audio=audio,
                  sample_rate=sr, fps=fps, duration=duration, has_video=True, has_audio=True)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file") as err:
        load_clip(path)
    assert str(path) in str(err.value)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="not a readable media file") as err:
        load_clip(path)
    assert "notes.mp4" in str(err.value)


def test_truncated_mp4(tmp_path):
    good = write_clip(_clip(), tmp_path / "good.mp4", preset="ultrafast")
    data = open(good, "rb").read()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])  # moov atom (at the end) is lost
    with pytest.raises(MediaError, match="truncated.mp4"):
        load_clip(path)


def test_truncated_mkv_keeps_what_decodes(tmp_path):
    good = write_clip(_clip(n_frames=20), tmp_path / "good.mkv", preset="ultrafast")
    data = open(good, "rb").read()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: int(len(data) * 0.6)])
    try:
        clip = load_clip(path, audio=False)
    except MediaError as err:
        assert "cut.mkv" in str(err)
    else:  # the frames that survived, at their true times
        assert 1 <= clip.num_frames < 20
        assert torch.allclose(clip.frame_times, torch.arange(clip.num_frames, dtype=torch.float64) / 10)


def test_one_frame_video(tmp_path):
    path = write_clip(_clip(n_frames=1, duration=0.1), tmp_path / "one.mp4", preset="ultrafast")
    clip = load_clip(path, num_frames=4, size=8)
    assert clip.video.shape == (4, 8, 8, 3)
    assert all(torch.equal(clip.video[0], f) for f in clip.video)  # the one frame, held
    assert clip.frame_times.tolist() == [0.0] * 4


def test_8khz_mono(tmp_path):
    path = write_clip(_clip(sr=8000), tmp_path / "low.mkv", preset="ultrafast")
    native = load_clip(path, audio="required")
    assert native.sample_rate == 8000 and native.audio.shape == (1, 8000)
    up = load_clip(path, sample_rate=16000)
    assert up.sample_rate == 16000 and up.audio.shape == (1, 16000)


def test_5_1_audio(tmp_path):
    path = write_clip(_clip(channels=6), tmp_path / "surround.mp4", preset="ultrafast")
    assert load_clip(path, mono=False).audio.shape == (6, 16000)
    mono = load_clip(path, sample_rate=16000)
    assert mono.audio.shape == (1, 16000)
    assert 0.01 < float(mono.audio.std()) < 1.0


def test_4k_frames(tmp_path):
    path = write_clip(_clip(n_frames=2, size=(2160, 3840), flat=True), tmp_path / "uhd.mp4", preset="ultrafast")
    clip = load_clip(path, num_frames=2, size=(36, 64))
    assert clip.video.shape == (2, 36, 64, 3)
    assert clip.info["width"] == 3840 and clip.info["height"] == 2160
    # the grey ramp survives area resizing: left edge dark, right edge bright, mean mid-grey
    assert float(clip.video[:, :, :2].float().mean()) < 20 and float(clip.video[:, :, -2:].float().mean()) > 235
    assert float(clip.video.float().mean()) == pytest.approx(127.5, abs=6)


def test_start_past_end(tmp_path):
    path = write_clip(_clip(), tmp_path / "short.mkv", preset="ultrafast")
    with pytest.raises(MediaError, match="past the end"):
        load_clip(path, start=5.0)


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    from avperceive.cli import main

    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert main(["describe", str(path)]) == 2  # the one file given failed: an input error (docs/cli.md)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty.mp4" in err[0] and "Traceback" not in err[0]
