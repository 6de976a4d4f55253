"""refcomp.nn: layers with explicit forward/backward, losses, optimizers, training.

Everything is NumPy; every layer's backward is checked against finite
differences in float64 (tests/nn). See docs/nn.md for the equations.
"""

from . import blocks, init, losses, optim, regularizers, schedules
from .blocks import residual_block, transformer_encoder_block
from .fold import fold_batchnorm, fold_pair
from .graph import Graph
from .layers import (GELU, AvgPool2d, BatchNorm1d, BertEmbeddings, BatchNorm2d, Conv2d, Dropout, Embedding, Flatten,
                     GlobalAvgPool2d, LayerNorm, LeakyReLU, Linear, MaxPool2d, ReLU, ReLU6, Sigmoid,
                     Tanh, HardTanh, HardSigmoid, BinarySign)
from .layers import ActivityL1, HardConcreteGate
from .layers import (Add, Concat, Constant, Div, MatMul, Mul, MultiHeadAttention, Reshape, Shape, Softmax,
                     Sub, Transpose)
from .losses import CrossEntropyLoss, KLDivLoss, MSELoss
from .module import LAYER_TYPES, HookHandle, Module, Parameter, Sequential, run_batch, run_with_hooks
from .optim import SGD, Adam, AdamW
from .train import evaluate, train

__all__ = [
    "Module", "Parameter", "Sequential", "Graph", "HookHandle", "run_with_hooks", "run_batch", "LAYER_TYPES",
    "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "ReLU", "ReLU6", "GELU", "Tanh",
    "Sigmoid", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten", "Dropout", "Embedding", "BertEmbeddings",
    "LeakyReLU", "Add", "Sub", "Mul", "Div", "Constant", "MatMul", "Softmax", "Concat", "Reshape",
    "Transpose", "Shape", "MultiHeadAttention", "HardConcreteGate", "ActivityL1", "HardTanh", "HardSigmoid",
    "BinarySign",
    "residual_block", "transformer_encoder_block",
    "CrossEntropyLoss", "KLDivLoss", "MSELoss", "SGD", "Adam", "AdamW",
    "fold_batchnorm", "fold_pair", "train", "evaluate",
    "blocks", "init", "losses", "optim", "regularizers", "schedules",
]
