"""Weight-only RTN / GPTQ on a model graph: the inputs of each layer come from forward hooks."""

import numpy as np
import pytest

from refcomp.compress.quantize.weight_only import quantize_weights
from refcomp.formats import QTensor
from refcomp.nn.blocks import transformer_encoder_block
from refcomp.nn.layers import Linear


@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_quantize_a_transformer_block(method):
    g = transformer_encoder_block(16, 2, 32, mask=False, rng=0).eval()
    x = np.random.default_rng(1).standard_normal((64, 6, 16)).astype(np.float32)
    q, report = quantize_weights(g, bits=8, method=method, calibration_x=x, batch_size=16)
    linear = [n for n, m in g.named_modules() if isinstance(m, Linear)]
    assert set(report) == set(linear) and "attn.q_proj" in report
    for n, m in q.named_modules():
        if isinstance(m, Linear):
            assert isinstance(m.weight, QTensor)
            assert report[n]["output_mse"] >= 0
    y, y_q = g.forward(x), q.forward(x)
    assert np.abs(y_q - y).max() < 0.05 * np.abs(y).max()   # 8-bit weights: a small change
    # the input model is untouched
    assert not any(isinstance(m.weight, QTensor) for _, m in g.named_modules() if isinstance(m, Linear))


def test_gptq_uses_the_inputs_of_the_partly_quantized_model():
    """Layer 2's Hessian comes from layer 1's *quantized* output (eq. G1): 2-bit layer 1 changes it."""
    g = transformer_encoder_block(8, 2, 16, mask=False, rng=3).eval()
    x = np.random.default_rng(4).standard_normal((32, 4, 8)).astype(np.float32)
    names = [n for n, m in g.named_modules() if isinstance(m, Linear)]
    last = names[-1]
    _, fine = quantize_weights(g, bits={last: 4}, method="gptq", calibration_x=x, batch_size=8)
    _, coarse = quantize_weights(g, bits={**{n: 2 for n in names[:-1]}, last: 4}, method="gptq",
                                 calibration_x=x, batch_size=8)
    assert fine[last]["output_mse"] != coarse[last]["output_mse"]


def test_a_layer_run_twice_per_forward_is_refused():
    """GPTQ's inputs come from one forward hook call per batch; a layer reused inside a forward is ambiguous."""
    from refcomp.errors import ValidationError
    from refcomp.nn import Module

    class Twice(Module):
        def __init__(self):
            self.fc = Linear(4, 4, rng=0)

        def forward(self, x):
            return self.fc(self.fc(x))

    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    with pytest.raises(ValidationError, match="once per batch"):
        quantize_weights(Twice(), bits=8, method="gptq", calibration_x=x)


@pytest.mark.parametrize("bits, group_size", [(8, None), (4, 16), (3, None)])
def test_a_weight_only_cnn_saves_and_loads_bit_for_bit(bits, group_size, tmp_path):
    """Kernels are held as their (out, C·kh·kw) im2col matrices; the model file accepts that shape."""
    from refcomp.io import load_model, save_model

    from ..models_for_tests import small_cnn

    q, rep = quantize_weights(small_cnn(4), bits=bits, group_size=group_size)
    assert q["conv2"].weight.shape == (4, 3 * 2 * 2) and rep["conv2"]["bytes"] == q["conv2"].weight.nbytes
    back = load_model(save_model(q, tmp_path / "m.safetensors"))
    assert back["conv2"].weight.qparams == q["conv2"].weight.qparams
    x = np.random.default_rng(0).random((2, 1, 10, 10), dtype=np.float32)
    assert back.forward(x).tobytes() == q.forward(x).tobytes()
