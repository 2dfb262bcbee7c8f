"""AVMIT reader (real csv files) and the in-house TFRecord / SequenceExample reader (no TensorFlow)."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from avperceive.data.avmit import AVMIT, AVMIT_CLASSES, rating_flags, read_avmit_embeddings
from avperceive.data.base import SkippedSample, collate_clips
from avperceive.data.tfrecord import (
    crc32c,
    encode_example,
    encode_sequence_example,
    masked_crc32c,
    parse_example,
    read_tfrecords,
    write_tfrecords,
)
from avperceive.errors import ConfigError, MediaError

ROOT = Path(__file__).parent / "data" / "avmit"


def test_crc32c_known_vectors():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    c = crc32c(b"123456789")
    assert masked_crc32c(b"123456789") == (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- a record written byte by byte from the specs (protobuf wire format + TFRecord framing) -----------------------
def _v(n):  # varint
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _ld(field, payload):  # length-delimited field
    return _v(field << 3 | 2) + _v(len(payload)) + payload


def _bytes_feature(*values):
    return _ld(1, b"".join(_ld(1, v) for v in values))  # Feature.bytes_list = 1 { value = 1 }


def _int_feature(x):
    return _ld(3, _ld(1, _v(x)))  # Feature.int64_list = 3 { packed value = 1 }


def _entry(key, value):
    return _ld(1, _ld(1, key.encode()) + _ld(2, value))  # map entry: key = 1, value = 2


def _hand_record(audio, visual):
    context = b"".join(
        [
            _entry("filename", _bytes_feature(b"barking/yt-abc_1.mp4")),
            _entry("label", _bytes_feature(b"barking")),
            _entry("audio_timesteps", _int_feature(len(audio))),
            _entry("visual_timesteps", _int_feature(len(visual))),
        ]
    )
    lists = _entry("audio", b"".join(_ld(1, _bytes_feature(a.astype("<f4").tobytes())) for a in audio))
    lists += _entry("visual_object", b"".join(_ld(1, _bytes_feature(v.astype("<f4").tobytes())) for v in visual))
    payload = _ld(1, context) + _ld(2, lists)
    length = struct.pack("<Q", len(payload))
    framed = length + struct.pack("<I", masked_crc32c(length)) + payload + struct.pack("<I", masked_crc32c(payload))
    return payload, framed


def _write_avmit_tree(tmp_path):
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((3, 128)).astype(np.float32)
    visual = rng.standard_normal((4, 512)).astype(np.float32)
    payload, framed = _hand_record(audio, visual)
    test = AVMIT(ROOT, "test")
    tf_name = test.records[0]["tfrecord_filename"]
    path = tmp_path / tf_name
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(framed))
    return test, path, audio, visual, payload, framed


def test_read_hand_written_record(tmp_path):
    _, path, audio, visual, payload, framed = _write_avmit_tree(tmp_path)
    assert list(read_tfrecords(path)) == [payload]
    emb = read_avmit_embeddings(path)
    assert emb["filename"] == "barking/yt-abc_1.mp4" and emb["label"] == "barking"
    np.testing.assert_array_equal(emb["audio"], audio)
    np.testing.assert_array_equal(emb["visual"], visual)
    # our encoder produces the same bytes as the hand-written record
    ours = encode_sequence_example(
        {"filename": b"barking/yt-abc_1.mp4", "label": b"barking", "audio_timesteps": 3, "visual_timesteps": 4},
        {"audio": [a.tobytes() for a in audio], "visual_object": [v.tobytes() for v in visual]},
    )
    assert ours == payload
    out = write_tfrecords(tmp_path / "x.tfrecord", [payload], compression=None)
    assert out.read_bytes() == framed


def test_corrupt_records_are_reported(tmp_path):
    _, _, _, _, _, framed = _write_avmit_tree(tmp_path)
    bad = bytearray(framed)
    bad[30] ^= 0xFF
    (tmp_path / "bad.tfrecord").write_bytes(bytes(bad))
    with pytest.raises(MediaError, match="data checksum"):
        read_avmit_embeddings(tmp_path / "bad.tfrecord")
    (tmp_path / "short.tfrecord").write_bytes(framed[:-10])
    with pytest.raises(MediaError, match="truncated"):
        list(read_tfrecords(tmp_path / "short.tfrecord"))
    assert parse_example(encode_example({"a": [1, -2, 300], "f": np.array([1.5, 2.5])}))["a"].tolist() == [1, -2, 300]


def test_dataset_with_embeddings_pads_to_seven(tmp_path):
    test, path, audio, visual, _, _ = _write_avmit_tree(tmp_path)
    ds = AVMIT(ROOT, "test", embeddings_root=tmp_path, on_error="skip")
    s = ds[0]
    assert s["audio_embedding"].shape == (7, 128) and s["visual_embedding"].shape == (7, 512)
    assert s["audio_steps"] == 3 and s["visual_steps"] == 4
    np.testing.assert_array_equal(s["audio_embedding"][:3].numpy(), audio)
    assert s["audio_embedding"][3:].abs().sum() == 0
    missing = ds[1]
    assert isinstance(missing, SkippedSample) and missing.name == test.records[1]["name"]
    batch = collate_clips([ds[0], ds[1]])
    assert batch["size"] == 1 and batch["visual_embedding"].shape == (1, 7, 512)
    with pytest.raises(MediaError):
        AVMIT(ROOT, "test", embeddings_root=tmp_path)[1]


def test_real_csv_counts_and_filters():
    test = AVMIT(ROOT, "test")
    assert len(test) == 960 and set(test.class_counts().values()) == {60} and len(test.class_counts()) == 16
    assert sum(r["label_name"] != r["mit_label"] for r in test.records) == 103
    assert test.records[0]["new_filename"] == "inflating/inflating_1.mp4"
    assert test.records[0]["label"] == AVMIT_CLASSES.index("inflating") == 6
    train = AVMIT(ROOT, "train")
    assert len(train) == 6560 and set(train.class_counts().values()) == {410}
    assert len(AVMIT(ROOT, "val")) == 736 and len(AVMIT(ROOT, "mit16_val")) == 2256
    sums = [r["r1"] + r["r2"] + r["r3"] for r in train.records]
    assert sum(s > 3 for s in sums) == 262
    assert len(AVMIT(ROOT, "train", rating_filter="present")) == 6528
    assert len(AVMIT(ROOT, "train", rating_filter="prominent")) == 6473
    assert len(AVMIT(ROOT, "train", rating_filter="unanimous")) == 3177
    with pytest.raises(ConfigError, match="rating columns"):
        AVMIT(ROOT, "test", rating_filter="prominent")


def test_rating_flags():
    assert rating_flags(0, 1, 2) == {"present": True, "prominent": True, "unanimous": False}
    assert rating_flags(1, 1, 1) == {"present": True, "prominent": False, "unanimous": False}
    assert rating_flags(2, 0, 1) == {"present": False, "prominent": False, "unanimous": False}
    assert rating_flags(0, 0, 3) == {"present": True, "prominent": True, "unanimous": True}
    assert rating_flags(0, 2, 2)["prominent"] is False  # a tie is no majority
