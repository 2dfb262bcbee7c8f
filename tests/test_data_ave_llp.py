"""Real-file tests of the AVE and LLP readers (annotation files copied to tests/data/ave, tests/data/llp)."""

from pathlib import Path

import numpy as np
import pytest

from avperceive.data.ave import AVE, AVE_BACKGROUND, read_ave_annotations
from avperceive.data.llp import LLP, LLP_CLASSES, parse_llp_filename

DATA = Path(__file__).parent / "data"
AVE_ROOT = DATA / "ave"
LLP_ROOT = DATA / "llp"


def test_ave_counts_and_splits():
    full = AVE(AVE_ROOT, "all")
    assert len(full) == 4143
    assert len({r["name"] for r in full.records}) == 4097
    assert [len(AVE(AVE_ROOT, s)) for s in ("train", "val", "test")] == [3339, 402, 402]
    assert full.num_classes == 29 and full.categories[0] == "Church bell" and len(full.categories) == 28


def test_ave_header_and_headerless_annotations_agree():
    with_header = read_ave_annotations(AVE_ROOT / "Annotations.txt")
    without = read_ave_annotations(AVE_ROOT / "Annotations_noheader.txt")
    assert len(with_header) == len(without) == 4143
    assert with_header == without


def test_ave_labels_match_official_h5_row_by_row():
    h5py = pytest.importorskip("h5py")
    full = AVE(AVE_ROOT, "all")
    labels = np.stack([full.annotation(i)["labels"] for i in range(len(full))])
    assert labels.shape == (4143, 10, 29)
    with h5py.File(AVE_ROOT / "labels_closs.h5") as f:
        closs = f["avadataset"][:]
    with h5py.File(AVE_ROOT / "mil_labels.h5") as f:
        mil = f["avadataset"][:]
    np.testing.assert_array_equal(1.0 - labels[:, :, AVE_BACKGROUND], closs)
    np.testing.assert_array_equal(np.stack([full.annotation(i)["video_label"] for i in range(4143)]), mil)
    np.testing.assert_array_equal(labels.sum(-1), np.ones((4143, 10)))
    # the StartTime = EndTime = 0 row is all background
    zero = [i for i, r in enumerate(full.records) if r["start"] == r["end"] == 0]
    assert len(zero) == 1 and labels[zero[0], :, AVE_BACKGROUND].sum() == 10


def test_ave_split_rows_follow_official_order_files():
    h5py = pytest.importorskip("h5py")
    for split in ("train", "val", "test"):
        with h5py.File(AVE_ROOT / f"{split}_order.h5") as f:
            order = f["order"][:]
        rows = np.array([r["row"] for r in AVE(AVE_ROOT, split).records])
        np.testing.assert_array_equal(rows, order)


def test_ave_features_from_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    audio = np.random.default_rng(0).standard_normal((4143, 10, 128)).astype(np.float32)
    with h5py.File(tmp_path / "audio_feature.h5", "w") as f:
        f["avadataset"] = audio
    ds = AVE(AVE_ROOT, "test", features_root=tmp_path)
    sample = ds[5]
    np.testing.assert_array_equal(sample["audio_feature"], audio[ds.records[5]["row"]])
    assert "visual_feature" not in sample


def test_llp_counts():
    assert [len(LLP(LLP_ROOT, s)) for s in ("full", "train", "val", "test")] == [11849, 10000, 649, 1200]
    test = LLP(LLP_ROOT, "test")
    assert len(test.audio_events) == 4131 and len(test.visual_events) == 2495
    assert all(test.has_segment_labels(i) for i in range(len(test)))


def test_llp_filename_split_from_the_right():
    assert parse_llp_filename("AP0061o0Nvk_101.8_111.8") == ("AP0061o0Nvk", 101.8, 111.8)
    assert parse_llp_filename("a_b_cdefghi_30_40") == ("a_b_cdefghi", 30.0, 40.0)
    full = LLP(LLP_ROOT, "full")
    assert sum(r["start"] != int(r["start"]) for r in full.records) == 5
    assert all(r["end"] - r["start"] == pytest.approx(10.0) for r in full.records)


def test_llp_known_bad_rows_are_reported():
    full = LLP(LLP_ROOT, "full")
    zero = {p[2] for p in full.problems if p[3].startswith("zero-length")}
    assert len([p for p in full.problems if p[3].startswith("zero-length")]) == 6
    assert "CaC2xvdLC34_250_260" in zero
    lines = {p[1] for p in full.problems if p[2] == "CaC2xvdLC34_250_260" and p[3].startswith("zero-length")}
    assert lines == {48}  # 1-based line in AVVP_eval_audio.csv, header = line 1
    unmatched = {p[2] for p in full.problems if "matches no clip" in p[3]}
    assert unmatched == {
        "7X3oSVoA_90_100", "CSWQ_HzQ_10_20", "P7x4FV4lg_570_580", "17iGUal2M_10_20", "VMTJRpjbE_150_160",
        "19jWnmYnlD8_30_400", "AkAfFL5Q4QA_30_40", "12eWNawPekw_30_40",
    }  # fmt: skip
    not_weak = [p for p in full.problems if "not among the weak labels" in p[3]]
    assert sum(p[0] == "AVVP_eval_audio.csv" for p in not_weak) == 76
    assert sum(p[0] == "AVVP_eval_visual.csv" for p in not_weak) == 51


def test_llp_dense_labels():
    test = LLP(LLP_ROOT, "test")
    s = test.annotation(test.index_of["KSRjje7GH44_60_70"]) if "KSRjje7GH44_60_70" in test.index_of else None
    val = LLP(LLP_ROOT, "val")
    s = s or val.annotation(val.index_of["KSRjje7GH44_60_70"])
    blender = LLP_CLASSES.index("Blender")
    np.testing.assert_array_equal(s["audio_gt"][blender], [0] * 8 + [1, 1])
    np.testing.assert_array_equal(s["av_gt"], s["audio_gt"] * s["visual_gt"])
    assert s["labels"].shape == (25,) and s["labels"][blender] == 1
    train = LLP(LLP_ROOT, "train")
    first = train.annotation(0)
    assert first["name"] == "BjCEufrlXm4_20_30" and first["label_names"] == ["Speech", "Dog"]
    assert first["labels"].sum() == 2 and "audio_gt" not in first
