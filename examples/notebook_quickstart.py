"""Notebook quick start: list models, build one, predict on a clip, save / reload, convert.

Runs on CPU in seconds with the -tiny models (random weights: the labels are not meaningful, the
plumbing is). Run as ``python examples/notebook_quickstart.py`` or cell by cell. Measured on a
2-core x86-64 CPU shared with other jobs, ``OMP_NUM_THREADS=1``: 2.2 s user + 0.2 s sys CPU (6 s wall).
"""

# %% Imports and the media fixture shipped with the tests
import json
import tempfile
from pathlib import Path

import torch

import avperceive as avp

MEDIA = Path(__file__).resolve().parent.parent / "tests" / "data" / "media"
clip_path = MEDIA / "big_buck_bunny_432_433.webm"

# %% What is registered
print("tiny models:", avp.list_models("*-tiny"))
print("weight sets:", avp.list_models("lavish*", pretrained=True))

# %% Build a model; its pretrained_cfg says what input it expects
torch.manual_seed(0)
model = avp.create_model("lavish-ave-tiny")
print(json.dumps(model.pretrained_cfg.input, indent=1))

# %% One-line predict: per-second labels with scores and the event / background decision
p = avp.predict(clip_path, model=model)
for seg in p.segments[:3]:
    if not seg.valid:  # past the end of the clip: shown as padding, never part of an event
        print(f"{seg.start:4.1f}-{seg.end:4.1f} s  (padding)")
        continue
    print(f"{seg.start:4.1f}-{seg.end:4.1f} s  {seg.label:32s} score={seg.score:.3f} event={seg.is_event}")
print("events:", p.events, "| padded:", p.padded)
print("JSON keys:", sorted(p.to_dict()))

# %% The same from an AVClip you decoded yourself (at the model's sample rate)
clip = avp.load_clip(clip_path, duration=10.0, num_frames=10, size=32, sample_rate=16000)
p2 = avp.predict(clip, model=model)
assert [s.label for s in p2.segments] == [s.label for s in p.segments]

# %% Save, reload (strict), and predict from the folder alone
with tempfile.TemporaryDirectory() as tmp:
    folder = model.save_pretrained(Path(tmp) / "lavish-tiny")
    print("saved:", sorted(f.name for f in folder.iterdir()))
    again = avp.create_model("local-dir:" + str(folder))
    p3 = avp.predict(clip_path, model=again)
    print("same labels after reload:", [s.label for s in p3.segments] == [s.label for s in p.segments])

# %% Converters for the official checkpoints (see docs/pretrained.md)
for kind, description in avp.hub.list_converters().items():
    print(f"{kind:20s} {description}")
