"""``refcomp diff``: two models compared layer by layer on the same inputs.

metrics  SQNR, cosine, max abs error, saturated share (one short function each)
run      the layer outputs of a refcomp model / ONNX file (refcomp or onnxruntime),
         matching by name, the rows worst first, the text table
"""

from .metrics import cosine, max_abs_error, saturated_share, sqnr_db
from .run import (
           OUTPUT,
           LayerOutput,
           compare,
           diff_files,
           format_table,
           layer_outputs,
           match_names,
)

__all__ = [
           "OUTPUT",
           "LayerOutput",
           "compare",
           "cosine",
           "diff_files",
           "format_table",
           "layer_outputs",
           "match_names",
           "max_abs_error",
           "saturated_share",
           "sqnr_db",
]
