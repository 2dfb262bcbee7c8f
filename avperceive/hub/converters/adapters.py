"""Converters for single reference adapter modules (kinds ``"dgsct-adapter"``, ``"lavish-adapter"``).

One ``VisualAdapter`` of the official DG-SCT code (haoyi-duan/DG-SCT, ``AVE/nets/net_trans.py``;
38 state-dict keys) or of the LAVisH code (GenjiB/LAVISH, ``AVE/nets/net_trans.py``; 19 keys, 20
with ``net_trans_v2.py``'s unused ``gate_tk``) becomes the state dict of
:class:`avperceive.nn.DGSCTAdapter` / :class:`avperceive.nn.LAVisHAdapter`. Pure key mapping:
1×1 conv kernels are squeezed, nothing else changes. Strict: a missing or unexpected key raises
:class:`~avperceive.errors.CheckpointError` naming the keys; ``gate_tk`` (never read by the
forward) is dropped on purpose and listed in ``dropped``.

:func:`convert_dgsct_adapter_state_dict` / :func:`convert_lavish_adapter_state_dict` take a
``prefix`` (e.g. ``"vis_adapter_blocks_p1.3."``) so whole-model converters can reuse them. Kinds
``"dgsct-adapter-bank"`` / ``"lavish-adapter-bank"`` extract the four adapter families of a whole
checkpoint (``{audio,vis}_adapter_blocks_p{1,2}.<i>.*``, any prefix such as Lightning's ``model.``)
into the layout of :class:`avperceive.nn.AdapterBank` (``{audio,video}_{p1,p2}.<i>.*``).
"""

from __future__ import annotations

import re

import torch

from ...errors import CheckpointError
from ..convert import ConvertedCheckpoint, register_converter

__all__ = [
    "DGSCT_ADAPTER_KEY_MAP",
    "LAVISH_ADAPTER_KEY_MAP",
    "convert_dgsct_adapter_state_dict",
    "convert_lavish_adapter_state_dict",
    "convert_dgsct_adapter_bank",
    "convert_lavish_adapter_bank",
]

_BN_BUFFERS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# reference key -> our key (bottleneck shared by both adapters)
_BOTTLENECK_MAP = {
    "gate": "bottleneck.gate",
    "ln_before.weight": "bottleneck.norm_in.weight",
    "ln_before.bias": "bottleneck.norm_in.bias",
    "down_sampler.weight": "bottleneck.down_weight",
    "up_sampler.weight": "bottleneck.up_weight",
    "ln_post.weight": "bottleneck.norm_out.weight",
    "ln_post.bias": "bottleneck.norm_out.bias",
    **{f"bn1.{b}": f"bottleneck.bn_down.{b}" for b in _BN_BUFFERS},
    **{f"bn2.{b}": f"bottleneck.bn_up.{b}" for b in _BN_BUFFERS},
}

LAVISH_ADAPTER_KEY_MAP: dict[str, str] = {
    "my_tokens": "latent.latents",
    "gate_av": "latent.gate",
    **_BOTTLENECK_MAP,
}

DGSCT_ADAPTER_KEY_MAP: dict[str, str] = {
    **LAVISH_ADAPTER_KEY_MAP,
    "conv_adapter.weight": "token_proj.weight",
    "conv_adapter.bias": "token_proj.bias",
    "fc.weight": "channel_proj.weight",
    "fc.bias": "channel_proj.bias",
    "fc_affine_audio_1.weight": "chan_guide.weight",
    "fc_affine_audio_1.bias": "chan_guide.bias",
    "fc_affine_video_1.weight": "chan_own.weight",
    "fc_affine_video_1.bias": "chan_own.bias",
    "fc_affine_bottleneck.weight": "chan_squeeze.weight",
    "fc_affine_bottleneck.bias": "chan_squeeze.bias",
    "fc_affine_v_c_att.weight": "chan_excite.weight",
    "fc_affine_v_c_att.bias": "chan_excite.bias",
    "fc_affine_video_2.weight": "spat_own.weight",
    "fc_affine_video_2.bias": "spat_own.bias",
    "fc_affine_audio_2.weight": "spat_guide.weight",
    "fc_affine_audio_2.bias": "spat_guide.bias",
    "fc_affine_v_s_att.weight": "spat_score.weight",
    "fc_affine_v_s_att.bias": "spat_score.bias",
}

_DEAD = {"gate_tk": "unused by the reference forward (scalar initialised to 1, never read)"}
_SQUEEZE = {"conv_adapter.weight", "down_sampler.weight", "up_sampler.weight"}  # [out, in, 1, 1] -> [out, in]


def _convert(
    sd: dict[str, torch.Tensor], key_map: dict[str, str], *, prefix: str, optional_dead: bool, what: str
) -> ConvertedCheckpoint:
    own = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    dead_required = not optional_dead
    expected = set(key_map) | (set(_DEAD) if dead_required else set())
    missing = sorted(prefix + k for k in expected if k not in own)
    unexpected = sorted(prefix + k for k in own if k not in key_map and k not in _DEAD)
    if missing or unexpected:
        raise CheckpointError(f"not a reference {what} state dict", missing=missing, unexpected=unexpected)
    out: dict[str, torch.Tensor] = {}
    for ref_key, our_key in key_map.items():
        t = own[ref_key]
        if ref_key in _SQUEEZE:
            if t.dim() != 4 or t.shape[2:] != (1, 1):
                raise CheckpointError(
                    f"{prefix}{ref_key}: expected a 1x1 conv kernel [out, in, 1, 1], got {tuple(t.shape)}"
                )
            t = t[:, :, 0, 0]
        out[our_key] = t.clone()
    dropped = {prefix + k: reason for k, reason in _DEAD.items() if k in own}
    return ConvertedCheckpoint(state_dict=out, dropped=dropped)


def _bottleneck_config(sd: dict[str, torch.Tensor]) -> dict:
    down, dim = sd["bottleneck.down_weight"], sd["bottleneck.norm_in.weight"].shape[0]
    return {"reduction": dim // down.shape[0], "groups": dim // down.shape[1]}


def convert_dgsct_adapter_state_dict(sd: dict[str, torch.Tensor], prefix: str = "") -> ConvertedCheckpoint:
    """Reference DG-SCT ``VisualAdapter`` keys under ``prefix`` -> :class:`DGSCTAdapter` keys (+ its config)."""
    res = _convert(sd, DGSCT_ADAPTER_KEY_MAP, prefix=prefix, optional_dead=False, what="DG-SCT adapter")
    s = res.state_dict
    res.config = {
        "dim": s["channel_proj.weight"].shape[0],
        "tokens": s["token_proj.weight"].shape[0],
        "other_dim": s["channel_proj.weight"].shape[1],
        "other_tokens": s["token_proj.weight"].shape[1],
        "num_latents": s["latent.latents"].shape[0],
        **_bottleneck_config(s),
    }
    return res


def convert_lavish_adapter_state_dict(sd: dict[str, torch.Tensor], prefix: str = "") -> ConvertedCheckpoint:
    """Reference LAVisH ``VisualAdapter`` keys under ``prefix`` -> :class:`LAVisHAdapter` keys (+ its config)."""
    res = _convert(sd, LAVISH_ADAPTER_KEY_MAP, prefix=prefix, optional_dead=True, what="LAVisH adapter")
    s = res.state_dict
    lat = s["latent.latents"]
    res.config = {"dim": lat.shape[1], "num_latents": lat.shape[0], **_bottleneck_config(s)}
    return res


@register_converter("dgsct-adapter", "one DG-SCT VisualAdapter (38 keys) -> avperceive.nn.DGSCTAdapter")
def convert_dgsct_adapter(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """One DG-SCT VisualAdapter (38 keys) -> avperceive.nn.DGSCTAdapter."""
    return convert_dgsct_adapter_state_dict(sd)


@register_converter("lavish-adapter", "one LAVisH VisualAdapter (19/20 keys) -> avperceive.nn.LAVisHAdapter")
def convert_lavish_adapter(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """One LAVisH VisualAdapter (19/20 keys) -> avperceive.nn.LAVisHAdapter."""
    return convert_lavish_adapter_state_dict(sd)


_BANK_FAMILIES = {
    "audio_adapter_blocks_p1": "audio_p1",
    "audio_adapter_blocks_p2": "audio_p2",
    "vis_adapter_blocks_p1": "video_p1",
    "vis_adapter_blocks_p2": "video_p2",
}
_BANK_KEY = re.compile(r"^(?P<prefix>.*?)(?P<family>(audio|vis)_adapter_blocks_p[12])\.(?P<layer>\d+)\.(?P<rest>.+)$")


def _convert_bank(sd: dict[str, torch.Tensor], kind: str) -> ConvertedCheckpoint:
    """The four adapter families of a whole DG-SCT / LAVisH checkpoint -> ``AdapterBank`` keys + config."""
    prefixes, layers = set(), set()
    for k in sd:
        m = _BANK_KEY.match(k)
        if m:
            prefixes.add(m["prefix"])
            layers.add(int(m["layer"]))
    if not layers:
        raise CheckpointError(f"no '{{audio,vis}}_adapter_blocks_p{{1,2}}.<i>.' keys found for a {kind} adapter bank")
    if len(prefixes) != 1:
        raise CheckpointError(f"adapter keys under several prefixes {sorted(prefixes)}; convert one model at a time")
    prefix = prefixes.pop()
    n = max(layers) + 1
    if layers != set(range(n)):
        raise CheckpointError(f"adapter layers are not 0..{n - 1}: {sorted(layers)}")
    one = convert_dgsct_adapter_state_dict if kind == "dgsct" else convert_lavish_adapter_state_dict
    out: dict[str, torch.Tensor] = {}
    dropped: dict[str, str] = {}
    per_layer: dict[str, list[dict]] = {}
    for ref_family, our_family in _BANK_FAMILIES.items():
        per_layer[our_family] = []
        for i in range(n):
            res = one(sd, prefix=f"{prefix}{ref_family}.{i}.")
            out.update({f"{our_family}.{i}.{k}": v for k, v in res.state_dict.items()})
            dropped.update(res.dropped)
            per_layer[our_family].append(res.config)
    used = {k for k in sd if _BANK_KEY.match(k)}
    dropped.update({k: "not part of the adapter bank" for k in sd if k not in used})
    first = per_layer["video_p1"][0]
    options = {k: first[k] for k in ("num_latents", "reduction", "groups")}
    if kind == "dgsct":
        layer_cfg = [
            {"video_dim": v["dim"], "audio_dim": a["dim"], "video_tokens": v["tokens"], "audio_tokens": a["tokens"]}
            for v, a in zip(per_layer["video_p1"], per_layer["audio_p1"])
        ]
    else:
        layer_cfg = [{"dim": v["dim"]} for v in per_layer["video_p1"]]
    return ConvertedCheckpoint(state_dict=out, dropped=dropped, config={"kind": kind, "layers": layer_cfg, **options})


@register_converter("dgsct-adapter-bank", "the 4x12 adapters of a DG-SCT checkpoint -> avperceive.nn.AdapterBank")
def convert_dgsct_adapter_bank(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """The 4x12 adapters of a DG-SCT checkpoint (any key prefix, e.g. Lightning's ``model.``) -> AdapterBank.

    ``AdapterBank(**result.config)`` builds the matching bank; every non-adapter key is listed in
    ``dropped``.
    """
    return _convert_bank(sd, "dgsct")


@register_converter("lavish-adapter-bank", "the 4x24 adapters of a LAVisH checkpoint -> avperceive.nn.AdapterBank")
def convert_lavish_adapter_bank(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """The 4x24 adapters of a LAVisH checkpoint -> AdapterBank (config in ``result.config``)."""
    return _convert_bank(sd, "lavish")
