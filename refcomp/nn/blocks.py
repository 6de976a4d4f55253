"""Building blocks as Graphs: a ResNet basic block and a post-LN transformer encoder block.

residual_block (He et al. 2016, "basic block", Fig. 2 / option B shortcut)::

    x ─ conv1 3×3/s ─ bn1 ─ relu1 ─ conv2 3×3 ─ bn2 ─┐
    │                                                add ─ relu2 ─ y
    └─ (skip_conv 1×1/s ─ skip_bn, when the shape changes) ─┘

transformer_encoder_block (Vaswani et al. 2017; post-LN as BERT / MiniLM)::

    h = LayerNorm(x + MultiHeadAttention(x, mask))            attn, add1, ln1
    y = LayerNorm(h + W₂·GELU(W₁·h + b₁) + b₂)                fc1, gelu, fc2, add2, ln2

The feed-forward Linear layers act on rows, so h (N, T, D) is reshaped to
(N·T, D) rows and back (Reshape with the run-time Shape of h, as ONNX does).
Dropout is left out: these blocks are for compression, which runs in eval mode.
"""

from __future__ import annotations

from .graph import Graph
from .layers import (GELU, Add, BatchNorm2d, Conv2d, LayerNorm, Linear, MultiHeadAttention, ReLU, Reshape,
                     Shape)
from .module import as_rng

__all__ = ["residual_block", "transformer_encoder_block"]


def residual_block(in_channels: int, out_channels: int, stride: int = 1, *, rng=0,
                   dtype="float32") -> Graph:
    """ResNet basic block on x (N, in_channels, H, W) -> (N, out_channels, ⌈H/s⌉, ⌈W/s⌉).

    The skip is the identity when the shape is kept, else a 1×1 convolution of
    stride ``stride`` followed by batch norm. Convolutions have no bias (the
    batch norm after each has one). Weights drawn from ``rng`` (Generator or seed)
    with He-normal initialisation, as in the paper.
    """
    g = as_rng(rng)
    conv = dict(bias=False, rng=g, init="he_normal", dtype=dtype)
    m = Graph(inputs=["x"])
    m.add("conv1", Conv2d(in_channels, out_channels, 3, stride, 1, **conv), "x")
    m.add("bn1", BatchNorm2d(out_channels, dtype=dtype), "conv1")
    m.add("relu1", ReLU(), "bn1")
    m.add("conv2", Conv2d(out_channels, out_channels, 3, 1, 1, **conv), "relu1")
    m.add("bn2", BatchNorm2d(out_channels, dtype=dtype), "conv2")
    skip = "x"
    if stride != 1 or in_channels != out_channels:
        m.add("skip_conv", Conv2d(in_channels, out_channels, 1, stride, 0, **conv), "x")
        skip = m.add("skip_bn", BatchNorm2d(out_channels, dtype=dtype), "skip_conv")
    m.add("add", Add(), "bn2", skip)
    m.add("relu2", ReLU(), "add")
    m.outputs = ["relu2"]
    return m


def transformer_encoder_block(d_model: int, num_heads: int, d_ff: int, *, eps: float = 1e-12,
                              approximate: str = "none", mask: bool = True, rng=0,
                              dtype="float32") -> Graph:
    """Post-LN encoder block on x (N, T, d_model) [and mask (N, T), 1 = keep] -> (N, T, d_model).

    eps : LayerNorm epsilon (BERT's 1e-12).
    approximate : the GELU form, "none" (erf, BERT) or "tanh".
    mask : whether the graph has the padding-mask input (inputs ["x", "mask"], else ["x"]).
    rng : Generator or seed for the weights (attention, then fc1, fc2); None gives
        zero weights, to be loaded (refcomp.models.minilm_l6).
    """
    g = None if rng is None else as_rng(rng)
    m = Graph(inputs=["x", "mask"] if mask else ["x"])
    m.add("attn", MultiHeadAttention(d_model, num_heads, rng=g, dtype=dtype), *m.inputs)
    m.add("add1", Add(), "x", "attn")
    m.add("ln1", LayerNorm(d_model, eps, dtype=dtype), "add1")
    m.add("rows", Reshape([-1, d_model]), "ln1")                   # (N, T, D) -> (N·T, D)
    m.add("fc1", Linear(d_model, d_ff, rng=g, dtype=dtype), "rows")
    m.add("gelu", GELU(approximate), "fc1")
    m.add("fc2", Linear(d_ff, d_model, rng=g, dtype=dtype), "gelu")
    m.add("ln1_shape", Shape(), "ln1")
    m.add("ffn", Reshape(), "fc2", "ln1_shape")                    # back to (N, T, D)
    m.add("add2", Add(), "ln1", "ffn")
    m.add("ln2", LayerNorm(d_model, eps, dtype=dtype), "add2")
    m.outputs = ["ln2"]
    return m
