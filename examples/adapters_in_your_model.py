"""Put DG-SCT adapter pairs between any two token streams.

Your model has a video stream ``v [B, N_v, C_v]`` and an audio stream ``a [B, N_a, C_a]``, each
with its own (frozen) blocks. At every layer, one DGSCTAdapter per direction reads both streams
and returns a residual for its own stream (plus a spatial map you can pool with):

    r_v, map_v = video_adapter(v, a)   # own = video, guided by audio
    r_a, map_a = audio_adapter(a, v)   # own = audio, guided by video
    v, a = block_v(v) + r_v, block_a(a) + r_a

Both gates start at 0, so before training the adapted model equals the frozen one. The four
families of a whole host (audio/video x attention/MLP position) live in an ``AdapterBank``
that can be saved, loaded and swapped on its own. Runs on CPU in a few seconds:

    python examples/adapters_in_your_model.py

Measured on a 2-core x86-64 CPU shared with other jobs, ``OMP_NUM_THREADS=1``: 1.9 s user + 0.2 s
sys CPU (4 s wall), most of it importing torch. It prints the loss of 5 training steps (falling:
1.57 → 1.45), the fused vs reference max |diff| (6e-08) and the saved-and-reloaded bank's max |diff|
(0).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from einops import einsum
from torch import nn

from avperceive.nn import AdapterBank

NUM_LAYERS, NUM_CLASSES = 2, 5
VIDEO_DIM, VIDEO_TOKENS = 64, 49  # e.g. a 7x7 patch grid
AUDIO_DIM, AUDIO_TOKENS = 32, 64  # e.g. an 8x8 spectrogram patch grid


class TwoStreamModel(nn.Module):
    """Two frozen transformer stacks joined by DG-SCT adapters at the attention and MLP positions."""

    def __init__(self):
        super().__init__()

        def stack(dim: int) -> nn.ModuleList:
            return nn.ModuleList(
                nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=2 * dim, batch_first=True)
                for _ in range(NUM_LAYERS)
            )

        self.video_blocks, self.audio_blocks = stack(VIDEO_DIM), stack(AUDIO_DIM)
        for p in [*self.video_blocks.parameters(), *self.audio_blocks.parameters()]:
            p.requires_grad_(False)  # the backbones stay frozen; only adapters and head train
        self.adapters = AdapterBank.dgsct(
            video_dims=[VIDEO_DIM] * NUM_LAYERS, audio_dims=[AUDIO_DIM] * NUM_LAYERS,
            video_tokens=[VIDEO_TOKENS] * NUM_LAYERS, audio_tokens=[AUDIO_TOKENS] * NUM_LAYERS,
            num_latents=8,
        )
        self.head = nn.Linear(VIDEO_DIM + AUDIO_DIM, NUM_CLASSES)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        for i, (block_v, block_a) in enumerate(zip(self.video_blocks, self.audio_blocks)):
            # attention position (p1): both adapters read the pre-block states
            r_v, _ = self.adapters["video", "p1", i](v, a)
            r_a, _ = self.adapters["audio", "p1", i](a, v)
            v = v + block_v.self_attn(v, v, v, need_weights=False)[0] + r_v
            a = a + block_a.self_attn(a, a, a, need_weights=False)[0] + r_a
            # MLP position (p2): read the interim states
            r_v, map_v = self.adapters["video", "p2", i](v, a)
            r_a, map_a = self.adapters["audio", "p2", i](a, v)
            v = v + block_v.linear2(torch.relu(block_v.linear1(v))) + r_v
            a = a + block_a.linear2(torch.relu(block_a.linear1(a))) + r_a
        # pool each stream with the spatial map of its last p2 adapter, as DG-SCT does
        pooled = torch.cat([einsum(map_v, v, "b n, b n c -> b c"), einsum(map_a, a, "b n, b n c -> b c")], dim=-1)
        return self.head(pooled)


def main() -> None:
    torch.manual_seed(0)
    model = TwoStreamModel()
    v, a = torch.randn(8, VIDEO_TOKENS, VIDEO_DIM), torch.randn(8, AUDIO_TOKENS, AUDIO_DIM)
    labels = torch.randint(0, NUM_CLASSES, (8,))
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"trainable parameters: {sum(p.numel() for p in trainable):,} (adapters + head)")
    for step in range(5):  # a plain SGD loop (any torch.optim optimizer works the same way)
        loss = nn.functional.cross_entropy(model(v, a), labels)
        grads = torch.autograd.grad(loss, trainable)
        with torch.no_grad():
            for p, g in zip(trainable, grads):
                p.sub_(0.05 * g)
        print(f"step {step} loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        fused = model(v, a)
        model.adapters.attn_impl = "reference"  # the readable path gives the same numbers
        reference = model(v, a)
        model.adapters.attn_impl = "fused"
    print(f"fused vs reference max |diff|: {(fused - reference).abs().max().item():.2e}")

    with tempfile.TemporaryDirectory() as tmp:
        path = model.adapters.save(Path(tmp) / "my_adapters.safetensors")  # the bank alone, config inside
        bank = AdapterBank.load(path)
    fresh = TwoStreamModel().eval()
    fresh.load_state_dict(model.state_dict())  # same frozen blocks and head ...
    fresh.adapters = bank.eval()  # ... and the adapters swapped in from the file
    with torch.no_grad():
        print(f"reloaded bank max |diff|: {(fresh(v, a) - fused).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
