"""Per-stage features from the two backbones, and stepping through one block's sub-layers.

Runs with random weights (no download):

    python examples/backbone_features.py

Measured on a 2-core x86-64 CPU shared with other jobs, ``OMP_NUM_THREADS=1``: 1.7 s user + 0.2 s
sys CPU (3 s wall); ``--full`` builds the full-size backbones and takes much longer.

With the published weights, load them first (the files are not shipped with avperceive):

    from avperceive.hub import convert_checkpoint
    swin.load_state_dict(convert_checkpoint("swinv2-timm", "swinv2_large_window12_192.safetensors"))
    audio.load_state_dict(convert_checkpoint("htsat", "HTSAT_AudioSet_Saved_1.ckpt"))
"""

from __future__ import annotations

import argparse

import torch

import avperceive as avp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full-size Swin-V2-L / HTS-AT-AudioSet (slow on CPU)")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.full:
        swin = avp.create_model("swinv2_large_window12_192", num_classes=0).eval()
        audio = avp.create_model("htsat_audioset").eval()
        frames = torch.randn(1, 3, 192, 192)
    else:
        swin = avp.create_model("swinv2_test_tiny").eval()
        audio = avp.create_model("htsat_test_tiny").eval()
        frames = torch.randn(1, 3, 48, 48)
    wave = 0.1 * torch.randn(1, 320_000)  # 10 s at 32 kHz

    with torch.no_grad():
        feats, stages = swin.forward_intermediates(frames)
        print("Swin-V2 features", tuple(feats.shape), "stages", [tuple(s.shape) for s in stages])

        image = audio.forward_frontend(wave)
        tokens, audio_stages = audio.forward_intermediates(image)
        out = audio.forward_head(tokens)
        print("HTS-AT image", tuple(image.shape), "stages", [tuple(s.shape) for s in audio_stages])
        print("HTS-AT clipwise", tuple(out["clipwise_output"].shape), "framewise", tuple(out["framewise_output"].shape))

        # timm's indices: the last two stages only, as (B, C, H, W) maps, without running the final norm
        maps = swin.forward_intermediates(frames, indices=2, output_fmt="NCHW", intermediates_only=True)
        print("Swin-V2 last two stages", [tuple(m.shape) for m in maps])

        # one Swin-V2 block, sub-layer by sub-layer: this is where adapters add their residuals
        blk = swin.stages[0].blocks[1]
        x = swin.patch_embed(frames)
        x = x + blk.attn_branch(x)  # + adapter residual (position p1)
        x = x + blk.mlp_branch(x)  # + adapter residual (position p2)
        print("block", blk.input_resolution, "window", blk.window_size, "shift", blk.shift_size, tuple(x.shape))


if __name__ == "__main__":
    main()
