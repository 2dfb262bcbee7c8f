"""SoundActions reader (real labels.csv), material cleaning, majority merge, stratified k-fold."""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from avperceive.data.soundactions import (
    ENVIRONMENTS,
    MATERIALS,
    SoundActions,
    clean_materials,
    majority_merge,
    union_merge,
)
from avperceive.data.splits import stratified_kfold
from avperceive.errors import ConfigError, MediaError

ROOT = Path(__file__).parent / "data" / "soundactions"


def test_table2_counts():
    pt = SoundActions(ROOT, "perception_type")
    assert len(pt) == 365
    assert Counter(r["perception_type"] for r in pt.records) == {
        "Impulse": 124, "Sustain": 84, "Iterative": 125, "Unknown": 32
    }  # fmt: skip
    ej = SoundActions(ROOT, "enjoyability")
    assert Counter(r["enjoyability"] for r in ej.records) == {"Yes": 49, "Neutral": 203, "No": 72, "Unknown": 41}
    assert ej.classes == ("Yes", "Neutral", "No", "Unknown")
    assert Counter(ej.targets()) == {0: 49, 1: 203, 2: 72, 3: 41}
    assert len(SoundActions(ROOT, "perception_type", drop_unknown=True)) == 365 - 32


def test_environment_and_materials_parse():
    ds = SoundActions(ROOT, "environment")
    assert {r["environment"] for r in ds.records} == set(ENVIRONMENTS)
    mats = SoundActions(ROOT, "material")
    seen = Counter(m for r in mats.records for m in r["materials"])
    assert set(seen) == set(MATERIALS)
    assert seen["snow"] == 7 and seen["leather"] == 12
    assert mats.oov_materials == {"glass": 43, "water": 1, "ground": 1}
    sample = mats[0]
    assert sample["name"] == "1" and sample["materials"] == ["plastic", "snow"]
    assert sample["target"].shape == (15,) and sample["target"].sum() == 2


def test_material_alias_map():
    assert clean_materials("metal, wood, liquide, others") == (["metal", "wood", "liquid", "others"], [])
    assert clean_materials("plastic, lliquid, others")[0] == ["plastic", "liquid", "others"]
    assert clean_materials("plastic, metal, lectronic")[0] == ["plastic", "metal", "electronic"]
    assert clean_materials("metal plastic, stone")[0] == ["metal", "plastic", "stone"]
    assert clean_materials("Metal, fabric, plastic")[0] == ["metal", "fabric", "plastic"]
    assert clean_materials("paper, plastic, rubber,")[0] == ["paper", "plastic", "rubber"]
    assert clean_materials("liquid, metal, plastic, fabric, ")[0] == ["liquid", "metal", "plastic", "fabric"]
    assert clean_materials("plastic, rubber, metal, rubber, wood")[0] == ["plastic", "rubber", "metal", "wood"]
    assert clean_materials("glass, skin,others") == (["others", "skin"], ["glass"])
    assert clean_materials("stone, water", oov="drop") == (["stone"], ["water"])
    assert clean_materials("copper, steel")[0] == ["metal"]


def test_both_column_spellings(tmp_path):
    csv = tmp_path / "labels" / "SoundActions_labeling_combined.csv"
    csv.parent.mkdir()
    csv.write_text(
        "PerceptionType,Material,Environment,Enjoyable\n"
        "Impulsive,\"wood, metal\",kitchen,Yes\nSustain,metal,other indoors,Unknown\n"
    )
    ds = SoundActions(tmp_path, "perception_type")
    assert [r["perception_type"] for r in ds.records] == ["Impulse", "Sustain"]
    assert [r["number"] for r in ds.records] == [1, 2]
    assert [r["environment"] for r in ds.records] == ["kitchen", "indoor"]
    assert SoundActions(tmp_path, "enjoyability").targets() == [0, 3]
    with pytest.raises(ConfigError, match="label must be"):
        SoundActions(tmp_path, "mood")


def test_majority_merge_and_union():
    votes = [["Impulse", "Impulse", "Sustain"], ["Impulse", "Sustain", "Iterative"], ["No", "No", "No"], []]
    assert majority_merge(votes) == ["Impulse", "Unknown", "No", "Unknown"]
    assert majority_merge([["a", "b"]]) == ["Unknown"]  # a tie is no majority
    assert union_merge([[["metal"], ["wood", "metal"], []]]) == [["metal", "wood"]]


def test_stratified_kfold_real_labels():
    y = SoundActions(ROOT, "perception_type").targets()
    folds = stratified_kfold(y, k=5, seed=42)
    assert len(folds) == 5
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(365))
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 365
    y = np.asarray(y)
    for tr, va in folds:
        assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 365
        for c, total in Counter(y.tolist()).items():
            assert abs((y[va] == c).sum() - total / 5) < 1 + 1e-9
    again = stratified_kfold(y.tolist(), k=5, seed=42)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = stratified_kfold(y.tolist(), k=5, seed=0)
    assert any((a[1] != b[1]).any() for a, b in zip(folds, other) if len(a[1]) == len(b[1]))


class _FakeClip:
    def __init__(self, frames, samples):
        self.video = np.full((frames, 8, 8, 3), 255, dtype=np.uint8)
        self.audio = np.arange(samples, dtype=np.float32)[None] / samples


def test_dgsct_layout_and_missing_modality(tmp_path, monkeypatch):
    media = tmp_path / "video-HD"
    media.mkdir()
    for n in (1, 2, 3):
        (media / f"{n:03d}_action.mp4").write_bytes(b"x")
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "SoundAction No.,Perception type,Material,Environment,Enjoyability\n"
        "1,Impulse,metal,room,Yes\n2,Sustain,wood,room,No\n3,Iterative,paper,car,Neutral\n4,Impulse,metal,hall,No\n"
    )
    import avperceive.io as avio

    seen = {}

    def fake_load_clip(path, **kw):
        seen.update(kw)
        return _FakeClip(int(kw["duration"] * kw["fps"]), 25 * kw["sample_rate"] // 10)  # 2.5 s of audio

    monkeypatch.setattr(avio, "load_clip", fake_load_clip, raising=False)
    kw = dict(segments=4, sample_rate=100, tile_to=250, size=8, on_error="skip")
    ds = SoundActions(tmp_path, **kw)
    assert ds.media_root == media
    s = ds[1]
    assert seen["fps"] == 1.0 and seen["duration"] == 4.0 and seen["sample_rate"] == 100 and seen["size"] == 8
    assert s["video"].shape == (4, 3, 8, 8) and s["audio"].shape == (4, 250)
    assert s["video"][0, 0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)
    wave = torch.arange(250, dtype=torch.float32) / 250
    torch.testing.assert_close(s["audio"][1, :100], wave[100:200])
    torch.testing.assert_close(s["audio"][1, 100:200], wave[100:200])  # tiled
    torch.testing.assert_close(s["audio"][2, 50:100], torch.zeros(50))  # zero-padded beyond 2.5 s
    skipped = ds[3]  # row 4 has no file
    assert skipped.name == "4" and "not found" in skipped.reason
    a_only = SoundActions(tmp_path, modality="a", **kw)[0]
    assert a_only["video"].abs().sum() == 0 and a_only["audio"].abs().sum() > 0
    v_only = SoundActions(tmp_path, modality="v", **kw)[0]
    assert v_only["audio"].abs().sum() == 0 and v_only["video"].abs().sum() > 0
    with pytest.raises(ConfigError, match="equal counts"):
        SoundActions(tmp_path, match="sorted", **kw)
    with pytest.raises(MediaError, match="4.mp4"):
        SoundActions(tmp_path, segments=4, sample_rate=100, tile_to=250, size=8)[3]


def test_dgsct_layout_on_a_real_file(tmp_path):
    media = tmp_path / "video-HD"
    media.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "media" / "big_buck_bunny_432_433.webm", media / "1.webm")
    (tmp_path / "labels.csv").write_text(
        "SoundAction No.,Perception type,Material,Environment,Enjoyability\n1,Impulse,metal,room,Yes\n"
    )
    s = SoundActions(tmp_path, segments=10, sample_rate=32000, tile_to=320000, size=16)[0]
    assert s["video"].shape == (10, 3, 16, 16) and s["audio"].shape == (10, 320000)
    assert s["audio"][0].abs().max() > 0.01  # the first second holds sound, tiled 10x
    torch.testing.assert_close(s["audio"][0, :32000], s["audio"][0, 32000:64000])
    assert s["audio"][2:].abs().max() == 0 and s["audio"][1, 1000:32000].abs().max() == 0  # 1.006 s, zero-padded
    assert s["target"] == 0
