"""Importance criteria against their definitions written out element by element."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import (
    activation_importance,
    magnitude,
    snip,
    structure_norms,
    taylor_first_order,
)
from refcomp.errors import ShapeError, ValidationError


def test_magnitude_is_abs():
    w = np.array([[-2.0, 0.5], [0.0, -0.0]], dtype=np.float32)
    np.testing.assert_array_equal(magnitude(w), [[2.0, 0.5], [0.0, 0.0]])
    assert magnitude(w).dtype == np.float32


def test_structure_norms_rows_channels_blocks():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 4, 3, 3))
    np.testing.assert_allclose(structure_norms(w, "row", ord=1), [np.abs(w[o]).sum() for o in range(6)])
    np.testing.assert_allclose(structure_norms(w, "channel", ord=2),
                               [np.sqrt((w[:, c] ** 2).sum()) for c in range(4)])
    w2 = rng.normal(size=(4, 8))
    blocks = structure_norms(w2, "block", ord=1, block_shape=(2, 4))
    expected = [[np.abs(w2[i:i + 2, j:j + 4]).sum() for j in (0, 4)] for i in (0, 2)]
    np.testing.assert_allclose(blocks, expected)


def test_structure_norms_block_must_divide():
    with pytest.raises(ShapeError, match="block_shape"):
        structure_norms(np.ones((4, 6)), "block", block_shape=(4, 4))
    with pytest.raises(ValidationError, match="structure"):
        structure_norms(np.ones((4, 6)), "neuron")


def test_activation_importance_linear_matches_definition():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 5))
    x = rng.normal(size=(7, 5))
    brute = np.mean([np.abs(x[n][None, :] * w) for n in range(7)], axis=0)
    np.testing.assert_allclose(activation_importance(w, x), brute)
    np.testing.assert_allclose(activation_importance(w, [x[:3], x[3:]]), brute)  # streamed batches


def _conv_brute(w, x, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    acc = np.zeros_like(w)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                patch = xp[b, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                acc += np.abs(patch[None] * w)
    return acc / (n * oh * ow)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 2)])
def test_activation_importance_conv_matches_definition(stride, pad):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(2, 3, 3, 3))
    x = rng.normal(size=(2, 3, 6, 5))
    got = activation_importance(w, x, stride=stride, padding=pad)
    np.testing.assert_allclose(got, _conv_brute(w, x, stride, pad), rtol=1e-12)


def test_taylor_elementwise_and_accumulated():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 6))
    g1, g2 = rng.normal(size=(2, 4, 6))
    np.testing.assert_allclose(taylor_first_order(w, g1), np.abs(w * g1))
    np.testing.assert_allclose(taylor_first_order(w, [g1, g2]), (np.abs(w * g1) + np.abs(w * g2)) / 2)
    rows = taylor_first_order(w, [g1, g2], structure="row")
    np.testing.assert_allclose(rows, (np.sum(w * g1, axis=1) ** 2 + np.sum(w * g2, axis=1) ** 2) / 2)


def test_taylor_predicts_loss_change_to_first_order():
    # L(w) = 1/2 ||X w − y||²; removing a small weight w_i changes L by ≈ −g_i w_i.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 6))
    y = rng.normal(size=20)
    w = 1e-4 * rng.normal(size=6)

    def loss(v):
        r = x @ v - y
        return 0.5 * r @ r

    g = x.T @ (x @ w - y)
    for i in range(6):
        v = w.copy()
        v[i] = 0.0
        # exact for a quadratic: ΔL = −g_i w_i + ½ (X^T X)_ii w_i²; the second-order part is tiny
        second = 0.5 * (x[:, i] @ x[:, i]) * w[i] ** 2
        assert loss(v) - loss(w) == pytest.approx(-g[i] * w[i] + second, rel=1e-6, abs=1e-12)
        assert second < 0.01 * abs(g[i] * w[i])
    np.testing.assert_allclose(taylor_first_order(w, g), np.abs(g * w))


def test_snip_is_normalised_connection_sensitivity():
    # g_j = ∂L(c ⊙ w)/∂c_j at c = 1, checked by central finite differences on c.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 4))
    y = rng.normal(size=10)
    w = rng.normal(size=4)

    def loss(c):
        r = x @ (c * w) - y
        return 0.5 * r @ r

    h = 1e-6
    g_c = np.array([(loss(np.ones(4) + h * e) - loss(np.ones(4) - h * e)) / (2 * h) for e in np.eye(4)])
    grad_w = x.T @ (x @ w - y)
    s = snip(w, grad_w)
    np.testing.assert_allclose(s, np.abs(g_c) / np.abs(g_c).sum(), rtol=1e-6)
    assert s.sum() == pytest.approx(1.0)


def test_snip_normalises_across_layers():
    w = {"a": np.array([1.0, -2.0]), "b": np.array([[3.0]])}
    g = {"a": np.array([1.0, 1.0]), "b": np.array([[1.0]])}
    s = snip(w, g)
    np.testing.assert_allclose(s["a"], [1 / 6, 2 / 6])
    np.testing.assert_allclose(s["b"], [[3 / 6]])
    with pytest.raises(ValidationError, match="grads"):
        snip(w, {"a": g["a"]})
    with pytest.raises(ValidationError, match="grads"):
        snip(np.ones(3), np.zeros(3))


# ---- plain gradient magnitude (P.1) and GraSP (P.2), each against its formula written out

def test_gradient_magnitude_is_abs_of_the_mean_gradient():
    from refcomp.compress.prune import gradient_magnitude
    w = np.zeros((2, 2))
    g1 = np.array([[1.0, -2.0], [3.0, 0.5]])
    g2 = np.array([[-1.0, -2.0], [1.0, 0.5]])
    # the mean first, then | |: opposite per-batch gradients cancel
    expected = [[abs((1.0 - 1.0) / 2), abs((-2.0 - 2.0) / 2)], [abs((3.0 + 1.0) / 2), abs((0.5 + 0.5) / 2)]]
    np.testing.assert_array_equal(gradient_magnitude(w, [g1, g2]), expected)
    # the weight's values do not matter, only its shape
    np.testing.assert_array_equal(gradient_magnitude(w + 7.0, g1), np.abs(g1))
    with pytest.raises(ShapeError, match="grad"):
        gradient_magnitude(w, np.ones((3, 2)))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_grasp_is_minus_theta_times_hg(seed):
    from refcomp.compress.prune import grasp
    rng = np.random.default_rng(seed)
    w, hg = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    s = grasp(w, hg)
    for i in range(3):
        for j in range(5):
            assert s[i, j] == -(w[i, j] * hg[i, j])


def test_grasp_keep_scores_remove_the_largest_grasp_score_first():
    from refcomp.compress.prune import grasp_keep_scores, unstructured_mask
    s = {"a": np.array([3.0, -1.0, 0.5]), "b": np.array([[2.0, -4.0]])}
    k = grasp_keep_scores(s)
    assert min(float(v.min()) for v in k.values()) >= 0.0
    np.testing.assert_array_equal(k["a"], [0.0, 4.0, 2.5])
    np.testing.assert_array_equal(k["b"], [[1.0, 7.0]])
    np.testing.assert_array_equal(unstructured_mask(k["a"], 1 / 3), [False, True, True])
    with pytest.raises(ValidationError, match="scores"):
        grasp_keep_scores({})


def test_grasp_bad_shape():
    from refcomp.compress.prune import grasp
    with pytest.raises(ShapeError, match="hg: expected shape"):
        grasp(np.ones((2, 3)), np.ones((3, 2)))


# ---- the conv criterion with dilation, the result dtypes, and each bad input named

def _conv_brute_dilated(w, x, stride, pad, dil):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    acc = np.zeros_like(w)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for k in range(kh):
                    for m in range(kw):
                        xv = xp[b, :, i * stride[0] + k * dil[0], j * stride[1] + m * dil[1]]
                        acc[:, :, k, m] += np.abs(xv[None, :] * w[:, :, k, m])
    return acc / (n * oh * ow)


@pytest.mark.parametrize("stride,pad,dil", [((1, 2), (0, 1), (2, 1)), ((2, 1), (1, 0), (1, 2)), (1, 0, 2)])
def test_activation_importance_conv_with_dilation_and_pairs(stride, pad, dil):
    rng = np.random.default_rng(7)
    w = rng.normal(size=(2, 3, 2, 3))
    x = rng.normal(size=(2, 3, 7, 8))
    pair = (lambda v: v if isinstance(v, tuple) else (v, v))
    got = activation_importance(w, x, stride=stride, padding=pad, dilation=dil)
    np.testing.assert_allclose(got, _conv_brute_dilated(w, x, pair(stride), pair(pad), pair(dil)), rtol=1e-12)
    assert got.dtype == np.float64


def test_activation_importance_bad_input():
    w = np.ones((3, 5))
    with pytest.raises(ValidationError, match="inputs"):
        activation_importance(w, [])
    with pytest.raises(ShapeError, match="inputs"):
        activation_importance(w, [np.ones((2, 5)), np.ones((2, 4))])
    with pytest.raises(ShapeError, match="inputs"):
        activation_importance(w, np.ones((2, 4)))
    with pytest.raises(ShapeError, match="inputs"):
        activation_importance(w, np.ones(4))
    with pytest.raises(ShapeError, match="inputs"):
        activation_importance(np.ones((2, 3, 3, 3)), np.ones((1, 2, 5, 5)))      # 2 channels, not 3
    with pytest.raises(ShapeError, match="inputs"):
        activation_importance(w, np.float64(1.0))
    with pytest.raises(ShapeError, match="inputs"):
        activation_importance(np.ones((2, 3, 3, 3)), np.ones((2, 3, 5)))      # channels right, not 4-D
    with pytest.raises(ShapeError, match="inputs"):
        activation_importance(np.ones((2, 3, 3, 3)), np.ones((1, 3, 2, 5)))      # 2 rows, a 3x3 kernel
    with pytest.raises(ShapeError, match="weight"):
        activation_importance(np.ones((2, 3, 3)), np.ones((1, 3, 5)))
    with pytest.raises(ValidationError, match="inputs"):
        activation_importance(w, np.ones((0, 5)))
    k4 = np.ones((2, 3, 3, 3))
    x4 = np.ones((1, 3, 5, 5))
    for bad, kw in (("stride", dict(stride=0)), ("padding", dict(padding=-1)), ("dilation", dict(dilation=(1, 0)))):
        with pytest.raises(ValidationError, match=f"^{bad}:"):
            activation_importance(k4, x4, **kw)
    # a 1-D input is one sample; the smallest image that fits the kernel gives one output position
    np.testing.assert_allclose(activation_importance(w, np.arange(5.0)), np.abs(w) * np.arange(5.0))
    k = np.ones((1, 1, 3, 3))
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    np.testing.assert_allclose(activation_importance(k, x), x)


def test_float64_results_from_float32_input():
    rng = np.random.default_rng(8)
    w = rng.normal(size=(4, 6)).astype(np.float32)
    g = rng.normal(size=(4, 6)).astype(np.float32)
    w64, g64 = w.astype(np.float64), g.astype(np.float64)
    checks = [
        (structure_norms(w, "row", ord=1), np.abs(w64).sum(axis=1)),
        (structure_norms(w, "channel", ord=2), np.sqrt((w64 ** 2).sum(axis=0))),
        (activation_importance(w, g[:, :6]), np.abs(w64) * np.abs(g64).mean(axis=0)),
        (taylor_first_order(w, g), np.abs(w64 * g64)),
        (taylor_first_order(w, g, structure="channel"), np.sum(w64 * g64, axis=0) ** 2),
        (snip(w, g), np.abs(w64 * g64) / np.abs(w64 * g64).sum()),
        (snip({"a": w}, {"a": g})["a"], np.abs(w64 * g64) / np.abs(w64 * g64).sum()),
    ]
    from refcomp.compress.prune import grasp, grasp_keep_scores, gradient_magnitude
    checks += [(gradient_magnitude(w, [g, g]), np.abs(g64)), (grasp(w, g), -(w64 * g64)),
               (grasp_keep_scores({"a": w})["a"], w64.max() - w64)]
    wc = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
    xc = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    checks.append((activation_importance(wc, xc, padding=1),
                   _conv_brute_dilated(wc.astype(np.float64), xc.astype(np.float64), (1, 1), (1, 1), (1, 1))))
    for got, expected in checks:
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_structure_norms_every_structure_and_order():
    w = np.array([[3.0, -4.0, 0.0, 1.0], [-1.0, 2.0, 2.0, 0.0]])
    np.testing.assert_allclose(structure_norms(w, "row", ord=2), [np.sqrt(26.0), 3.0])
    np.testing.assert_allclose(structure_norms(w, "row"), [8.0, 5.0])                   # ord=1 by default
    np.testing.assert_allclose(structure_norms(w, "channel", ord=1), [4.0, 6.0, 2.0, 1.0])
    np.testing.assert_allclose(structure_norms(w, "block", ord=2, block_shape=(1, 2)),
                               [[5.0, 1.0], [np.sqrt(5.0), 2.0]])
    np.testing.assert_allclose(structure_norms(w, "block", block_shape=[2, 1]), [[4.0, 6.0, 2.0, 1.0]])
    with pytest.raises(ValidationError, match="ord"):
        structure_norms(w, "row", ord=3)
    for bad in [(2,), (1, 2, 1), 2, None]:
        with pytest.raises(ValidationError, match="block_shape"):
            structure_norms(w, "block", block_shape=bad)
    with pytest.raises(ValidationError, match=r"block_shape\[0\]"):
        structure_norms(w, "block", block_shape=(0, 2))
    with pytest.raises(ValidationError, match=r"block_shape\[1\]"):
        structure_norms(w, "block", block_shape=(1, 0))
    with pytest.raises(ShapeError, match="block_shape"):
        structure_norms(w, "block", block_shape=(3, 1))
    with pytest.raises(ShapeError, match="^x:"):
        structure_norms(np.ones((2, 2, 2)), "block", block_shape=(1, 1))
    for structure in ("row", "channel"):
        with pytest.raises(ShapeError, match="^x:"):
            structure_norms(np.ones(4), structure)
        with pytest.raises(ShapeError, match="^weight:"):
            taylor_first_order(np.ones(4), np.ones(4), structure=structure)
    with pytest.raises(ShapeError, match="^weight:"):
        taylor_first_order(np.ones((2, 2, 2)), np.ones((2, 2, 2)), structure="block", block_shape=(1, 1))


def test_taylor_per_structure_and_bad_gradients():
    rng = np.random.default_rng(9)
    w = rng.normal(size=(4, 6))
    g1, g2 = rng.normal(size=(2, 4, 6))
    p1, p2 = w * g1, w * g2
    np.testing.assert_allclose(taylor_first_order(w, [g1, g2], structure="channel"),
                               (p1.sum(axis=0) ** 2 + p2.sum(axis=0) ** 2) / 2)
    blocks = taylor_first_order(w, (g1, g2), structure="block", block_shape=(2, 3))
    expected = [[(p1[i:i + 2, j:j + 3].sum() ** 2 + p2[i:i + 2, j:j + 3].sum() ** 2) / 2 for j in (0, 3)]
                for i in (0, 2)]
    np.testing.assert_allclose(blocks, expected)
    np.testing.assert_allclose(taylor_first_order(w, g1, structure="row"), p1.sum(axis=1) ** 2)
    with pytest.raises(ValidationError, match="grad"):
        taylor_first_order(w, [])
    with pytest.raises(ShapeError, match=r"grad\[1\]"):
        taylor_first_order(w, [g1, np.ones((6, 4))])
    with pytest.raises(ShapeError, match="grad"):
        taylor_first_order(w, np.ones((6, 4)))
    with pytest.raises(ValidationError, match="structure"):
        taylor_first_order(w, g1, structure="neuron")


def test_snip_bad_input():
    with pytest.raises(ValidationError, match="grads"):
        snip({"a": np.ones(2)}, np.ones(2))
    with pytest.raises(ValidationError, match="grads"):
        snip(np.ones(2), {"a": np.ones(2)})
    with pytest.raises(ValidationError, match="grads"):
        snip({"a": np.ones(2)}, {"a": np.zeros(2)})
    with pytest.raises(ShapeError, match="grads"):
        snip({"a": np.ones(2)}, {"a": np.ones(3)})
    with pytest.raises(ShapeError, match="grads"):
        snip(np.ones(2), np.ones(3))
    # one zero layer is fine when another carries the sum
    s = snip({"a": np.ones(2), "b": np.ones(1)}, {"a": np.zeros(2), "b": np.full(1, -2.0)})
    np.testing.assert_array_equal(s["a"], [0.0, 0.0])
    np.testing.assert_array_equal(s["b"], [1.0])


def test_grasp_keep_scores_shift_and_bad_input():
    from refcomp.compress.prune import grasp_keep_scores
    k = grasp_keep_scores({"a": np.array([-3.0, -1.0]), "e": np.zeros((0,))})
    np.testing.assert_array_equal(k["a"], [2.0, 0.0])           # the shift is the max, negative here
    assert k["e"].shape == (0,)
    np.testing.assert_array_equal(grasp_keep_scores({"e": np.zeros((0, 2))})["e"], np.zeros((0, 2)))
    with pytest.raises(ValidationError, match="scores"):
        grasp_keep_scores([np.ones(2)])
