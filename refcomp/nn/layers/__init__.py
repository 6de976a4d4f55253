"""Layers with explicit forward and backward (one subject per module)."""

from .activations import GELU, LeakyReLU, ReLU, ReLU6, Sigmoid, Tanh
from .activity_l1 import ActivityL1
from .arithmetic import Add, Div, Mul, Sub
from .attention import MultiHeadAttention
from .constant import Constant
from .conv import Conv2d
from .dropout import Dropout
from .embedding import BertEmbeddings, Embedding
from .flatten import Flatten
from .hard_concrete import HardConcreteGate
from .linear import Linear
from .matmul import MatMul
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .pwl import BinarySign, HardSigmoid, HardTanh
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .quantize import DequantizeLinear, QuantizeLinear
from .shape import Concat, Reshape, Shape, Transpose
from .softmax import Softmax
from .tt_linear import TTLinear

__all__ = ["Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "ReLU", "ReLU6",
           "GELU", "Tanh", "Sigmoid", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten",
           "Dropout", "Embedding", "Add", "Mul", "MatMul", "Softmax", "Concat", "Reshape", "Transpose",
           "Shape", "MultiHeadAttention", "QuantizeLinear", "DequantizeLinear",
           "Sub", "Div", "LeakyReLU", "Constant", "BertEmbeddings", "HardConcreteGate",
           "ActivityL1", "TTLinear", "HardTanh", "HardSigmoid", "BinarySign"]
