"""Attention for every model: the one place that chooses kernels and precision.

Every attention (the transformer's self-attention over spacetime patches and cross-attention
to the text, the VAE's per-frame attention) calls `attention(q, k, v, mask)`, which runs
`torch.nn.functional.scaled_dot_product_attention` on (B, heads, L, d) tensors. Keeping the
call here means a change of kernel or precision policy is a change to this file only.

Kernel choice, by the case:

- No mask (self-attention): PyTorch's dispatcher picks the fastest fused kernel it has for
  the device and dtype: FlashAttention-2 or cuDNN attention on recent NVIDIA GPUs in bf16/fp16,
  the memory-efficient kernel otherwise, and its fused flash kernel on a CPU.
- Key-padding mask (cross-attention to padded text): the mask becomes a boolean
  (B, 1, 1, Lk) attention mask broadcast over heads and queries. The flash kernels take no
  arbitrary mask, so the dispatcher falls back to the memory-efficient kernel on CUDA; text is
  short (tens of tokens), so that costs little. A batch without padding should pass
  ``mask=None`` to keep the fastest kernel: callers know that without a device sync, this
  module does not check it.

Precision: q, k and v must share one dtype (the kernels require it); under CUDA autocast
they are all cast to the autocast dtype. Softmax statistics are kept in float32 inside the
fused kernels whatever the input dtype.

Every query row needs at least one True key in ``mask``: a row with none has no defined
softmax and comes out NaN (the transformer checks its text masks for that up front).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["attention", "key_padding_mask"]


def key_padding_mask(mask: Tensor) -> Tensor:
    """A key-padding mask (B, Lk) bool, True at real keys, as an attention mask (B, 1, 1, Lk)
    that broadcasts over heads and queries."""
    return mask[:, None, None, :]  # (B, 1, 1, Lk)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, L, d) tensors; returns (B, heads, Lq, d).

    ``q`` is (B, heads, Lq, d), ``k`` and ``v`` (B, heads, Lk, d). ``mask`` (B, Lk) bool, True
    at keys to attend to, hides padding keys from every query. Shapes are checked (cheaply,
    without looking at values) and a mismatch raises ValueError naming it.
    """
    _check_shapes(q, k, v, mask)
    attn_mask = None if mask is None else key_padding_mask(mask)  # (B, 1, 1, Lk)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, Lq, d)


def _check_shapes(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(
            "attention takes (B, heads, L, d) tensors, got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(
            "attention needs q (B, heads, Lq, d) and k, v (B, heads, Lk, d), got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if mask is not None and (mask.dtype != torch.bool or mask.shape != (k.shape[0], k.shape[2])):
        raise ValueError(
            f"attention's key-padding mask must be bool (B, Lk) = {(k.shape[0], k.shape[2])}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
