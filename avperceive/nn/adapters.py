"""Cross-modal adapters: DG-SCT's Ω and the LAVisH adapter.

* :class:`DGSCTAdapter` — Duan et al., "Cross-modal Prompts: Adapting Large Pre-trained Models for
  Audio-Visual Downstream Tasks" (DG-SCT, NeurIPS 2023), the adapter Ω of eqs. 1 and 3 of the
  EoPMA paper (Guo, Tørresen, Jensenius, TISMIR 2026, doi 10.5334/tismir.223). Own stream
  ``X ∈ R^{N×C}``, other stream ``Y ∈ R^{M×C_o}``, K latent tokens, bottleneck ratio r, G groups:

  1. cross-modal projection  ``Ŷ = (W_tok Y + b_tok 1ᵀ) W_chᵀ + 1 b_chᵀ``  (``W_tok ∈ R^{N×M}`` mixes
     token positions, ``W_ch ∈ R^{C×C_o}`` channels) → ``Ŷ ∈ R^{N×C}``;
  2. latent tokens (no projections, no 1/√d):  ``L' = L + softmax_N(L Ŷᵀ) Ŷ``,
     ``X1 = X + g_av · softmax_K(X L'ᵀ) L'``;
  3. channel attention guided by the other stream:  ``ȳ = mean_n Ŷ``,
     ``q = mean_n[ReLU(W_a1 ȳ) ⊙ ReLU(W_v1 X1_n)]``,  ``c = σ(W_c ReLU(W_b q)) ∈ R^C``;
  4. spatial attention guided by the other stream:  ``s_n = w_sᵀ[ReLU(W_v2 (X1_n ⊙ (1+c))) ⊙
     ReLU(W_a2 ȳ)] + b_s``; the returned pooling map is ``p = softmax_n(tanh s) ∈ R^N``;
  5. modulation with the fixed constants α = 0.3, β = 0.05:  ``X2 = X1 ⊙ (1 − α + α c + β σ(s))``;
  6. gated bottleneck:  ``g · LN_post(BN(Conv_G(ReLU(BN(Conv_G(LN_before(X2)))))))`` with grouped
     1×1 convolutions C → C/r → C (G groups, no bias) and a scalar gate g (initialised to 0).

  The adapter returns the residual of step 6 and the pooling map ``p``; the caller adds the residual.

* :class:`LAVisHAdapter` — Lin et al., "Vision Transformers are Parameter-Efficient Audio-Visual
  Learners" (CVPR 2023), §3.2: steps 2 and 6 only (both streams share C; no projection, no
  channel/spatial attention): ``g · Bottleneck(X + g_av · LatentAttn(X, Y))``.

Two independent switches choose how the same weights are evaluated:

* ``attn_impl`` (the attention of steps 2–4): ``"reference"`` writes the equations in the order
  above with the token projection materialised; ``"fused"`` (default) factors the gather of step 2
  through ``W_tok`` so that ``Ŷ [N, C]`` is never built (``L Ŷᵀ = (L W_ch Yᵀ) W_tokᵀ + …``, one
  GEMM over the folded batch) and folds the channel gate ``(1+c)`` into ``W_v2``. The scatter (and
  on the reference path the whole latent attention) is an :func:`~avperceive.nn.attention.attend` call.
* ``fold_bn`` (the bottleneck of step 6, not attention): ``True`` (default) folds the
  LayerNorm/BatchNorm affines and the output gate into the two bottleneck matmuls (grouped
  convolutions as block-diagonal matmuls; BatchNorm only in eval mode, since in training it uses
  batch statistics); ``False`` evaluates the plain formula with grouped ``conv1d`` and BatchNorm modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from .attention import AttnImpl, check_attn_impl
from .latent_attention import LatentTokenAttention, latent_attention_pair
from .linear import linear
from .tokens import check_token_pair, check_tokens
from .weight_cache import weight_derived

__all__ = [
    "DGSCTAdapter",
    "LAVisHAdapter",
    "GatedBottleneck",
    "lavish_adapter_pair",
    "MODULATION_ALPHA",
    "MODULATION_BETA",
]

MODULATION_ALPHA = 0.3  # weight of the channel map c in step 5 (hard-coded in DG-SCT)
MODULATION_BETA = 0.05  # weight of the spatial map σ(s) in step 5 (hard-coded in DG-SCT)


class GatedBottleneck(nn.Module):
    """``g · LN_post(BN_up(Conv_up(ReLU(BN_down(Conv_down(LN_before(X)))))))`` over channels.

    Conv_down (C → C/r) and Conv_up (C/r → C) are grouped 1×1 convolutions without bias, stored
    as ``down_weight [C/r, C/G]`` and ``up_weight [C, C/(rG)]`` (the squeezed conv kernels).
    BatchNorm statistics are over the batch and token axes (as BatchNorm2d on ``[B, C, N, 1]``).

    Args:
        dim: C. reduction: r. groups: G.
        fold_bn: ``True`` (default) evaluates the affine-folded form: LN_before's affine goes into
            Conv_down, the gate into LN_post's affine and, when BatchNorm uses running statistics
            (eval mode), both BatchNorms into the two matmuls, ``W' = diag(γ/√(σ²+ε)) W``,
            ``b' = (b − μ) γ/√(σ²+ε) + β``. In training BatchNorm normalises with batch statistics
            and updates its running ones, so it is applied as a module. ``False`` evaluates the
            plain formula (grouped ``conv1d``, BatchNorm and LayerNorm modules). Same outputs
            within float rounding either way; settable on a built module.

    Shapes: ``[B, N, C] -> [B, N, C]``.
    """

    def __init__(self, dim: int, reduction: int = 8, groups: int = 2, *, fold_bn: bool = True):
        super().__init__()
        hidden = dim // reduction
        if dim % reduction or hidden % groups or dim % groups:
            raise ConfigError(
                f"dim {dim} must be divisible by reduction {reduction}, and dim/reduction by groups {groups}"
            )
        self.dim, self.hidden, self.groups = int(dim), int(hidden), int(groups)
        self.fold_bn = bool(fold_bn)
        self.norm_in = nn.LayerNorm(dim)
        self.down_weight = nn.Parameter(torch.empty(hidden, dim // groups))
        self.bn_down = nn.BatchNorm1d(hidden)
        self.up_weight = nn.Parameter(torch.empty(dim, hidden // groups))
        self.bn_up = nn.BatchNorm1d(dim)
        self.norm_out = nn.LayerNorm(dim)
        self.gate = nn.Parameter(torch.zeros(1))
        for w in (self.down_weight, self.up_weight):  # Conv2d's default init (fan_in = in-channels per group)
            nn.init.kaiming_uniform_(w, a=5**0.5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, groups={self.groups}, fold_bn={self.fold_bn}"

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.norm_in(x), "b n c -> b c n")
        h = F.conv1d(h, self.down_weight.unsqueeze(-1).to(h.dtype), groups=self.groups)
        h = torch.relu(self.bn_down(h))
        h = F.conv1d(h, self.up_weight.unsqueeze(-1).to(h.dtype), groups=self.groups)
        h = rearrange(self.bn_up(h), "b c n -> b n c")
        return self.gate * self.norm_out(h)

    def _dense(self, grouped: torch.Tensor) -> torch.Tensor:
        # Grouped 1x1 conv kernel [out, in/G] -> block-diagonal dense matrix [out, in].
        return torch.block_diag(*grouped.chunk(self.groups, dim=0))

    def _bn_uses_batch_statistics(self) -> bool:
        return any(bn.training or bn.running_var is None for bn in (self.bn_down, self.bn_up))

    def _fold(self, dt: torch.dtype, with_bn: bool) -> tuple[torch.Tensor | None, ...]:
        """The folded weights in ``dt``: ``(w1, b1, w2, b2, out_w, out_b)``; with ``with_bn`` the
        BatchNorms' running statistics are folded in too, otherwise ``b1 = LN_before``'s bias term and
        ``b2 = None``. Weight-only, so memoised for inference
        (:func:`~avperceive.nn.weight_cache.weight_derived`)."""
        bns = (self.bn_down, self.bn_up)
        sources = (self.gate, self.norm_out.weight, self.norm_out.bias, self.norm_in.weight, self.norm_in.bias,
                   self.down_weight, self.up_weight) + tuple(
            t for bn in bns for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var))

        def compute() -> tuple[torch.Tensor | None, ...]:
            out_w = self.gate * self.norm_out.weight  # gate folded into LN_post's affine
            out_b = self.gate * self.norm_out.bias
            dense_down = self._dense(self.down_weight)  # [C/r, C]
            w_down = dense_down * self.norm_in.weight  # LN_before affine folded in
            b_down = dense_down @ self.norm_in.bias
            w_up = self._dense(self.up_weight)
            if not with_bn:
                folded: tuple[torch.Tensor | None, ...] = (w_down, b_down, w_up, None, out_w, out_b)
            else:
                s1 = self.bn_down.weight * torch.rsqrt(self.bn_down.running_var + self.bn_down.eps)
                s2 = self.bn_up.weight * torch.rsqrt(self.bn_up.running_var + self.bn_up.eps)
                folded = (w_down * s1[:, None], (b_down - self.bn_down.running_mean) * s1 + self.bn_down.bias,
                          w_up * s2[:, None], self.bn_up.bias - self.bn_up.running_mean * s2, out_w, out_b)
            return tuple(None if t is None else t.to(dt) for t in folded)

        return weight_derived(self, f"fold_{dt}_{with_bn}", sources, compute)

    def _folded(self, x: torch.Tensor) -> torch.Tensor:
        c = self.dim
        h = F.layer_norm(x, (c,), eps=self.norm_in.eps)
        if self._bn_uses_batch_statistics():  # batch statistics: BatchNorm cannot be folded
            w_down, b_down, w_up, _, out_w, out_b = self._fold(h.dtype, with_bn=False)
            h = F.linear(h, w_down, b_down)
            h = torch.relu(self.bn_down(h.reshape(-1, self.hidden))).reshape(*h.shape)
            h = F.linear(h, w_up)
            h = self.bn_up(h.reshape(-1, c)).reshape(*h.shape)
        else:
            w1, b1, w2, b2, out_w, out_b = self._fold(h.dtype, with_bn=True)
            h = torch.relu(F.linear(h, w1, b1))
            h = F.linear(h, w2, b2)
        return F.layer_norm(h, (c,), out_w, out_b, self.norm_out.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, N, C] -> [B, N, C]`` (already multiplied by the gate)."""
        check_tokens("x", x, None, self.dim)
        return self._folded(x) if self.fold_bn else self._plain(x)


class _AdapterSwitches(nn.Module):
    """Mixin of the two adapters: ``attn_impl`` switches their attention, ``fold_bn`` their bottleneck.

    Subclasses hold ``self.latent`` (:class:`LatentTokenAttention`) and ``self.bottleneck``
    (:class:`GatedBottleneck`).
    """

    latent: LatentTokenAttention
    bottleneck: GatedBottleneck

    @property
    def attn_impl(self) -> str:
        """``"fused"`` or ``"reference"``: the path of every attention op of the adapter."""
        return self.latent.attn_impl

    @attn_impl.setter
    def attn_impl(self, value: AttnImpl) -> None:
        self.set_attn_impl(value)

    def set_attn_impl(self, attn_impl: AttnImpl) -> _AdapterSwitches:
        """Switch the attention path (``"fused"`` / ``"reference"``); the bottleneck is untouched."""
        check_attn_impl(attn_impl)
        for m in self.modules():
            if isinstance(m, LatentTokenAttention):
                m.attn_impl = attn_impl
        return self

    @property
    def fold_bn(self) -> bool:
        """Whether the bottleneck evaluates its affine-folded form (see :class:`GatedBottleneck`)."""
        return self.bottleneck.fold_bn

    @fold_bn.setter
    def fold_bn(self, value: bool) -> None:
        self.set_fold_bn(value)

    def set_fold_bn(self, fold_bn: bool = True) -> _AdapterSwitches:
        """Fold (``True``) or do not fold (``False``) the bottleneck's norms; returns the adapter."""
        for m in self.modules():
            if isinstance(m, GatedBottleneck):
                m.fold_bn = bool(fold_bn)
        return self


class LAVisHAdapter(_AdapterSwitches):
    """LAVisH adapter: latent-token cross attention, then the gated bottleneck.

    ``residual = g · Bottleneck(X1)``, ``X1 = X + g_av · softmax_K(X L'ᵀ) L'``,
    ``L' = L + softmax_M(L Yᵀ) Y`` (see :class:`LatentTokenAttention`).

    Args:
        dim: C, channel width of both streams.
        num_latents: K (LAVisH AVE README: 2; default of the code: 32).
        reduction: r, bottleneck width C/r (``--Adapter_downsample``, 8).
        groups: G, groups of the two 1×1 convolutions (``--num_conv_group``, 2).
        attn_impl: ``"fused"`` (default) or ``"reference"`` for the latent-token attention.
        latent_init: ``"uniform"`` (AVE code) or ``"zeros"`` (AVS/AVQA code).
        fold_bn: fold the bottleneck's norms (default ``True``, see :class:`GatedBottleneck`).

    Shapes: ``forward(x [B, N, C], y [B, M, C]) -> residual [B, N, C]``; the caller adds it to ``x``.
    Both gates start at 0, so a fresh adapter returns zeros.
    """

    def __init__(
        self,
        dim: int,
        num_latents: int = 2,
        reduction: int = 8,
        groups: int = 2,
        *,
        attn_impl: AttnImpl = "fused",
        latent_init: str = "uniform",
        fold_bn: bool = True,
    ):
        super().__init__()
        self.dim = int(dim)
        self.latent = LatentTokenAttention(dim, num_latents, attn_impl=attn_impl, latent_init=latent_init)
        self.bottleneck = GatedBottleneck(dim, reduction, groups, fold_bn=fold_bn)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Residual for the own stream.

        Args:
            x: own tokens ``[B, N, C]``.
            y: other-stream tokens ``[B, M, C]`` (same C and dtype).

        Returns:
            ``[B, N, C]``.
        """
        check_tokens("x", x, None, self.dim)
        check_tokens("y", y, None, self.dim)
        check_token_pair(x, y)
        return self.bottleneck(x + self.latent(x, y))


def lavish_adapter_pair(
    first: LAVisHAdapter, second: LAVisHAdapter, x1: torch.Tensor, x2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both adapters of a LAVisH position at once: ``(first(x1, x2), second(x2, x1))``.

    The two latent-token attentions run batched over ``2B`` (:func:`latent_attention_pair`, when
    both streams have the same shape); the two bottlenecks have their own weights and BatchNorm
    statistics and run one after the other. Shapes: ``x1 [B, N, C], x2 [B, M, C] -> ([B, N, C], [B, M, C])``.
    """
    for name, t in (("x1", x1), ("x2", x2)):
        check_tokens(name, t, None, first.dim)
    if second.dim != first.dim:
        raise ConfigError(f"adapters of one pair must share the width C, got {first.dim} and {second.dim}")
    l1, l2 = latent_attention_pair(first.latent, second.latent, x1, x2)
    return first.bottleneck(x1 + l1), second.bottleneck(x2 + l2)


class DGSCTAdapter(_AdapterSwitches):
    """DG-SCT adapter Ω: projection, latent tokens, dual-guided channel/spatial attention, bottleneck.

    Args:
        dim: C, own-stream width.
        tokens: N, own-stream token count (the token projection ``W_tok`` is ``[N, M]``).
        other_dim: C_o, other-stream width.
        other_tokens: M, other-stream token count.
        num_latents: K (DG-SCT AVE: 32).
        reduction: r (8). groups: G (2).
        attn_impl: ``"fused"`` (default) or ``"reference"`` for steps 2–4 (see the module docstring).
        fold_bn: fold the bottleneck's norms (default ``True``, see :class:`GatedBottleneck`).

    Parameters (ours ← reference ``VisualAdapter`` key): ``token_proj`` ← ``conv_adapter`` (Linear
    M → N over the token axis), ``channel_proj`` ← ``fc``, ``latent.latents`` ← ``my_tokens``,
    ``latent.gate`` ← ``gate_av``, ``chan_guide``/``chan_own``/``chan_squeeze``/``chan_excite`` ←
    ``fc_affine_audio_1``/``fc_affine_video_1``/``fc_affine_bottleneck``/``fc_affine_v_c_att``,
    ``spat_own``/``spat_guide``/``spat_score`` ← ``fc_affine_video_2``/``fc_affine_audio_2``/
    ``fc_affine_v_s_att``, ``bottleneck.*`` ← ``ln_before``, ``down_sampler``, ``bn1``, ``up_sampler``,
    ``bn2``, ``ln_post``, ``gate``. (The reference's ``audio``/``video`` names mean *other*/*own*:
    the same class serves both modalities.)

    Shapes: ``forward(x [B, N, C], y [B, M, C_o]) -> (residual [B, N, C], pooling_map [B, N])``; the
    caller adds the residual to ``x``; ``pooling_map`` sums to 1 over N (``pooled = einsum("bn,bnc->bc")``).
    """

    def __init__(
        self,
        dim: int,
        tokens: int,
        other_dim: int,
        other_tokens: int,
        num_latents: int = 32,
        reduction: int = 8,
        groups: int = 2,
        *,
        attn_impl: AttnImpl = "fused",
        fold_bn: bool = True,
    ):
        super().__init__()
        if dim % 2:
            raise ConfigError(f"dim must be even (the attention layers use C/2), got {dim}")
        self.dim, self.tokens = int(dim), int(tokens)
        self.other_dim, self.other_tokens = int(other_dim), int(other_tokens)
        half = dim // 2
        self.token_proj = nn.Linear(other_tokens, tokens)
        self.channel_proj = nn.Linear(other_dim, dim)
        self.latent = LatentTokenAttention(dim, num_latents, attn_impl=attn_impl)
        self.chan_guide = nn.Linear(dim, dim)
        self.chan_own = nn.Linear(dim, dim)
        self.chan_squeeze = nn.Linear(dim, half)
        self.chan_excite = nn.Linear(half, dim)
        self.spat_own = nn.Linear(dim, half)
        self.spat_guide = nn.Linear(dim, half)
        self.spat_score = nn.Linear(half, 1)
        self.bottleneck = GatedBottleneck(dim, reduction, groups, fold_bn=fold_bn)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, tokens={self.tokens}, other_dim={self.other_dim}, other_tokens={self.other_tokens}"

    # -- reference path: the equations in order ---------------------------------------------------
    def _reference(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # 1. projection over the token axis (1x1 conv whose channels are token positions), then channels
        y_tok = torch.einsum("nm,bmc->bnc", self.token_proj.weight.to(y.dtype), y)
        y_tok = y_tok + rearrange(self.token_proj.bias.to(y.dtype), "n -> 1 n 1")
        y_hat = self.channel_proj(y_tok)  # [B, N, C]
        # 2. latent tokens
        x1 = x + self.latent(x, y_hat)
        # 3. channel attention guided by the other stream
        y_bar = y_hat.mean(dim=1)  # [B, C]
        q = (torch.relu(self.chan_guide(y_bar)).unsqueeze(1) * torch.relu(self.chan_own(x1))).mean(dim=1)
        c = torch.sigmoid(self.chan_excite(torch.relu(self.chan_squeeze(q))))  # [B, C]
        # 4. spatial attention guided by the other stream
        x_c = x1 * (c.unsqueeze(1) + 1)
        s = self.spat_score(torch.relu(self.spat_own(x_c)) * torch.relu(self.spat_guide(y_bar)).unsqueeze(1))
        pooling_map = torch.softmax(torch.tanh(s.squeeze(-1)), dim=-1)  # [B, N]
        # 5. modulation
        factor = MODULATION_ALPHA * c.unsqueeze(1) + MODULATION_BETA * torch.sigmoid(s) + 1 - MODULATION_ALPHA
        x2 = x1 * factor
        # 6. gated bottleneck
        return self.bottleneck(x2), pooling_map

    # -- fused path ------------------------------------------------------------------------------
    def _fused_weights(self, dt: torch.dtype) -> dict[str, torch.Tensor]:
        """The input-independent factors of the fused path in ``dt``, memoised for inference.

        ``w_tok [N, M]``, ``b_tok [N]``, ``w_ch [C, C_o]``, ``lat [K, C]``, ``w_row = W_ch 1 [C]``,
        ``lat_ch = L W_ch [K, C_o]``, ``lat_row = L w_row [K]``, ``w_tok_mean = mean_n W_tok [M]`` and
        ``y_bar_bias = mean(b_tok) w_row + b_ch [C]`` (see :meth:`_fused`); recomputed whenever a weight
        changes or autograd needs them (:func:`~avperceive.nn.weight_cache.weight_derived`).
        """
        sources = (self.token_proj.weight, self.token_proj.bias, self.channel_proj.weight, self.channel_proj.bias,
                   self.latent.latents)

        def compute() -> dict[str, torch.Tensor]:
            w_tok, b_tok = self.token_proj.weight.to(dt), self.token_proj.bias.to(dt)
            w_ch, b_ch = self.channel_proj.weight.to(dt), self.channel_proj.bias.to(dt)
            lat = self.latent.latents.to(dt)
            w_row = w_ch.sum(dim=1)
            return {"w_tok": w_tok, "b_tok": b_tok, "w_ch": w_ch, "b_ch": b_ch, "lat": lat, "w_row": w_row,
                    "lat_ch": lat @ w_ch, "lat_row": lat @ w_row, "w_tok_mean": w_tok.mean(dim=0),
                    "y_bar_bias": b_tok.mean() * w_row + b_ch}

        return weight_derived(self, f"fused_weights_{dt}", sources, compute)

    def _fused(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dt = x.dtype
        fw = self._fused_weights(dt)
        w_tok, b_tok, w_ch, b_ch = fw["w_tok"], fw["b_tok"], fw["w_ch"], fw["b_ch"]  # [N, M], [N], [C, C_o], [C]
        lat, w_row = fw["lat"], fw["w_row"]  # [K, C], W_ch 1 [C]
        # 1+2 (gather) without building Ŷ = W_tok Y W_chᵀ + b_tok w_rowᵀ + 1 b_chᵀ:
        #   L Ŷᵀ = ((L W_ch) Yᵀ) W_tokᵀ + (L w_row) b_tokᵀ + const_n  (the constant cancels in softmax_N)
        #   The keys of this softmax are the weight W_tok [N, M] (head width M, up to 4096) and the
        #   values need P b_tok as well as P W_tok, so it stays matmul + softmax here: routed through
        #   attend (SDPA, values [W_tok | b_tok]) it measured 2.4x slower at the stage-0 video size.
        lat_y = torch.matmul(fw["lat_ch"], y.transpose(1, 2))  # [B, K, M]
        scores = torch.matmul(lat_y, w_tok.t()) + torch.outer(fw["lat_row"], b_tok)  # one GEMM over (B K) rows
        probs = torch.softmax(scores, dim=-1)  # [B, K, N]
        #   softmax(L Ŷᵀ) Ŷ = ((P W_tok) Y) W_chᵀ + (P b_tok) w_rowᵀ + b_ch
        gathered = torch.matmul(torch.matmul(probs, w_tok), y) @ w_ch.t()
        gathered = gathered + (probs @ b_tok).unsqueeze(-1) * w_row + b_ch
        latents = lat + gathered  # L' [B, K, C]
        #   ȳ = mean_n Ŷ = (mean_n W_tok) Y W_chᵀ + mean(b_tok) w_row + b_ch
        y_bar = (fw["w_tok_mean"] @ y) @ w_ch.t() + fw["y_bar_bias"]  # [B, C]
        # 2 (scatter): softmax_K(X L'ᵀ) L'
        x1 = x + self.latent.gate.to(dt) * self.latent.scatter(x, latents)
        # 3: mean_n[a ⊙ ReLU(W_v1 X1_n)] = a ⊙ mean_n ReLU(W_v1 X1_n)
        own = linear(x1, self.chan_own.weight, self.chan_own.bias, activation="relu")  # ReLU in the GEMM epilogue
        q = torch.relu(self.chan_guide(y_bar)) * own.mean(dim=1)
        c = torch.sigmoid(self.chan_excite(torch.relu(self.chan_squeeze(q))))  # [B, C]
        # 4: W_v2 (X1 ⊙ (1+c)) = X1 (W_v2 diag(1+c))ᵀ when there are more tokens than channels (the
        #    per-sample weight is then smaller than the scaled tokens); w_sᵀ[h ⊙ a] = h (w_s ⊙ a)
        if self.tokens > self.dim:
            w_own = self.spat_own.weight.to(dt).unsqueeze(0) * (c + 1).unsqueeze(1)  # [B, C/2, C]
            h = torch.baddbmm(self.spat_own.bias.to(dt).unsqueeze(0), x1, w_own.mT)  # [B, N, C/2]
        else:
            h = self.spat_own(x1 * (c + 1).unsqueeze(1))
        h = torch.relu(h)
        w_score = self.spat_score.weight.to(dt) * torch.relu(self.spat_guide(y_bar))  # [B, C/2]
        s = torch.matmul(h, w_score.unsqueeze(-1)).squeeze(-1) + self.spat_score.bias.to(dt)  # [B, N]
        pooling_map = torch.softmax(torch.tanh(s), dim=-1)
        # 5: modulation
        x2 = x1 * (MODULATION_ALPHA * c + (1 - MODULATION_ALPHA)).unsqueeze(1)
        x2 = torch.addcmul(x2, x1, (MODULATION_BETA * torch.sigmoid(s)).unsqueeze(-1))
        # 6
        return self.bottleneck(x2), pooling_map

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual for the own stream and the spatial pooling map.

        Args:
            x: own tokens ``[B, N, C]``.
            y: other-stream tokens ``[B, M, C_o]`` (same dtype and batch).

        Returns:
            ``(residual [B, N, C], pooling_map [B, N])``.
        """
        check_tokens("x", x, self.tokens, self.dim)
        check_tokens("y", y, self.other_tokens, self.other_dim)
        check_token_pair(x, y)
        if self.attn_impl == "reference":
            return self._reference(x, y)
        return self._fused(x, y)
