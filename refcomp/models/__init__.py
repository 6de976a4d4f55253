"""Reference models: the LeNets built from a seed, and the pretrained all-MiniLM-L6-v2.

* :mod:`refcomp.models.lenet` — LeNet-300-100, LeNet-5 (Caffe) and a digits MLP,
  randomly initialised from an explicit seed (:func:`build` by name).
* :mod:`refcomp.models.minilm_l6` — the all-MiniLM-L6-v2 sentence encoder as a
  model graph with its pretrained weights (:func:`minilm`) and the sentence
  embedding around it (:func:`embed`).
"""

from .lenet import MODELS, build, digits_mlp, lenet5, lenet_300_100
from .minilm_l6 import embed, minilm, tokenize

__all__ = ["lenet_300_100", "lenet5", "digits_mlp", "MODELS", "build", "minilm", "embed", "tokenize"]
