"""describe: Schaeffer type, onsets and audio-video sync on real media and seeded synthetic clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avperceive.analysis.describe import Description, describe
from avperceive.data.synthetic import make_clip
from avperceive.io import load_clip, write_clip

MEDIA = Path(__file__).parent / "data" / "media"


@pytest.mark.parametrize(
    "name, kind",
    [("drum_snare_hard.flac", "impulsive"), ("ambi_drone.flac", "sustained"), ("loop_amen_full.flac", "iterative")],
)
def test_real_audio_files(name, kind):
    d = describe(MEDIA / name)
    assert d.perception_type == kind
    assert d.scores[kind] > 0.8 and sum(d.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert d.has_audio and not d.has_video and d.cues == ["audio"] and d.av_sync is None
    expected_onsets = {"impulsive": (1, 1), "sustained": (0, 1), "iterative": (20, 60)}[kind]
    assert expected_onsets[0] <= len(d.audio_onsets) <= expected_onsets[1]


def _check_half_second_beeps(onsets: list[float], count: int) -> None:
    onsets = np.array(onsets)
    assert len(onsets) == count
    k = np.round((onsets - 0.044) / 0.5)
    assert np.abs(onsets - (0.044 + 0.5 * k)).max() <= 0.020
    assert k.astype(int).tolist() == list(range(count))


def test_smpte_beeps_every_half_second():
    # the whole 10-s file, audio cues (decoding 1080p video is the slow part, tested on 4 s below)
    full = describe(load_clip(MEDIA / "smpte-2997.mp4", video=False, sample_rate=16000))
    assert full.perception_type == "iterative"
    _check_half_second_beeps(full.audio_onsets, 20)
    # straight from the file, audio + video
    d = describe(MEDIA / "smpte-2997.mp4", duration=4.0)
    assert d.perception_type == "iterative"
    assert d.has_audio and d.has_video and d.cues[:2] == ["audio", "motion"]
    _check_half_second_beeps(d.audio_onsets, 8)


def test_sixty_synthetic_clips_type_and_av_offset():
    rng = np.random.default_rng(2024)
    kinds = ["impulsive", "sustained", "iterative"]
    right, sync_ok, errors = 0, 0, []
    for i in range(60):
        kind, offset = kinds[i % 3], float(rng.uniform(-0.2, 0.2))
        clip, truth = make_clip(kind, duration=2.0, fps=25, av_offset=offset, seed=100 + i, size=(32, 32))
        d = describe(clip)
        right += d.perception_type == kind
        err = abs(d.av_sync.lag_s - offset) if d.av_sync is not None else float("inf")
        errors.append(err)
        sync_ok += err <= 1 / 25
    print(f"type accuracy {right / 60:.3f}, AV offset within one frame {sync_ok}/60, "
          f"median |error| {1000 * np.median(errors):.1f} ms, max {1000 * max(errors):.1f} ms")
    assert right / 60 >= 0.95
    assert sync_ok / 60 >= 0.95


@pytest.mark.parametrize("kind", ["impulsive", "sustained", "iterative"])
def test_encoded_synthetic_files(tmp_path, kind):
    clip, truth = make_clip(kind, duration=2.0, av_offset=-0.12, seed=5)
    d = describe(write_clip(clip, tmp_path / f"{kind}.mp4"))
    assert d.perception_type == kind
    assert d.av_sync.lag_s == pytest.approx(-0.12, abs=1 / 25)
    if kind != "sustained":
        assert len(d.audio_onsets) == len(truth.onsets)
        assert np.abs(np.array(d.audio_onsets) - np.array(truth.onsets)).max() < 0.02
        # a visual event is timed at the first frame that shows it (25 fps frames at k / 25 s)
        shown = np.ceil(np.array(truth.visual_events) * 25 - 1e-9) / 25
        assert np.abs(np.array(d.motion_peaks) - shown).max() < 1e-3


def test_audio_only_and_video_only_inputs():
    clip, truth = make_clip("iterative", duration=2.0, seed=4)
    audio_only = describe(load_clip_like(clip, video=False))
    assert audio_only.cues == ["audio"] and audio_only.perception_type == "iterative"
    assert audio_only.motion_peaks == [] and audio_only.av_sync is None
    video_only = describe(load_clip_like(clip, audio=False))
    assert video_only.cues == ["motion"] and video_only.perception_type == "iterative"
    assert video_only.audio_onsets == [] and video_only.event_moments.onsets == video_only.motion_peaks
    assert len(video_only.motion_peaks) == len(truth.onsets)


def load_clip_like(clip, video=True, audio=True):
    from dataclasses import replace

    from avperceive.io import zero_modality

    if not video:
        clip = replace(clip, video=zero_modality("video", num_frames=clip.num_frames, size=clip.size), has_video=False)
    if not audio:
        clip = replace(clip, audio=zero_modality("audio", samples=clip.audio.shape[1]), has_audio=False)
    return clip


def test_event_moments_and_json():
    clip, truth = make_clip("impulsive", duration=2.0, av_offset=0.0, seed=9)
    d = describe(clip)
    assert isinstance(d, Description)
    assert len(d.event_moments.instant) >= 1
    assert abs(d.event_moments.instant[0] - truth.onsets[0]) < 0.05
    assert d.event_moments.onsets == d.audio_onsets and not d.event_moments.continuous
    sustained = describe(make_clip("sustained", duration=2.0, seed=9)[0])
    assert sustained.event_moments.continuous
    data = json.loads(json.dumps(d.to_dict()))
    assert data["perception_type"] == "impulsive" and "timeline" not in data
    assert set(data["av_sync"]) == {"lag_s", "strength"}
    text = str(d)
    assert "perception type: impulsive" in text and "sound lags picture" in text


def test_silent_clip_is_described_without_crashing():
    clip, _ = make_clip("sustained", duration=1.0, seed=0)
    clip.audio = torch.zeros_like(clip.audio)
    d = describe(clip)
    assert d.audio_onsets == [] and d.av_sync is None
    assert d.perception_type in ("impulsive", "sustained", "iterative")
