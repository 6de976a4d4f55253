"""Compression algorithms, one sub-package per family.

Each family holds the array-level algorithm (arrays in, arrays or a weight
format out) and, beside it, the model-level transform that applies it to the
layers of a refcomp.nn model:
quantize   uniform quantization: RTN, GPTQ, low-bit (binary, ternary,
           power-of-two), static / dynamic PTQ, QAT, integer-only models,
           cross-layer equalization, bias correction (docs/gptq_and_ptq.md)
prune      importance criteria, masks, schedules, masked fine-tuning,
           structured pruning, sensitivity, CSR deployment (docs/pruning.md)
share      weight sharing: k-means clustering and trained quantization
           (docs/deep_compression.md §§3-4)
lowrank    truncated SVD and Tucker-2, and the layers they become (docs/lowrank.md)
precision  float16 / bfloat16 storage, loss scaling, bit allocation (docs/precision.md)
distill    knowledge-distillation losses and trainer (docs/distillation.md)

How a compressed weight is *stored* (CSR, relative-index CSR, Clustered,
Huffman-coded fields, QTensor, ...) is refcomp.formats, one layer below;
pipelines that compose several families (Deep Compression) are
refcomp.pipelines, one layer above.
"""
