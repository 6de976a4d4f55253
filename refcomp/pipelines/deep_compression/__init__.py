"""The Deep Compression pipeline on a model (config.py, run.py, report.py): prune → retrain → cluster → fine-tune centroids → Huffman.

Han, Mao, Dally 2016, "Deep Compression" (arXiv:1510.00149), Fig. 1:

1. **prune** (§2): magnitude (or another criterion) pruning to a per-layer ratio, in R prune → retrain
   rounds; round r (1…R) prunes layer l to s_l · (1 − (1 − r/R)³) (the cubic ramp
   of Zhu & Gupta 2017, D.12, taken over rounds), masks persist through the
   retraining (refcomp.compress.prune.model.MaskedOptimizer);
2. **quantize** (§3): k-means weight sharing of the surviving weights with
   2^b_l linear-initialised centroids per layer, then centroid fine-tuning by
   summed gradients (D.16, D.17; refcomp.compress.share.trained_quantization);
3. **encode** (§2, §4): relative-index CSR with b_idx-bit gaps and b_l-bit
   cluster indices, then canonical Huffman coding of both fields
   (refcomp.formats.relative_csr, D.21, D.22).

The accuracy reported for the compressed model is measured on weights
*decoded from the stored bit fields* (RelativeIndexCSR.to_dense), and again
through the CSR kernels (refcomp.compress.prune.deploy) and, with ``save_to``,
after writing the compressed model file and reading it back with
``refcomp.io.load_model`` (the compact encoding of the model file,
refcomp.io.compact_file: the layers hold the RelativeIndexCSR, whose
fields are the coded bits), so the table describes exactly the model
that was evaluated. Biases are kept as float32 and counted
separately (the paper's tables count weights only).
"""

from .config import PRESETS, PipelineConfig
from .report import write_report
from .run import PipelineResult, load_into, run_pipeline, stored_model

__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline", "load_into", "stored_model", "write_report",
           "PRESETS"]
