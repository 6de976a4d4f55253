"""Files: model files (safetensors / npz with a JSON header), atomic writes; never pickle."""

from .atomic import write_atomic
from .model_file import load_model, model_header, save_model

__all__ = ["save_model", "load_model", "model_header", "write_atomic"]
