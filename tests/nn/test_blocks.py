"""The building blocks (refcomp.nn.blocks) compute their papers' formulas: a ResNet basic block and a
post-LN transformer encoder block, each checked against the formula written out here in NumPy on the
block's own initial weights, which are themselves the stated draws from the seed."""

import math

import numpy as np
import pytest

from refcomp.nn.blocks import residual_block, transformer_encoder_block

BN_SCALE = 1 / math.sqrt(1 + 1e-5)       # a fresh BatchNorm in eval mode: (x − 0) / sqrt(1 + ε), γ = 1, β = 0


def _conv(x, w, stride, pad):
    """y[n,o,i,j] = Σ_{c,u,v} w[o,c,u,v] · xp[n, c, i·s + u, j·s + v], xp zero-padded by ``pad``."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for u in range(kh):
        for v in range(kw):
            patch = xp[:, :, u:u + stride * (oh - 1) + 1:stride, v:v + stride * (ow - 1) + 1:stride]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, u, v])
    return y


def _he_normal_draws(seed, shapes):
    """He et al.'s N(0, 2 / fan_in), fan_in = in_channels · kh · kw, drawn in order from one seed."""
    g = np.random.default_rng(seed)
    return [g.normal(0.0, math.sqrt(2 / (s[1] * s[2] * s[3])), size=s) for s in shapes]


@pytest.mark.parametrize("cin,cout,stride", [(3, 3, 1), (3, 5, 1), (3, 3, 2), (2, 4, 2)])
def test_residual_block_is_the_basic_block(cin, cout, stride):
    """y = relu(bn2(conv2(relu(bn1(conv1 3×3/s (x))))) + skip), skip = x or bn(conv 1×1/s (x))."""
    block = residual_block(cin, cout, stride, rng=5, dtype="float64").eval()
    project = stride != 1 or cin != cout
    shapes = [(cout, cin, 3, 3), (cout, cout, 3, 3)] + [(cout, cin, 1, 1)] * project
    w = _he_normal_draws(5, shapes)
    names = ["conv1", "conv2"] + ["skip_conv"] * project
    for name, want in zip(names, w):
        np.testing.assert_array_equal(block[name].weight.data, want)
        assert block[name].bias is None                 # the batch norm after it has the bias
    assert ("skip_conv" in block) == project and ("skip_bn" in block) == project
    x = np.random.default_rng(0).standard_normal((2, cin, 6, 5))
    h = np.maximum(_conv(x, w[0], stride, 1) * BN_SCALE, 0)
    skip = _conv(x, w[2], stride, 0) * BN_SCALE if project else x
    want = np.maximum(_conv(h, w[1], 1, 1) * BN_SCALE + skip, 0)
    y = block.forward(x)
    assert y.shape == (2, cout, -(-6 // stride), -(-5 // stride))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_residual_block_defaults():
    """Stride 1, seed 0, float32: an identity skip, the weights of default_rng(0)."""
    block = residual_block(2, 2)
    assert list(block.nodes) == ["conv1", "bn1", "relu1", "conv2", "bn2", "add", "relu2"]
    assert block.inputs == ["x"] and block.outputs == ["relu2"]
    w = _he_normal_draws(0, [(2, 2, 3, 3), (2, 2, 3, 3)])
    for name, want in zip(("conv1", "conv2"), w):
        assert block[name].weight.data.dtype == np.float32
        np.testing.assert_array_equal(block[name].weight.data, want.astype(np.float32))
    assert block["bn1"].running_mean.dtype == np.float32
    assert block.eval().forward(np.ones((1, 2, 4, 4), np.float32)).shape == (1, 2, 4, 4)


def _layer_norm(x, eps):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)


def _gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(x)


def _uniform_fan_in_linears(seed, shapes):
    """Weight then bias of each Linear (out, in), U(−1/√in, 1/√in) (PyTorch's default), from one seed."""
    g = np.random.default_rng(seed)
    out = []
    for o, i in shapes:
        b = 1 / math.sqrt(i)
        out.append((g.uniform(-b, b, size=(o, i)), g.uniform(-b, b, size=o)))
    return out


def _encoder(x, mask, params, heads, eps, approximate):
    """h = LN(x + MHA(x, mask)), y = LN(h + W₂·GELU(W₁·h + b₁) + b₂) (Vaswani et al. 2017, post-LN)."""
    (wq, bq), (wk, bk), (wv, bv), (wo, bo), (w1, b1), (w2, b2) = params
    n, t, d = x.shape
    hd = d // heads
    q, k, v = (x @ w.T + b for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    heads_out = []
    for h in range(heads):
        cols = slice(h * hd, (h + 1) * hd)
        s = q[:, :, cols] @ k[:, :, cols].transpose(0, 2, 1) / math.sqrt(hd)
        if mask is not None:
            s = np.where(mask[:, None, :] == 1, s, -np.inf)       # padded keys get no weight
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        heads_out.append(p @ v[:, :, cols])
    attn = np.concatenate(heads_out, axis=-1) @ wo.T + bo
    h1 = _layer_norm(x + attn, eps)
    ffn = _gelu(h1 @ w1.T + b1, approximate) @ w2.T + b2
    return _layer_norm(h1 + ffn, eps)


D, H, FF = 6, 2, 10
SHAPES = [(D, D)] * 4 + [(FF, D), (D, FF)]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_transformer_encoder_block_is_post_ln(approximate):
    block = transformer_encoder_block(D, H, FF, approximate=approximate, rng=3, dtype="float64").eval()
    assert block.inputs == ["x", "mask"]
    params = _uniform_fan_in_linears(3, SHAPES)
    layers = [block["attn"].q_proj, block["attn"].k_proj, block["attn"].v_proj, block["attn"].out_proj,
              block["fc1"], block["fc2"]]
    for layer, (w, b) in zip(layers, params):       # drawn in the order attention, fc1, fc2
        np.testing.assert_array_equal(layer.weight.data, w)
        np.testing.assert_array_equal(layer.bias.data, b)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, D))
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    want = _encoder(x, mask, params, H, 1e-12, approximate)
    np.testing.assert_allclose(block.forward(x, mask), want, rtol=1e-10, atol=1e-12)


def test_transformer_encoder_block_epsilon_reaches_both_layer_norms():
    # ε = 0.5 against an input whose rows have variance ~1: the wrong ε is far off
    block = transformer_encoder_block(D, H, FF, eps=0.5, mask=False, rng=4, dtype="float64").eval()
    assert block.inputs == ["x"]
    x = np.random.default_rng(2).standard_normal((1, 4, D))
    want = _encoder(x, None, _uniform_fan_in_linears(4, SHAPES), H, 0.5, "none")
    np.testing.assert_allclose(block.forward(x), want, rtol=1e-10, atol=1e-12)


def test_transformer_encoder_block_defaults():
    """Seed 0, erf GELU, ε = 1e-12, a mask input, float32."""
    block = transformer_encoder_block(D, H, FF)
    assert block.inputs == ["x", "mask"] and block.outputs == ["ln2"]
    params = _uniform_fan_in_linears(0, SHAPES)
    np.testing.assert_array_equal(block["fc2"].weight.data, params[5][0].astype(np.float32))
    assert block["ln1"].eps == 1e-12 and block["ln2"].eps == 1e-12
    assert all(p.data.dtype == np.float32 for _, p in block.named_parameters())
    x = np.random.default_rng(5).standard_normal((1, 2, D))
    want = _encoder(x, np.ones((1, 2)), [(w.astype(np.float32), b.astype(np.float32)) for w, b in params], H,
                    1e-12, "none")
    np.testing.assert_allclose(block.eval().forward(x.astype(np.float32), np.ones((1, 2))), want,
                               rtol=1e-4, atol=1e-4)


def test_transformer_encoder_block_without_rng_has_zero_weights():
    """rng None: every weight and bias zero, to be loaded (as refcomp.models.minilm_l6 does)."""
    block = transformer_encoder_block(D, H, FF, rng=None)
    for name, p in block.named_parameters():
        if not name.startswith(("ln1", "ln2")):
            assert not p.data.any(), name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blocks_hold_every_array_in_their_dtype(dtype):
    """Every weight, bias and running statistic — the projection skip's and both layer norms' too —
    is in the block's dtype, and so is the output."""
    res = residual_block(2, 3, 2, rng=0, dtype=dtype).eval()
    enc = transformer_encoder_block(D, H, FF, mask=False, rng=0, dtype=dtype).eval()
    for block, x in ((res, np.ones((1, 2, 4, 4), dtype)), (enc, np.ones((1, 2, D), dtype))):
        state = block.state_dict()
        assert state and all(a.dtype == np.dtype(dtype) for a in state.values()), \
            {k: a.dtype for k, a in state.items() if a.dtype != np.dtype(dtype)}
        assert block.forward(x).dtype == np.dtype(dtype)
    assert {"skip_bn.running_mean", "bn2.running_var", "skip_conv.weight"} <= set(res.state_dict())
    assert {"ln1.weight", "ln2.bias"} <= set(enc.state_dict())
