"""Compression algorithms: arrays (or models) in, compressed arrays (or models) out.

Deep Compression building blocks (docs/deep_compression.md, numbered equations):

prune     importance criteria, masks (unstructured, N:M, blocks, rows/filters,
          channels; per-layer or global), schedules, mask application
cluster   k-means weight sharing (linear / density / random init) and
          trained-quantization centroid gradients
huffman   canonical Huffman coding with a serialisable header
storage   Deep Compression's relative-index CSR and the per-layer size table

On refcomp.nn models (imported on use):

prune.model, prune.structured   masks on named layers, masked fine-tuning, schedules;
          structured pruning that shrinks the model
sensitivity           accuracy vs sparsity per layer (data + plot)
deploy                pruned weights -> CSRMatrix, inference through the CSR kernels
trained_quantization  k-means per layer + centroid fine-tuning (§3.3)
deep_compression      the whole pipeline, its report; ``refcomp compress`` (cli)
compressed_file       the compressed model as a file (the bit streams the size table counts)

The other sub-modules (quantize, lowrank, distill, precision) are imported
on use and document themselves.
"""

from . import cluster, huffman, prune, storage
from .cluster import KMeansResult, centroid_gradients, kmeans, update_centroids
from .huffman import HuffmanCode
from .storage import RelativeIndexCSR, size_table, size_table_markdown

__all__ = [
    "prune",
    "cluster",
    "huffman",
    "storage",
    "kmeans",
    "KMeansResult",
    "centroid_gradients",
    "update_centroids",
    "HuffmanCode",
    "RelativeIndexCSR",
    "size_table",
    "size_table_markdown",
]
