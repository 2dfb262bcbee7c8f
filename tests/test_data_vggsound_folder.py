"""VGGSound (real csv head), Kinetics-Sounds filter and MediaFolder readers."""

import shutil
from pathlib import Path

import pytest

from avperceive.data.base import SkippedSample, collate_clips, read_text_rows
from avperceive.data.folder import MediaFolder
from avperceive.data.kinetics_sounds import KINETICS_SOUNDS_CLASSES, KineticsSounds
from avperceive.data.vggsound import VGGSound
from avperceive.errors import ConfigError, MediaError

DATA = Path(__file__).parent / "data"
VGG = DATA / "vggsound"


def test_vggsound_real_head():
    test, train = VGGSound(VGG, "test"), VGGSound(VGG, "train")
    assert (len(test), len(train), len(VGGSound(VGG, "all"))) == (38, 363, 401)
    assert test.num_classes == 309 and test.classes == sorted(test.classes)
    assert VGG.joinpath("vggsound.csv").read_bytes().count(b"\r\n") == 401
    quoted = [r for r in train.records if "," in r["label_name"]]
    assert {"male speech, man speaking", "female speech, woman speaking"} <= {r["label_name"] for r in quoted}
    first = VGGSound(VGG, "all").records[0]
    assert first["name"] == "---g-f_I2yQ_000001" and first["label_name"] == "people marching"
    assert first["label"] == test.classes.index("people marching") and first["category"] == "people"
    # every test row of the head is in the official test.csv, with the same label
    official = dict(read_text_rows(VGG / "test.csv")[1])
    for r in test.records:
        assert official[r["name"] + ".mp4"] == r["label_name"]


def test_vggsound_from_test_csv_only(tmp_path):
    for name in ("test.csv", "stat.csv"):
        shutil.copy(VGG / name, tmp_path / name)
    ds = VGGSound(tmp_path, "test")
    assert len(ds) == 15446 and ds.records[0]["name"] == "glLQrEijrKg_000300"
    assert ds.records[0]["label_name"] == "playing hammond organ"
    with pytest.raises(ConfigError):
        VGGSound(tmp_path, "train")


def test_kinetics_sounds_filter(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "playing piano,abc,12,22,train,0\n"
        "abseiling,def,0,10,train,0\n"
        '"blowing out candles",ghi,5,15,train,0\n'
        "mowing lawn,jkl,30,40,train,1\n"
        "bowling,mno,1,11,train,0\n"
    )
    ds = KineticsSounds(tmp_path, "train")
    assert len(KINETICS_SOUNDS_CLASSES) == 34
    assert [r["label_name"] for r in ds.records] == [
        "playing piano", "blowing out", "mowing the lawn by pushing lawnmower", "bowling"
    ]  # fmt: skip
    assert ds.records[1]["kinetics_label"] == "blowing out candles"
    assert ds.records[0]["name"] == "abc_000012_000022" and ds.records[0]["label"] == 28
    assert len(ds.missing_classes) == 30


def test_media_folder(tmp_path):
    (tmp_path / "beeps").mkdir()
    (tmp_path / "broken").mkdir()
    shutil.copy(DATA / "media" / "smpte-2997.mp4", tmp_path / "beeps" / "a.mp4")
    (tmp_path / "broken" / "b.mp4").write_bytes(b"\x00" * 100)
    kw = {"clip_kwargs": {"duration": 1.0, "num_frames": 2, "size": 8, "sample_rate": 8000}}
    ds = MediaFolder(tmp_path, on_error="skip", **kw)
    assert ds.classes == ["beeps", "broken"] and [r["name"] for r in ds.records] == ["beeps/a.mp4", "broken/b.mp4"]
    batch = collate_clips([ds[0], ds[1]])
    assert batch["size"] == 1 and batch["video"].shape == (1, 2, 8, 8, 3) and batch["audio"].shape == (1, 1, 8000)
    assert isinstance(ds[1], SkippedSample) and ds[1].name == "broken/b.mp4"
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nbeeps/a.mp4,tone\nmissing.mp4,tone\n")
    strict = MediaFolder(tmp_path, labels, **kw)
    assert strict.check_media() == {"missing.mp4": f"{tmp_path / 'missing.mp4'}: file not found"}
    with pytest.raises(MediaError, match="missing.mp4"):
        strict[1]
    assert strict[0]["label_name"] == "tone"
