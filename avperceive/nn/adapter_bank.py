"""AdapterBank: the 4 × L cross-modal adapters of a two-stream host, as one swappable module.

DG-SCT (Duan et al., NeurIPS 2023) and LAVisH (Lin et al., CVPR 2023) put four adapter families
into a frozen audio–video backbone pair: for every adapted layer i, an audio and a video adapter at
the attention position (``p1``, Ω in eq. 1 of the EoPMA paper) and at the MLP position (``p2``,
Ωʸ in eq. 3). EoPMA (Guo, Tørresen, Jensenius, TISMIR 2026) keeps several such sets ("causal",
"reduced") with the same architecture and mixes their residuals, so the set is a unit of its own:
built, saved, loaded and swapped into a host (``host.adapters = bank``) independently of the host.

State-dict layout: ``{audio,video}_{p1,p2}.{i}.<adapter key>`` (e.g. ``video_p1.3.latent.latents``).
``bank.save(path)`` writes one safetensors file whose metadata holds the bank's config, so
``AdapterBank.load(path)`` rebuilds it without any other file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..modality import STREAM_ALIASES, STREAMS
from ..state_dict import load_state_dict_strict
from .adapters import DGSCTAdapter, LAVisHAdapter
from .attention import AttnImpl, check_attn_impl

__all__ = ["AdapterBank", "DGSCT_AVE_LAYERS"]

MODALITIES = STREAMS  # the adapted streams, audio first (state-dict names audio_p1, video_p1, ...)
POSITIONS = ("p1", "p2")
_POSITION_ALIASES = {"p1": "p1", "1": "p1", "attn": "p1", "p2": "p2", "2": "p2", "mlp": "p2"}
_METADATA_KEY = "avperceive.adapter_bank"

# The 12 paired layers of DG-SCT AVE (Swin-V2-L 192 px + HTS-AT AudioSet), as in the official DG-SCT code
# (``haoyi-duan/DG-SCT``, ``AVE/nets/net_trans.py``).
DGSCT_AVE_LAYERS: list[dict[str, int]] = [
    {"video_dim": cv, "audio_dim": ca, "video_tokens": nv, "audio_tokens": na}
    for cv, ca, nv, na, repeat in ((192, 96, 2304, 4096, 2), (384, 192, 576, 1024, 2), (768, 384, 144, 256, 6),
                                   (1536, 768, 36, 64, 2))
    for _ in range(repeat)
]


def _canonical(modality: str, position: str | int) -> tuple[str, str]:
    m = STREAM_ALIASES.get(str(modality).lower())
    p = _POSITION_ALIASES.get(str(position).lower())
    if m is None:
        raise KeyError(f"unknown modality {modality!r}; use 'audio' or 'video'")
    if p is None:
        raise KeyError(f"unknown position {position!r}; use 'p1' (attention) or 'p2' (MLP)")
    return m, p


class AdapterBank(nn.Module):
    """The audio/video × p1/p2 adapters of every adapted layer.

    Args:
        kind: ``"dgsct"`` (:class:`DGSCTAdapter`) or ``"lavish"`` (:class:`LAVisHAdapter`).
        layers: one dict per adapted layer. DG-SCT: ``{"video_dim", "audio_dim", "video_tokens",
            "audio_tokens"}`` (the video adapter has own = video, other = audio; the audio adapter the
            reverse). LAVisH: ``{"dim"}`` (both streams share the width at a block).
        attn_impl: ``"fused"`` (default) or ``"reference"`` for the attention of every adapter.
        fold_bn: fold the bottleneck norms of every adapter (default ``True``; see
            :class:`~avperceive.nn.adapters.GatedBottleneck`). Like ``attn_impl`` a way of evaluating
            the same weights, not part of :attr:`config`.
        **options: adapter options shared by all layers (``num_latents``, ``reduction``, ``groups``;
            LAVisH also ``latent_init``).

    Indexing: ``bank["video", "p1", 3]`` or ``bank.get("video", "p1", 3)`` (also ``"v"``/``"a"``,
    positions ``1``/``2``); ``bank.family("audio", "p2")`` or ``bank["audio_p2"]`` is the
    ``nn.ModuleList`` of one family; ``keys()/values()/items()`` iterate the families like an
    ``nn.ModuleDict``, so a bank can stand where a host keeps a ModuleDict of the four families.
    """

    def __init__(
        self, kind: str, layers: list[dict], *, attn_impl: AttnImpl = "fused", fold_bn: bool = True, **options
    ):
        super().__init__()
        if kind not in ("dgsct", "lavish"):
            raise ConfigError(f"AdapterBank kind must be 'dgsct' or 'lavish', got {kind!r}")
        if not layers:
            raise ConfigError("AdapterBank needs at least one layer")
        self.kind = kind
        self.layers = [dict(layer) for layer in layers]
        self.options = dict(options)
        check_attn_impl(attn_impl)
        for m in MODALITIES:
            for p in POSITIONS:
                family = nn.ModuleList(self._build(m, layer, attn_impl, fold_bn) for layer in self.layers)
                setattr(self, f"{m}_{p}", family)

    def _build(self, modality: str, layer: dict, attn_impl: AttnImpl, fold_bn: bool) -> nn.Module:
        try:
            if self.kind == "lavish":
                return LAVisHAdapter(layer["dim"], attn_impl=attn_impl, fold_bn=fold_bn, **self.options)
            own, other = ("video", "audio") if modality == "video" else ("audio", "video")
            return DGSCTAdapter(
                layer[f"{own}_dim"], layer[f"{own}_tokens"], layer[f"{other}_dim"], layer[f"{other}_tokens"],
                attn_impl=attn_impl, fold_bn=fold_bn, **self.options,
            )
        except (KeyError, TypeError) as err:
            msg = f"bad AdapterBank layer {layer} / options {self.options} for kind {self.kind!r}: {err}"
            raise ConfigError(msg) from err

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def dgsct(
        cls,
        video_dims: list[int],
        audio_dims: list[int],
        video_tokens: list[int],
        audio_tokens: list[int],
        *,
        num_latents: int = 32,
        reduction: int = 8,
        groups: int = 2,
        attn_impl: AttnImpl = "fused",
        fold_bn: bool = True,
    ) -> AdapterBank:
        """DG-SCT bank from per-layer lists (video width, audio width, video tokens, audio tokens)."""
        sizes = {len(video_dims), len(audio_dims), len(video_tokens), len(audio_tokens)}
        if len(sizes) != 1:
            raise ConfigError("video_dims, audio_dims, video_tokens and audio_tokens must have one entry per layer")
        layers = [
            {"video_dim": int(cv), "audio_dim": int(ca), "video_tokens": int(nv), "audio_tokens": int(na)}
            for cv, ca, nv, na in zip(video_dims, audio_dims, video_tokens, audio_tokens)
        ]
        return cls(
            "dgsct", layers, attn_impl=attn_impl, fold_bn=fold_bn,
            num_latents=num_latents, reduction=reduction, groups=groups,
        )

    @classmethod
    def dgsct_ave(cls, **kwargs) -> AdapterBank:
        """The 12-layer DG-SCT AVE bank (Swin-V2-L 192 px + HTS-AT; ≈188.5 M parameters)."""
        cols = {k: [layer[k] for layer in DGSCT_AVE_LAYERS] for k in DGSCT_AVE_LAYERS[0]}
        return cls.dgsct(cols["video_dim"], cols["audio_dim"], cols["video_tokens"], cols["audio_tokens"], **kwargs)

    @classmethod
    def lavish(
        cls,
        dims: list[int],
        *,
        num_latents: int = 2,
        reduction: int = 8,
        groups: int = 2,
        latent_init: str = "uniform",
        attn_impl: AttnImpl = "fused",
        fold_bn: bool = True,
    ) -> AdapterBank:
        """LAVisH bank: one width per adapted block (Swin-V2-L: ``[192]*2 + [384]*2 + [768]*18 + [1536]*2``)."""
        layers = [{"dim": int(d)} for d in dims]
        return cls(
            "lavish", layers, attn_impl=attn_impl, fold_bn=fold_bn,
            num_latents=num_latents, reduction=reduction, groups=groups, latent_init=latent_init,
        )

    # -- access ------------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def family(self, modality: str, position: str | int) -> nn.ModuleList:
        """The ``nn.ModuleList`` of one family, e.g. ``bank.family("audio", "p2")``."""
        m, p = _canonical(modality, position)
        return getattr(self, f"{m}_{p}")

    def get(self, modality: str, position: str | int, layer: int) -> nn.Module:
        """The adapter of ``modality`` ('audio'|'video') at ``position`` ('p1'|'p2') of ``layer``."""
        fam = self.family(modality, position)
        if not -len(fam) <= layer < len(fam):
            raise IndexError(f"layer {layer} out of range for a bank of {len(fam)} layers")
        return fam[layer]

    def __getitem__(self, key: tuple | str) -> nn.Module:
        if isinstance(key, str) and key in self.family_names():
            return getattr(self, key)  # ModuleDict-style: bank["audio_p1"] is that family's ModuleList
        if not isinstance(key, tuple) or len(key) != 3:
            raise KeyError(
                f"index an AdapterBank as bank[modality, position, layer] (e.g. bank['video', 'p1', 3]) "
                f"or by family name {self.family_names()}, got {key!r}"
            )
        return self.get(*key)

    @staticmethod
    def family_names() -> tuple[str, ...]:
        """``("audio_p1", "video_p1", "audio_p2", "video_p2")``."""
        return tuple(f"{m}_{p}" for p in POSITIONS for m in MODALITIES)

    def keys(self) -> tuple[str, ...]:
        """Family names (``nn.ModuleDict``-style, so a bank can replace a ModuleDict of families)."""
        return self.family_names()

    def values(self) -> list[nn.ModuleList]:
        """The four family ``nn.ModuleList``s."""
        return [getattr(self, k) for k in self.family_names()]

    def items(self) -> list[tuple[str, nn.ModuleList]]:
        """``(family name, nn.ModuleList)`` pairs."""
        return [(k, getattr(self, k)) for k in self.family_names()]

    def named_adapters(self) -> Iterator[tuple[tuple[str, str, int], nn.Module]]:
        """``((modality, position, layer), adapter)`` for every adapter, layer-major."""
        for i in range(len(self.layers)):
            for p in POSITIONS:
                for m in MODALITIES:
                    yield (m, p, i), getattr(self, f"{m}_{p}")[i]

    def forward(self, *args, **kwargs):
        raise TypeError("AdapterBank is a container; call its adapters: bank['video', 'p1', i](video, audio)")

    # -- configuration -----------------------------------------------------------------------------
    @property
    def attn_impl(self) -> str:
        return next(a for _, a in self.named_adapters()).attn_impl

    @attn_impl.setter
    def attn_impl(self, value: AttnImpl) -> None:
        self.set_attn_impl(value)

    def set_attn_impl(self, attn_impl: AttnImpl) -> AdapterBank:
        """Switch the attention of every adapter to ``"fused"`` or ``"reference"``; returns the bank."""
        check_attn_impl(attn_impl)
        for _, adapter in self.named_adapters():
            adapter.set_attn_impl(attn_impl)
        return self

    @property
    def fold_bn(self) -> bool:
        return next(a for _, a in self.named_adapters()).fold_bn

    @fold_bn.setter
    def fold_bn(self, value: bool) -> None:
        self.set_fold_bn(value)

    def set_fold_bn(self, fold_bn: bool = True) -> AdapterBank:
        """Fold (``True``) or do not fold the bottleneck norms of every adapter; returns the bank."""
        for _, adapter in self.named_adapters():
            adapter.set_fold_bn(fold_bn)
        return self

    @property
    def config(self) -> dict:
        """JSON-serialisable constructor arguments: ``AdapterBank(**bank.config)`` rebuilds it."""
        return {"kind": self.kind, "layers": [dict(x) for x in self.layers], **self.options}

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, num_layers={len(self.layers)}, options={self.options}"

    def same_layout(self, other: AdapterBank) -> bool:
        """True if ``other`` has the same kind, layer sizes and options (so it can replace this bank)."""
        return isinstance(other, AdapterBank) and other.config == self.config

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bank to one ``.safetensors`` file (config in its metadata). Returns the path."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={_METADATA_KEY: json.dumps(self.config)})
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        attn_impl: AttnImpl = "fused",
        fold_bn: bool = True,
        device: str | torch.device = "cpu",
    ) -> AdapterBank:
        """Rebuild a bank written by :meth:`save`; loading is strict (``CheckpointError`` naming keys)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such file")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if _METADATA_KEY not in meta:
            raise CheckpointError(f"{path}: not an AdapterBank file (no {_METADATA_KEY!r} metadata)")
        config = json.loads(meta[_METADATA_KEY])
        bank = cls(**config, attn_impl=attn_impl, fold_bn=fold_bn)
        bank.load_strict(load_file(str(path), device=str(device)), source=str(path))
        return bank.to(device)

    def load_strict(self, state_dict: dict[str, torch.Tensor], *, source: str = "") -> None:
        """``load_state_dict`` that raises ``CheckpointError`` naming missing/unexpected/mismatched keys."""
        load_state_dict_strict(self, state_dict, source=source)
