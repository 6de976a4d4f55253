"""refcomp.pipelines.minilm: the scores by their definitions (scipy as the oracle), and each recipe's floor."""

import numpy as np
import pytest

from refcomp.errors import ShapeError, ValidationError
from refcomp.models.minilm_l6 import embed
from refcomp.pipelines.minilm import RECIPES, calibration_batches, compress_minilm, cosine_rows, nn_at_k, score

N = 32


def test_cosine_and_nn_at_k_against_scipy():
    spatial = pytest.importorskip("scipy.spatial.distance")
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((40, 8))
    e = ref + 0.3 * rng.standard_normal((40, 8))
    want_cos = 1 - np.array([spatial.cosine(a, b) for a, b in zip(e, ref)])
    np.testing.assert_allclose(cosine_rows(e, ref), want_cos, rtol=1e-12)
    d_e, d_r = spatial.squareform(spatial.pdist(e, "cosine")), spatial.squareform(spatial.pdist(ref, "cosine"))
    np.fill_diagonal(d_e, np.inf)
    np.fill_diagonal(d_r, np.inf)
    kept = [len(set(np.argsort(d_e[i])[:5]) & set(np.argsort(d_r[i])[:5])) / 5 for i in range(40)]
    assert nn_at_k(e, ref, 5) == pytest.approx(np.mean(kept))
    assert nn_at_k(ref, ref, 5) == 1.0 and score(ref, ref)["cos_min"] == pytest.approx(1.0)


def test_bad_shapes():
    with pytest.raises(ShapeError, match="embeddings"):
        cosine_rows(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ShapeError, match="k=10"):
        nn_at_k(np.ones((5, 4)), np.ones((5, 4)))
    with pytest.raises(ValidationError, match="recipe"):
        compress_minilm(None, "w3a3")


#: each recipe's floor on the first golden batch (cosine to the fp32 golden embeddings; measured on all
#: 512 in docs/minilm.md). The issue's targets: dynamic W8A8 mean >= 0.995 and min >= 0.99 (met per
#: token), static W8A8 mean >= 0.99. GPTQ is checked on one block in tests/compress/quantize (a whole
#: MiniLM takes a minute to quantize); the mixed-precision recipe's sensitivity sweep (72 forwards)
#: by the test below on two blocks.
FLOORS = {"fp32": (0.99999, 0.99999), "w8a8-dynamic": (0.99, 0.975), "w8a8-dynamic-per-token": (0.998, 0.995),
          "w8a8-dynamic-per-token-int8-emb": (0.998, 0.995), "w8a8-static": (0.99, 0.97),
          "w8a8-static-smoothquant": (0.985, 0.96), "w4-rtn-g128": (0.93, 0.85)}


@pytest.mark.parametrize("recipe", sorted(FLOORS))
def test_recipe_floor(recipe, minilm_model, minilm_golden):
    calib = calibration_batches(minilm_golden["sentences"][448:512]) if RECIPES[recipe][1] else None
    model, _ = compress_minilm(minilm_model, recipe, calib)
    e = embed(model, input_ids=minilm_golden["input_ids"][:N], attention_mask=minilm_golden["attention_mask"][:N])
    cos = cosine_rows(e, minilm_golden["embeddings"][:N])
    mean, low = FLOORS[recipe]
    assert cos.mean() >= mean and cos.min() >= low


def test_every_recipe_is_covered_and_calibration_is_required():
    assert set(FLOORS) | {"w4-gptq-g128", "w4w8-mixed-g128"} | set(CALIBRATED_FFN) == set(RECIPES)
    with pytest.raises(ValidationError, match="calibration"):
        compress_minilm(None, "w8a8-static")


def test_mixed_precision_spends_its_budget_where_it_matters(minilm_golden):
    """The sensitivity-chosen W4/W8 mix beats uniform W4 at a 5-bit average (2 blocks, quick)."""
    from refcomp.models import minilm

    m = minilm(layers=2)
    calib = calibration_batches(minilm_golden["sentences"][448:464])
    q, report = compress_minilm(m, "w4w8-mixed-g128", calib)
    bits = report["bits"]
    sizes = {n: w.shape[0] * w.shape[1] for n, w in m.named_weights() if n[:-len(".weight")] in bits}
    assert sum(sizes[f"{n}.weight"] * b for n, b in bits.items()) <= 5.0 * sum(sizes.values())
    assert set(bits.values()) == {4, 8}
    w4, _ = compress_minilm(m, "w4-rtn-g128")
    ids, mask = minilm_golden["input_ids"][:N], minilm_golden["attention_mask"][:N]
    ref = embed(m, input_ids=ids, attention_mask=mask)
    err = {k: 1 - cosine_rows(embed(x, input_ids=ids, attention_mask=mask), ref).mean() for k, x in
           (("mixed", q), ("w4", w4))}
    assert err["mixed"] < err["w4"] / 1.5


#: the FFN recipes that need calibration, against what the same sparsity / rank gives without it
CALIBRATED_FFN = ("ffn-sparse50-sparsegpt", "ffn-2of4-sparsegpt", "ffn-lowrank256-whitened")


@pytest.mark.parametrize("recipe", CALIBRATED_FFN)
def test_calibrated_ffn_recipes_beat_their_plain_forms(recipe, minilm_golden):
    """SparseGPT against magnitude pruning at the same pattern, the whitened SVD against the plain one
    (2 blocks, 16 calibration sentences: quick): the error to fp32 at least halves, and the pruned
    FFN runs as CSR through the sparse kernels."""
    from refcomp.compress.lowrank.model import factorize_model
    from refcomp.compress.prune import prune_model
    from refcomp.compress.prune.deploy import to_csr
    from refcomp.formats.csr import CSRMatrix
    from refcomp.models import minilm

    m = minilm(layers=2)
    ffn = [n for n, _ in m.named_modules() if n.endswith((".fc1", ".fc2"))]
    calib = calibration_batches(minilm_golden["sentences"][448:464])
    q, report = compress_minilm(m, recipe, calib)
    assert set(report) == set(ffn)
    if recipe == "ffn-lowrank256-whitened":
        plain, _ = factorize_model(m, dict.fromkeys(ffn, 256))
    else:
        kw = {"sparsity": 0.5} if "sparse50" in recipe else {"granularity": "nm", "n": 2, "m": 4}
        plain, _ = to_csr(prune_model(m, layers=ffn, **kw)[0], ffn)
        modules = dict(q.named_modules())
        assert all(isinstance(modules[n].weight, CSRMatrix) for n in ffn)
    ids, mask = minilm_golden["input_ids"][:N], minilm_golden["attention_mask"][:N]
    ref = embed(m, input_ids=ids, attention_mask=mask)
    err = {k: 1 - cosine_rows(embed(x, input_ids=ids, attention_mask=mask), ref).mean() for k, x in
           (("calibrated", q), ("plain", plain))}
    assert err["calibrated"] < err["plain"] / 2, err
