"""all-MiniLM-L6-v2 compressed by named recipes, and its embeddings scored against a reference.

recipes   recipe name -> the transforms it applies to the fp32 graph (refcomp.compress)
score     cosine to reference embeddings (mean / min) and NN@10, the neighbourhood kept
"""

from .recipes import RECIPES, calibration_batches, compress_minilm
from .score import cosine_rows, format_score, nn_at_k, score

__all__ = ["RECIPES", "calibration_batches", "compress_minilm", "cosine_rows", "format_score", "nn_at_k", "score"]
