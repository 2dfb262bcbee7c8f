"""The reader API: lazy decoding, missing/broken media (skip or raise), collate, workers, DistributedSampler."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from avperceive.data.ave import AVE
from avperceive.data.base import SkippedSample, collate_clips, tile_segments, zero_missing_modality
from avperceive.errors import ConfigError, MediaError

DATA = Path(__file__).parent / "data"
MEDIA = DATA / "media" / "smpte-2997.mp4"


def _media_folder(tmp_path, ds, n_good=2):
    """Real mp4 for the first ``n_good`` test clips, a garbage file for the next, nothing for the rest."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(n_good):
        shutil.copy(MEDIA, folder / f"{ds.records[i]['name']}.mp4")
    (folder / f"{ds.records[n_good]['name']}.mp4").write_bytes(b"this is not a video" * 10)
    return folder


def test_missing_and_broken_media_skip_or_raise(tmp_path):
    ds = AVE(DATA / "ave", "test")
    folder = _media_folder(tmp_path, ds)
    kw = {"clip_kwargs": {"duration": 2.0, "num_frames": 2, "size": 16, "sample_rate": 8000}}
    strict = AVE(DATA / "ave", "test", media_root=folder, **kw)
    with pytest.raises(MediaError) as err:
        strict[3]  # missing
    assert ds.records[3]["name"] in str(err.value)
    with pytest.raises(MediaError) as err:
        strict[2]  # garbage bytes
    assert ds.records[2]["name"] in str(err.value)
    lenient = AVE(DATA / "ave", "test", media_root=folder, on_error="skip", **kw)
    assert set(lenient.check_media()) == {r["name"] for r in ds.records[2:]} - {ds.records[2]["name"]}
    good = lenient[0]
    assert good["video"].shape == (2, 16, 16, 3) and good["video"].dtype == torch.uint8
    assert good["audio"].shape == (1, 16000) and good["labels"].shape == (10, 29)
    bad = lenient[2]
    assert isinstance(bad, SkippedSample) and bad.name == ds.records[2]["name"]
    batch = collate_clips([lenient[i] for i in range(4)])
    assert batch["size"] == 2 and batch["video"].shape == (2, 2, 16, 16, 3)
    assert [s.name for s in batch["skipped"]] == [ds.records[2]["name"], ds.records[3]["name"]]
    assert batch["name"] == [ds.records[0]["name"], ds.records[1]["name"]]
    assert set(lenient.skipped) == {ds.records[2]["name"], ds.records[3]["name"]}


class _Toy(AVE):
    """AVE annotations with a synthetic decoder (no media files needed): odd rows are 'broken'."""

    def media_path(self, index):
        return Path(__file__)

    def decode(self, index, path):
        if index % 2:
            raise MediaError(f"clip{index}.mp4", "truncated")
        return {"video": torch.full((2, 4, 4, 3), index, dtype=torch.int32), "audio": torch.zeros(1, 8)}


def test_dataloader_workers_and_distributed_sampler():
    ds = _Toy(DATA / "ave", "val", on_error="skip")
    loader = DataLoader(ds, batch_size=4, num_workers=1, collate_fn=collate_clips)
    kept, skipped = [], []
    for batch in loader:
        kept += batch["row"].tolist() if batch["size"] else []
        skipped += [s.index for s in batch["skipped"]]
    assert len(kept) + len(skipped) == 402
    assert sorted(skipped) == list(range(1, 402, 2))
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=False)
    indices = list(sampler)
    assert indices == list(range(1, 402, 2))
    loader = DataLoader(
        ds,
        batch_size=8,
        sampler=DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False),
        collate_fn=collate_clips,
    )
    first = next(iter(loader))
    assert first["size"] == 8 and first["video"][:, 0, 0, 0, 0].tolist() == list(range(0, 16, 2))


def test_collate_and_helpers():
    batch = collate_clips(
        [{"name": "a", "x": np.ones(3), "y": 1, "z": 0.5}, {"name": "b", "x": np.zeros(3), "y": 2, "z": 1.5}]
    )
    assert batch["x"].shape == (2, 3) and batch["y"].tolist() == [1, 2] and batch["z"].dtype == torch.float32
    assert collate_clips([SkippedSample(0, "a", "a.mp4", "gone")])["size"] == 0
    wave = torch.arange(6.0)
    np.testing.assert_array_equal(
        tile_segments(wave, 3, 2, 5).numpy(), [[0, 1, 0, 1, 0], [2, 3, 2, 3, 2], [4, 5, 4, 5, 4]]
    )
    assert tile_segments(wave, 4, 2, None)[3].tolist() == [0, 0]
    s = zero_missing_modality({"audio": torch.ones(2), "video": torch.ones(3)}, "v")
    assert s["audio"].sum() == 0 and s["video"].sum() == 3
    with pytest.raises(ConfigError):
        zero_missing_modality({}, "x")
    with pytest.raises(ConfigError, match="on_error"):
        AVE(DATA / "ave", "test", on_error="ignore")
