"""Files: model files (safetensors, npz or the compact encoding, one JSON header), atomic writes; never pickle.

The earlier Deep Compression file (.rcdc, compressed_file) is read by its converter
refcomp.pipelines.deep_compression.load_into.
"""

from .atomic import write_atomic
from .model_file import load_model, model_header, save_model

__all__ = ["save_model", "load_model", "model_header", "write_atomic"]
