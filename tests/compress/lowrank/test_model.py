"""Low-rank Conv2d inside a model: SVD of the reshaped kernel (two convs) and Tucker-2 (three convs)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.lowrank.model import factorize_conv, factorize_linear, factorize_model, tucker2_conv
from refcomp.compress.quantize.weight_only import model_bytes
from refcomp.errors import ValidationError
from refcomp.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, evaluate, train

from ..models_for_tests import digits_split

seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 6), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2),
       st.integers(1, 2))
def test_full_rank_factorizations_equal_the_conv(seed, c_in, c_out, k, pad, stride, dilation):
    """Full rank: max |Δy| <= 1e-5·(1 + max|y|) in float32, for any padding / stride / dilation."""
    rng = np.random.default_rng(seed)
    conv = Conv2d(c_in, c_out, k, stride=stride, padding=pad, dilation=dilation, rng=rng)
    conv.bias.data[...] = rng.normal(size=c_out)
    x = rng.normal(size=(3, c_in, 9, 9)).astype(np.float32)
    y = conv.forward(x)
    tol = 1e-5 * (1 + np.abs(y).max())
    svd = factorize_conv(conv, min(c_out, c_in * k * k))
    assert [type(l).__name__ for _, l in svd.named_children()] == ["Conv2d", "Conv2d"]
    assert svd["second"].kernel_size == (1, 1)
    assert np.abs(svd.forward(x) - y).max() <= tol
    tk = tucker2_conv(conv, (min(c_out, c_in * k * k), min(c_in, c_out * k * k)))   # the unfoldings' ranks
    assert tk["first"].kernel_size == (1, 1) and tk["core"].kernel_size == (k, k) and tk["last"].kernel_size == (1, 1)
    assert np.abs(tk.forward(x) - y).max() <= tol


def test_truncated_factorizations_store_fewer_weights():
    conv = Conv2d(20, 50, 5, rng=np.random.default_rng(0))
    svd = factorize_conv(conv, 8)
    assert svd["first"].weight.shape == (8, 20, 5, 5) and svd["second"].weight.shape == (50, 8, 1, 1)
    tk = tucker2_conv(conv, (12, 6))
    assert tk["first"].weight.shape == (6, 20, 1, 1) and tk["core"].weight.shape == (12, 6, 5, 5)
    assert tk["last"].weight.shape == (50, 12, 1, 1)
    for f in (svd, tk):
        assert model_bytes(f) < model_bytes(Sequential(("conv", conv)))


def _digits_cnn():
    rng = np.random.default_rng(0)
    return Sequential(("conv1", Conv2d(1, 8, 3, padding=1, rng=rng)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
                      ("conv2", Conv2d(8, 16, 3, padding=1, rng=rng)), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),
                      ("flatten", Flatten()), ("fc", Linear(16 * 2 * 2, 10, rng=rng)))


@pytest.fixture(scope="module")
def digits_cnn():
    (xtr, ytr), (xte, yte) = digits_split()
    tr, te = (xtr.reshape(-1, 1, 8, 8), ytr), (xte.reshape(-1, 1, 8, 8), yte)
    m = _digits_cnn()
    train(m, tr, epochs=6, batch_size=64, lr=0.05, momentum=0.9, rng=0, progress=False)
    return m, tr, te, evaluate(m, te)["accuracy"]


@pytest.mark.parametrize("rank", [3, (3, 3)], ids=["svd", "tucker2"])
def test_factorized_convs_fine_tune(digits_cnn, rank):
    """The new layers are ordinary Dense Conv2d layers: training updates them and recovers accuracy."""
    m, tr, te, acc = digits_cnn
    assert acc >= 0.9
    f, _ = factorize_model(m, {"conv2": rank})
    assert model_bytes(f) < model_bytes(m)
    before = evaluate(f, te)["accuracy"]
    first = f["conv2"]["first"].weight.to_dense().copy()
    train(f, tr, epochs=2, batch_size=64, lr=0.01, momentum=0.9, rng=0, progress=False)
    after = evaluate(f, te)["accuracy"]
    assert not np.array_equal(f["conv2"]["first"].weight.to_dense(), first)
    assert after > before and after >= acc - 0.06, (before, after, acc)


def test_factorize_model_rejects_bad_ranks(digits_cnn):
    m = digits_cnn[0]
    with pytest.raises(ValidationError, match="ranks"):
        factorize_model(m, {"fc": (2, 2)})
    with pytest.raises(ValidationError, match="ranks"):
        factorize_model(m, {"pool1": 2})
    grouped = Conv2d(4, 4, 3, groups=2, rng=np.random.default_rng(0))
    with pytest.raises(ValidationError, match="groups"):
        factorize_conv(grouped, 2)


def test_svd_replaces_one_layer_by_two(digits):
    m, tr, te, acc = digits
    full = factorize_linear(m["fc1"], rank=64)
    x = te[0][:50]
    np.testing.assert_allclose(full.forward(x), m["fc1"].forward(x), rtol=1e-4, atol=1e-4)   # full rank: exact
    f, _ = factorize_model(m, {"fc1": 8})
    assert model_bytes(f) < model_bytes(m)
    train(f, tr, epochs=3, lr=0.01, rng=0, progress=False)
    assert evaluate(f, te)["accuracy"] >= acc - 0.05
    with pytest.raises(ValidationError, match="ranks"):
        factorize_model(m, {"relu1": 4})


def test_factorize_model_on_a_graph_by_dotted_names():
    """A transformer block's FFN and one attention projection: full rank equals the block, rank r
    stores r·(in + out) weights and the factorized layers take the originals' places."""
    from refcomp.nn import Graph
    from refcomp.nn.blocks import transformer_encoder_block

    block = transformer_encoder_block(16, 4, 32, rng=0).eval()
    x = np.random.default_rng(1).standard_normal((2, 5, 16)).astype(np.float32)
    mask = np.ones((2, 5), np.int64)
    full, _ = factorize_model(block, {"fc1": 16, "fc2": 16, "attn.q_proj": 16})
    assert isinstance(full, Graph) and isinstance(full["fc1"], Sequential)
    assert isinstance(full["attn"].q_proj, Sequential)
    np.testing.assert_allclose(full(x, mask), block(x, mask), atol=2e-5)
    low, report = factorize_model(block, {"fc1": 4})
    assert report["fc1"]["bytes"] == 4 * (16 + 32) * 4 + 32 * 4          # factors + the bias, float32
    assert not np.allclose(low(x, mask), block(x, mask), atol=1e-3)
    assert isinstance(block["fc1"], Linear)                                # the input is untouched
    with pytest.raises(ValidationError, match="ranks"):
        factorize_model(block, {"layer9.fc1": 2})


def test_factorize_model_with_calibration_whitens_each_layer_in_order():
    """With calibration batches every SVD is the whitened one, on the inputs the layer gets from the
    already-factorized layers before it: lower output error than the plain SVD on the same inputs."""
    from ..models_for_tests import small_mlp

    rng = np.random.default_rng(0)
    m = small_mlp(0, sizes=(12, 16, 16, 4))
    x = (rng.normal(size=(256, 12)) * np.exp(rng.normal(size=12))).astype(np.float32)
    batches = [x[:128], x[128:]]
    plain, _ = factorize_model(m, {"fc0": 3, "fc1": 3})
    white, report = factorize_model(m, {"fc0": 3, "fc1": 3}, calibration_batches=batches)
    assert set(report) == {"fc0", "fc1"} and report["fc0"]["output_mse"] > 0
    err = lambda f: float(np.mean((f.forward(x) - m.forward(x)) ** 2))  # noqa: E731
    assert err(white) < 0.5 * err(plain), (err(white), err(plain))
    # fc1 was whitened by what the factorized fc0 feeds it: its report equals the error on those inputs
    h = white["relu0"].forward(white["fc0"].forward(x[:128]))
    w_r = white["fc1"]["second"].weight.to_dense() @ white["fc1"]["first"].weight.to_dense()
    d = h.astype(np.float64) @ (w_r.astype(np.float64) - m["fc1"].weight.to_dense()).T
    np.testing.assert_allclose(report["fc1"]["output_mse"], np.mean(d * d), rtol=1e-5)
    with pytest.raises(ValidationError, match="Tucker-2"):
        factorize_model(_digits_cnn(), {"conv2": (2, 2)}, calibration_batches=[np.zeros((2, 1, 8, 8))])
