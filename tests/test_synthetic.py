"""Synthetic clips: shapes, ground truth, visual events shifted by av_offset, and encoding round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avperceive.data.synthetic import SOUND_TYPES, make_clip
from avperceive.io import load_clip, write_clip
from avperceive.signal.envelopes import motion_energy


@pytest.mark.parametrize("kind", SOUND_TYPES)
def test_shapes_and_truth(kind):
    clip, truth = make_clip(kind, duration=2.0, fps=25, sample_rate=16000, av_offset=0.1, seed=1)
    assert clip.video.shape == (50, 64, 64, 3) and clip.video.dtype == torch.uint8
    assert clip.audio.shape == (1, 32000) and clip.audio.dtype == torch.float32
    assert truth.perception_type == kind
    assert np.allclose(np.array(truth.onsets) - np.array(truth.visual_events), 0.1)
    assert all(0 < t < 2.0 for t in truth.onsets + truth.visual_events)
    n = {"impulsive": (1, 1), "sustained": (1, 1), "iterative": (4, 12)}[kind]
    assert n[0] <= len(truth.onsets) <= n[1]


def test_reproducible_by_seed():
    a, ta = make_clip("iterative", seed=7)
    b, tb = make_clip("iterative", seed=7)
    c, tc = make_clip("iterative", seed=8)
    assert torch.equal(a.audio, b.audio) and torch.equal(a.video, b.video) and ta == tb
    assert ta.onsets != tc.onsets


@pytest.mark.parametrize("offset", [-0.2, 0.0, 0.15])
def test_motion_and_sound_coincide_up_to_offset(offset):
    clip, truth = make_clip("iterative", av_offset=offset, seed=3)
    m = motion_energy(clip.video)
    # every visual event is the first frame at or after its time; a motion spike is there
    frames = np.ceil(np.array(truth.visual_events) * 25 - 1e-9).astype(int)
    spikes = torch.nonzero(m > 0.2 * m.max())[:, 0].tolist()
    assert spikes == frames.tolist()  # motion happens only at the visual events
    # every audio onset is the start of a burst: level jumps from the noise floor
    sr = clip.sample_rate
    for t in truth.onsets:
        i = int(t * sr)
        before = clip.audio[0, i - 400 : i - 10].abs().max()
        after = clip.audio[0, i : i + 400].abs().max()
        assert after > 20 * before


def test_write_and_read_back_mp4(tmp_path):
    clip, truth = make_clip("impulsive", seed=2, av_offset=0.05)
    path = write_clip(clip, tmp_path / "imp.mp4")
    back = load_clip(path)
    assert back.video.shape == clip.video.shape and back.audio.shape == clip.audio.shape
    assert (back.video.float() - clip.video.float()).abs().mean() < 3.0
    onset = int(truth.onsets[0] * 16000)
    peak = int(back.audio[0, onset - 800 : onset + 800].abs().argmax()) + onset - 800
    assert abs(peak - onset) / 16000 < 0.01  # AAC keeps the burst in place (within 10 ms)
