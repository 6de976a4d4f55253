"""Mixed precision (docs/precision.md).

casts  float32 -> float16 / bfloat16 rounding, loss scaling, master weights, bit allocation
model  the model-level transform: every weight stored in 16 bits, per-layer bit choice
"""
