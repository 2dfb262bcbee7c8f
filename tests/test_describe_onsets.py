"""describe's onset rule under a sustained bed: hits over a drone, a pad or noise (tests/onset_beds.py,
hit times known), the Amen break over a low tone, and librosa's ``onset_detect`` on the real media.

librosa's peak picker is relative (the envelope is normalised to its maximum), so it also fires on
the fluctuations of a bed alone (41 "onsets" on ambi_drone.flac); describe keeps a peak only when its
flux stands ``min_flux_db`` above the running median of the flux, so a hit counts however loud the
bed is, and the bed alone gives (almost) none.
"""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from onset_beds import make_beats_over_bed

from avperceive import describe
from avperceive.io import AVClip, load_clip

MEDIA = Path(__file__).parent / "data" / "media"
SR = 16000


def _audio_clip(wave: np.ndarray) -> AVClip:
    return AVClip(video=torch.zeros(0, 8, 8, 3, dtype=torch.uint8), frame_times=torch.zeros(0, dtype=torch.float64),
                  audio=torch.from_numpy(np.asarray(wave, np.float32))[None], sample_rate=SR, fps=0.0,
                  duration=len(wave) / SR, has_video=False, has_audio=True)


@pytest.mark.parametrize("bed", ["drone", "pad"])
@pytest.mark.parametrize("bed_db", [-20, -10, 0, 6, 12])
def test_every_hit_found_over_a_tonal_bed(bed, bed_db):
    wave, hits = make_beats_over_bed(bed, bed_db, seed=40 + bed_db)
    d = describe(_audio_clip(wave))
    assert d.perception_type == "iterative"
    assert len(d.audio_onsets) == len(hits)
    # each hit within 30 ms of its onset (3 hops of the 10-ms envelope)
    assert np.abs(np.array(d.audio_onsets) - np.array(hits)).max() <= 0.03
    alone = describe(_audio_clip(make_beats_over_bed(bed, bed_db, seed=40 + bed_db, hits=False)[0]))
    # the bed alone: at most one spurious peak in 4 s (measured: one, in one of the five pads), and sustained
    assert len(alone.audio_onsets) <= 1 and alone.perception_type == "sustained"


@pytest.mark.parametrize("bed_db", [-20, -10])
def test_hits_over_noise(bed_db):
    # broadband noise raises every band's flux: hits still stand out 10 dB or more below the hits' level
    wave, hits = make_beats_over_bed("noise", bed_db, seed=7)
    d = describe(_audio_clip(wave))
    assert d.perception_type == "iterative"
    assert abs(len(d.audio_onsets) - len(hits)) <= 2
    alone = describe(_audio_clip(make_beats_over_bed("noise", bed_db, seed=7, hits=False)[0]))
    assert len(alone.audio_onsets) <= 1 and alone.perception_type == "sustained"


@pytest.fixture(scope="module")
def amen():
    return load_clip(MEDIA / "loop_amen_full.flac", video=False, sample_rate=SR).audio.mean(0).numpy()


@pytest.mark.parametrize("tone_db", [0, 12, 20])
def test_amen_over_a_loud_low_tone(amen, tone_db):
    # the report's case: a loud drum loop over a continuous low tone; the tone dominates the level
    t = np.arange(amen.size) / SR
    tone = np.sin(2 * math.pi * 55 * t) + 0.5 * np.sin(2 * math.pi * 110 * t)
    tone *= np.sqrt(np.mean(amen**2) / np.mean(tone**2)) * 10 ** (tone_db / 20)
    mix = (0.9 * (amen + tone) / np.abs(amen + tone).max()).astype(np.float32)
    d = describe(_audio_clip(mix))
    alone = describe(_audio_clip(amen))
    reference = len(librosa.onset.onset_detect(y=mix, sr=SR, hop_length=160))
    print(f"tone {tone_db:+d} dB: describe {len(d.audio_onsets)}, loop alone {len(alone.audio_onsets)}, "
          f"librosa {reference}")
    assert d.perception_type == "iterative"
    assert abs(len(d.audio_onsets) - len(alone.audio_onsets)) <= 2
    assert abs(len(d.audio_onsets) - reference) <= max(2, 0.1 * reference)


@pytest.mark.parametrize("name", ["drum_snare_hard.flac", "loop_amen_full.flac", "smpte-2997.mp4"])
def test_real_media_onset_counts_match_librosa(name):
    clip = load_clip(MEDIA / name, video=False, sample_rate=SR)
    reference = len(librosa.onset.onset_detect(y=clip.audio.mean(0).numpy(), sr=SR, hop_length=160))
    ours = len(describe(clip).audio_onsets)
    # counts are exact quantities; the two detectors differ in envelope resolution, so allow 10 %
    assert abs(ours - reference) <= max(1, 0.1 * reference), (ours, reference)


def test_drone_alone_has_no_onset_although_librosa_picks_its_fluctuations():
    clip = load_clip(MEDIA / "ambi_drone.flac", video=False, sample_rate=SR)
    assert len(librosa.onset.onset_detect(y=clip.audio.mean(0).numpy(), sr=SR, hop_length=160)) > 20
    d = describe(clip)
    assert d.audio_onsets == [] and d.perception_type == "sustained"
