"""Converters for the DG-SCT / LAVisH AVE reference checkpoints (pure key mapping).

Kinds:

* ``"dgsct-head"``: the reference ``temporal_attn.*`` + ``CMBS.*`` tensors (either or both) ->
  ``temporal.*`` + ``head.*`` (:class:`avperceive.nn.heads.TemporalCMBSHead`, and the same keys in
  :class:`avperceive.models.dgsct.DGSCT`).
* ``"dgsct-ave"``: a whole DG-SCT AVE checkpoint (``best_82.18.pt``: plain state dict, timm 0.6
  Swin-V2 keys) -> :class:`avperceive.models.dgsct.DGSCT`.
* ``"lavish-ave"``: a LAVisH AVE state dict (``main_trans_v2.py`` layout) ->
  :class:`avperceive.models.lavish.LAVisH`.

Keys the reference keeps but never uses are dropped on purpose and reported in ``dropped``:

* ``temporal_attn.*.encoder_layer.*`` / ``*.decoder_layer.*``: the template layers the reference
  passes to its encoder/decoder, which deep-copy them; only the copies (``*.layers.{j}``) are used;
* ``temporal_attn.*_decoder.decoder.layers.{j}.self_attn.*``: decoder self-attention, never called;
* ``CMBS.AVInter.*``, ``CMBS.VAInter.*``: computed by the reference, outputs discarded;
* ``CMBS.video_norm.*``, ``CMBS.audio_norm.*``: never called;
* ``adapter_token_downsampler.*``, ``*.gate_tk``: never called / never read;
* ``swin.head.*`` (21841-way ImageNet-22k head), ``htsat.tscam_conv.*``, ``htsat.head.*``: the
  backbones' classifiers, unused by the AVE model.
"""

from __future__ import annotations

import re

import torch

from ...errors import CheckpointError
from ...state_dict import strip_prefix
from ..convert import ConvertedCheckpoint, register_converter

__all__ = [
    "convert_temporal_attn",
    "convert_cmbs_head",
    "convert_dgsct_head",
    "convert_dgsct_ave",
    "convert_lavish_ave",
    "convert_adapter_families",
    "strip_wrapper_prefix",
]

_PREFIXES_TO_STRIP = ("module.", "model.")

_TEMPORAL_DEAD = (
    (re.compile(r"^\w+_encoder\.encoder_layer\."), "template layer deep-copied by the encoder; never called"),
    (re.compile(r"^\w+_decoder\.decoder_layer\."), "template layer deep-copied by the decoder; never called"),
    (re.compile(r"^\w+_decoder\.decoder\.layers\.\d+\.self_attn\."), "decoder self-attention; never called"),
)

_TEMPORAL_RENAMES = (
    (r"^v_fc\.", "video_proj."),
    (r"^a_fc\.", "audio_proj."),
    (r"^audio_visual_rnn_layer\.audio_rnn\.", "audio_rnn."),
    (r"^audio_visual_rnn_layer\.visual_rnn\.", "video_rnn."),
    (r"^(\w+)_(encoder|decoder)\.affine_matrix\.", r"\1_\2.input_proj."),
    (r"^(\w+)_encoder\.encoder\.layers\.(\d+)\.self_attn\.", r"\1_encoder.layers.\2.self_attn."),
    (r"^(\w+)_decoder\.decoder\.layers\.(\d+)\.multihead_attn\.", r"\1_decoder.layers.\2.cross_attn."),
    (r"^(\w+)_(encoder|decoder)\.\2\.layers\.(\d+)\.norm1\.", r"\1_\2.layers.\3.norm1."),
    (r"^(\w+)_(encoder|decoder)\.\2\.layers\.(\d+)\.norm2\.", r"\1_\2.layers.\3.ffn.norm."),
    (r"^(\w+)_(encoder|decoder)\.\2\.layers\.(\d+)\.(linear[12])\.", r"\1_\2.layers.\3.ffn.\4."),
    (r"^audio_gated\.0\.", "audio_gate."),
    (r"^video_gated\.0\.", "video_gate."),
)

_CMBS_DEAD = (
    (re.compile(r"^(AVInter|VAInter)\."), "CMBS cross-modal interaction; DG-SCT computes it and discards the output"),
    (re.compile(r"^(video_norm|audio_norm)\."), "LayerNorm never called"),
)

_CMBS_RENAMES = (
    (r"^localize_module\.classifier\.", "is_event."),
    (r"^localize_module\.event_classifier\.", "event_classifier."),
    (r"^video_cas\.", "video_cas."),
    (r"^audio_cas\.", "audio_cas."),
)


def _rename(key: str, rules) -> str | None:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return None


def _convert_group(sd, src_prefix, dst_prefix, renames, dead, what):
    out: dict[str, torch.Tensor] = {}
    dropped: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if not key.startswith(src_prefix):
            continue
        rest = key[len(src_prefix):]
        reason = next((r for p, r in dead if p.search(rest)), None)
        if reason is not None:
            dropped[key] = reason
            continue
        new = _rename(rest, renames)
        if new is None:
            unknown.append(key)
        else:
            out[dst_prefix + new] = value
    if unknown:
        raise CheckpointError(f"unknown {what} keys in the reference checkpoint", unexpected=unknown)
    return out, dropped


def convert_temporal_attn(
    sd: dict[str, torch.Tensor], src_prefix: str = "temporal_attn.", dst_prefix: str = "temporal."
):
    """Map the reference ``TemporalAttention`` keys under ``src_prefix`` to ours under ``dst_prefix``.

    Returns ``(state_dict, dropped)``.
    """
    return _convert_group(sd, src_prefix, dst_prefix, _TEMPORAL_RENAMES, _TEMPORAL_DEAD, "temporal_attn")


def convert_cmbs_head(sd: dict[str, torch.Tensor], src_prefix: str = "CMBS.", dst_prefix: str = "head."):
    """Map DG-SCT's trimmed ``CMBS`` head keys under ``src_prefix`` to :class:`CMBSHead` under ``dst_prefix``.

    Returns ``(state_dict, dropped)``.
    """
    return _convert_group(sd, src_prefix, dst_prefix, _CMBS_RENAMES, _CMBS_DEAD, "CMBS")


def strip_wrapper_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.`` (DataParallel) or ``model.`` (Lightning) prefix shared by every key."""
    return strip_prefix(sd, _PREFIXES_TO_STRIP)[0]


def _config_of_head(sd: dict[str, torch.Tensor]) -> dict:
    cfg: dict = {}
    if "temporal.video_proj.weight" in sd:
        w = sd["temporal.video_proj.weight"]
        cfg.update(video_input_dim=int(w.shape[0]), video_dim=int(w.shape[1]))
    if "temporal.audio_proj.weight" in sd:
        w = sd["temporal.audio_proj.weight"]
        cfg.update(audio_input_dim=int(w.shape[0]), audio_dim=int(w.shape[1]))
    if "temporal.audio_gate.weight" in sd:
        cfg["d_model"] = int(sd["temporal.audio_gate.weight"].shape[1])
    if "temporal.video_encoder.layers.0.ffn.linear1.weight" in sd:
        cfg["ffn_dim"] = int(sd["temporal.video_encoder.layers.0.ffn.linear1.weight"].shape[0])
    if "head.event_classifier.weight" in sd:
        cfg["num_classes"] = int(sd["head.event_classifier.weight"].shape[0])
    return cfg


@register_converter(
    "dgsct-head",
    "DG-SCT temporal_attn.* + CMBS.* (either or both) -> temporal.* + head.*",
    architecture="avperceive.nn.heads:TemporalCMBSHead",
)
def convert_dgsct_head(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """DG-SCT ``temporal_attn.*`` + ``CMBS.*`` (either or both) -> ``temporal.*`` + ``head.*``."""
    sd = strip_wrapper_prefix(sd)
    other = sorted(k for k in sd if not k.startswith(("temporal_attn.", "CMBS.")))
    if other:
        raise CheckpointError("dgsct-head expects only temporal_attn.* and CMBS.* keys", unexpected=other)
    temporal, dropped = convert_temporal_attn(sd)
    head, dropped_head = convert_cmbs_head(sd)
    out = {**temporal, **head}
    return ConvertedCheckpoint(out, {**dropped, **dropped_head}, _config_of_head(out))


_FAMILY_RENAME = {
    "audio_adapter_blocks_p1": "audio_p1",
    "vis_adapter_blocks_p1": "video_p1",
    "audio_adapter_blocks_p2": "audio_p2",
    "vis_adapter_blocks_p2": "video_p2",
}


def _adapter_layers(sd: dict[str, torch.Tensor], family: str) -> list[int]:
    pat = re.compile(rf"^{family}\.(\d+)\.")
    return sorted({int(m.group(1)) for k in sd if (m := pat.match(k))})


def convert_adapter_families(sd: dict[str, torch.Tensor], single_adapter_fn, dst_prefix: str = "adapters."):
    """Map the four reference adapter ModuleLists to ``adapters.{audio,video}_{p1,p2}.{i}.*``.

    ``single_adapter_fn(sd, prefix) -> ConvertedCheckpoint`` converts one adapter (from
    :mod:`avperceive.hub.converters.adapters`). Returns ``(state_dict, dropped, num_layers)``.
    """
    out: dict[str, torch.Tensor] = {}
    dropped: dict[str, str] = {}
    counts = set()
    for ref, ours in _FAMILY_RENAME.items():
        layers = _adapter_layers(sd, ref)
        if layers != list(range(len(layers))) or not layers:
            raise CheckpointError(f"adapter family {ref}: expected layers 0..L-1, found {layers}")
        counts.add(len(layers))
        for i in layers:
            conv = single_adapter_fn(sd, prefix=f"{ref}.{i}.")
            out.update({f"{dst_prefix}{ours}.{i}.{k}": v for k, v in conv.state_dict.items()})
            dropped.update(conv.dropped)
    if len(counts) != 1:
        raise CheckpointError(f"the four adapter families have different lengths: {sorted(counts)}")
    return out, dropped, counts.pop()


def _under(prefix: str, dropped: dict[str, str]) -> dict[str, str]:
    """``dropped`` of a sub-converter with its keys named as in the whole checkpoint (under ``prefix``)."""
    return {k if k.startswith(prefix) else prefix + k: reason for k, reason in dropped.items()}


def _swin_backbone(sd: dict[str, torch.Tensor], dst_prefix: str):
    from .swinv2 import convert_swinv2_timm

    conv = convert_swinv2_timm({k: v for k, v in sd.items() if k.startswith("swin.")})
    out: dict[str, torch.Tensor] = {}
    dropped = _under("swin.", conv.dropped)
    for k, v in conv.state_dict.items():
        if k.startswith("head."):
            dropped["swin." + k] = "Swin-V2 ImageNet-22k classifier; unused by the AVE model"
        else:
            out[dst_prefix + k] = v
    return out, dropped


def _add_adapters(sd, single_adapter_fn, out: dict[str, torch.Tensor], dropped: dict[str, str]) -> dict:
    """Convert the four adapter families into ``out`` / ``dropped`` (plus the never-called
    ``adapter_token_downsampler.*``); return the adapter settings read from the shapes."""
    adapters, dropped_ad, _ = convert_adapter_families(sd, single_adapter_fn)
    out.update(adapters)
    dropped.update(dropped_ad)
    unused = (k for k in sd if k.startswith("adapter_token_downsampler."))
    dropped.update({k: "never called by the reference forward" for k in unused})
    lat = out.get("adapters.audio_p1.0.latent.latents")
    return {} if lat is None else {"num_latents": int(lat.shape[0])}


def _check_consumed(sd, out_prefixes: tuple[str, ...], what: str) -> None:
    unknown = sorted(k for k in sd if not k.startswith(out_prefixes))
    if unknown:
        raise CheckpointError(f"unknown keys in the {what} checkpoint", unexpected=unknown)


@register_converter(
    "lavish-ave",
    "LAVisH AVE state dict (swin.*, 4 x 24 adapters, mlp_class*) -> LAVisH",
    architecture="lavish-ave",
)
def convert_lavish_ave(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """LAVisH AVE state dict (``swin.*``, 4 x 24 adapters, ``mlp_class*``) -> ``LAVisH``."""
    from .adapters import convert_lavish_adapter_state_dict

    sd = strip_wrapper_prefix(sd)
    allowed = ("swin.", "mlp_class.", "mlp_class_2.", "adapter_token_downsampler.", *_FAMILY_RENAME)
    _check_consumed(sd, allowed, "LAVisH")
    out, dropped = _swin_backbone(sd, "backbone.")
    cfg = _add_adapters(sd, convert_lavish_adapter_state_dict, out, dropped)
    for ref, ours in (("mlp_class.", "head.0."), ("mlp_class_2.", "head.1.")):
        for k, v in sd.items():
            if k.startswith(ref):
                out[ours + k[len(ref):]] = v
    if "head.1.weight" in out:
        cfg.update(num_classes=int(out["head.1.weight"].shape[0]) - 1, hidden_dim=int(out["head.0.weight"].shape[0]))
    return ConvertedCheckpoint(out, dropped, cfg)


@register_converter(
    "dgsct-ave",
    "official DG-SCT AVE checkpoint (best_82.18.pt: swin, htsat, 4 x 12 adapters, temporal_attn, CMBS) -> DGSCT",
    architecture="dgsct-ave",
)
def convert_dgsct_ave(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """Official DG-SCT AVE checkpoint (``best_82.18.pt``) -> ``DGSCT`` (``dgsct-ave``)."""
    from .adapters import convert_dgsct_adapter_state_dict
    from .htsat import convert_htsat_with

    sd = strip_wrapper_prefix(sd)
    _check_consumed(
        sd, ("swin.", "htsat.", "temporal_attn.", "CMBS.", "adapter_token_downsampler.", *_FAMILY_RENAME), "DG-SCT"
    )
    out, dropped = _swin_backbone(sd, "video_backbone.")
    audio = convert_htsat_with({k: v for k, v in sd.items() if k.startswith("htsat.")})
    out.update({"audio_backbone." + k: v for k, v in audio.state_dict.items()})
    dropped.update(_under("htsat.", audio.dropped))
    cfg = _add_adapters(sd, convert_dgsct_adapter_state_dict, out, dropped)
    for convert_group in (convert_temporal_attn, convert_cmbs_head):
        group, dropped_group = convert_group(sd)
        out.update(group)
        dropped.update(dropped_group)
    cfg.update({k: v for k, v in _config_of_head(out).items() if k not in ("video_dim", "audio_dim")})
    return ConvertedCheckpoint(out, dropped, cfg)
