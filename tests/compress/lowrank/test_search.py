"""Rank search under a budget (R.1, R.2): every accepted step keeps the validation error, a rise freezes the layer."""

import copy

import numpy as np
import pytest

from refcomp.compress.lowrank.search import factorize_to_budget, rank_ladder, search_ranks
from refcomp.errors import ValidationError
from refcomp.formats import Dense
from refcomp.nn import Linear, ReLU, Sequential, train

from ..._support.helpers import blobs, mlp


def _oracle_errors(model, ranks, val):
    """Misclassified val images with each layer's weight replaced by numpy's rank-r SVD (no refcomp SVD)."""
    m = copy.deepcopy(model)
    for name, r in ranks.items():
        w = m[name].weight.data
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
        m[name].weight = Dense(((u[:, :r] * s[:r]) @ vt[:r]).astype(w.dtype))
    x, y = val
    return int(np.sum(np.argmax(m.eval().forward(x), axis=1) != y))


@pytest.fixture(scope="module")
def setup():
    """A trained MLP and its validation split (the search copies the model, never changes it)."""
    x, y = blobs(n=600, classes=3, seed=0)
    m = mlp(dtype="float64")
    train(m, (x[:400].astype(np.float64), y[:400]), epochs=8, batch_size=40, progress=False, rng=0)
    return m, (x[400:].astype(np.float64), y[400:])


def test_ladder_starts_at_the_largest_saving_rank_and_ends_at_one():
    for out, n_in in ((300, 784), (16, 12), (10, 500), (3, 3)):
        ladder = rank_ladder(out, n_in, 0.75)
        r0 = ladder[0]
        assert r0 * (out + n_in) < out * n_in <= (r0 + 1) * (out + n_in)
        assert ladder[-1] == 1 and all(a > b for a, b in zip(ladder, ladder[1:]))
    assert rank_ladder(300, 784)[:3] == [216, 162, 121]
    assert rank_ladder(1, 5) == [] and rank_ladder(2, 2) == []   # rank 1 stores as many as the dense layer


def test_a_reachable_budget_is_met_without_a_rise(setup):
    m, val = setup
    dense = m.num_parameters()
    out, report = factorize_to_budget(m, val, max_params=dense - 60)
    assert report["budget_met"] and out.num_parameters() == report["params"] <= dense - 60
    assert report["val_errors"] == _oracle_errors(m, report["ranks"], val) <= report["dense_val_errors"]


def test_every_accepted_step_keeps_the_error_and_a_rise_freezes_the_layer(setup):
    m, val = setup
    ranks, report = search_ranks(m, val, max_params=1, tolerance=0)   # unreachable: the rule alone stops it
    assert not report["budget_met"] and report["history"]
    current, now = report["dense_val_errors"], {}
    rejected = set()
    for h in report["history"]:
        trial = {**now, h["layer"]: h["rank"]}
        e = _oracle_errors(m, trial, val)
        assert e == h["val_errors"]
        assert h["layer"] not in rejected               # a frozen layer is never tried again
        if e > current:                                 # the error rose: the step is refused, the layer frozen
            assert not h["accepted"]
            rejected.add(h["layer"])
        else:
            assert h["accepted"]
            now, current = trial, e
    assert now == ranks and rejected and report["val_errors"] == current
    assert any(r > 1 for r in ranks.values())           # it stopped before the bottom of some ladder


def test_bad_arguments(setup):
    m, val = setup
    with pytest.raises(ValidationError, match="max_params"):
        search_ranks(m, val, max_params=0)
    with pytest.raises(ValidationError, match="tolerance"):
        search_ranks(m, val, max_params=10, tolerance=-1)
    with pytest.raises(ValidationError, match="val_set"):
        search_ranks(m, val[0], max_params=10)
    with pytest.raises(ValidationError, match="shrink"):
        search_ranks(m, val, max_params=10, shrink=1.0)
    with pytest.raises(ValidationError, match="layers"):
        search_ranks(m, val, max_params=10, layers=["nope"])


def _oracle_ladder(out, n_in, s):
    """(R.1) written out: r⁰ the largest rank storing fewer weights than the dense layer (brute force),
    then each rung ⌊s·previous⌋, kept at least one below the previous and at least 1, down to 1."""
    saving = [r for r in range(1, min(out, n_in) + 1) if r * (out + n_in) < out * n_in]
    ladder = [max(saving)] if saving else []
    while ladder and ladder[-1] > 1:
        ladder.append(max(1, min(ladder[-1] - 1, int(s * ladder[-1]))))
    return ladder


def _oracle_search(model, val, budget, shrink=0.75, tol=0, names=None):
    """(R.2) written out from the docstring, every E_val by _oracle_errors (numpy's SVD)."""
    layers = {n: l for n, l in model.named_modules() if isinstance(l, Linear) and (names is None or n in names)}
    shapes = {n: l.weight.shape for n, l in layers.items()}
    ladders = {n: _oracle_ladder(o, i, shrink) for n, (o, i) in shapes.items()}
    dense = sum(p.data.size for _, p in model.named_parameters())

    def params(ranks):
        return dense - sum(o * i - ranks[n] * (o + i) for n, (o, i) in shapes.items() if n in ranks)

    ranks, pos, frozen = {}, {n: 0 for n in layers}, {n for n in layers if not ladders[n]}
    current = dense_errors = _oracle_errors(model, {}, val)
    history = []
    order = sorted(layers, key=lambda n: shapes[n][0] * shapes[n][1], reverse=True)   # largest first
    while params(ranks) > budget and len(frozen) < len(layers):
        for n in order:
            if params(ranks) <= budget:
                break
            if n in frozen:
                continue
            trial = {**ranks, n: ladders[n][pos[n]]}
            e = _oracle_errors(model, trial, val)
            history.append({"layer": n, "rank": trial[n], "val_errors": e, "params": params(trial),
                            "accepted": e <= current + tol})
            if e > current + tol:
                frozen.add(n)
                continue
            ranks, current, pos[n] = trial, e, pos[n] + 1
            if pos[n] == len(ladders[n]):
                frozen.add(n)
    report = {"history": history, "dense_val_errors": dense_errors, "val_errors": current,
              "params": params(ranks), "dense_params": dense, "budget_met": params(ranks) <= budget,
              "frozen": sorted(frozen)}
    return ranks, report


@pytest.fixture(scope="module")
def uneven():
    """An untrained float64 MLP whose layer sizes order differently by out·in (fc1 512, fc0 128, fc2 96),
    by name, by out / in and by in², and a validation set with random labels: errors rise and fall, a
    rejection falls between an accepted step and a later layer of the same pass (seed 7)."""
    rng = np.random.default_rng(7)
    m = Sequential(("fc0", Linear(8, 16, rng=rng, dtype="float64")), ("relu0", ReLU()),
                   ("fc1", Linear(16, 32, rng=rng, dtype="float64")), ("relu1", ReLU()),
                   ("fc2", Linear(32, 3, rng=rng, dtype="float64")))
    return m, (rng.normal(size=(60, 8)), rng.integers(0, 3, size=60))


@pytest.mark.parametrize("kwargs", [{}, {"tolerance": 2}, {"tolerance": 60}, {"shrink": 0.4, "tolerance": 60},
                                    {"layers": ["fc0", "fc2"], "tolerance": 60}],
                         ids=["default", "tol2", "every-step", "shrink0.4", "two-layers"])
def test_search_follows_the_rule_step_by_step(uneven, kwargs):
    """The whole history (layers largest first, round robin, each one step down its ladder, τ absorbing
    rises, frozen layers skipped, ladders ending at 1) and the report equal the rule run by the oracle;
    the default tolerance is 0. factorize_to_budget passes every argument on and factorizes at those ranks."""
    m, val = uneven
    ranks, report = search_ranks(m, val, max_params=1, **kwargs)
    want_ranks, want = _oracle_search(m, val, 1, kwargs.get("shrink", 0.75), kwargs.get("tolerance", 0),
                                      kwargs.get("layers"))
    assert ranks == want_ranks and report == want
    out, full = factorize_to_budget(m, val, max_params=1, **kwargs)
    assert full["ranks"] == ranks and {k: full[k] for k in want} == want
    # factorize_model's report: each layer at its rank, r·(in + out) weights plus the bias, 8 bytes each
    shapes = {n: m[n].weight.shape for n in ranks}
    assert full["layers"] == {n: {"rank": r, "bytes": 8 * (r * sum(shapes[n]) + shapes[n][0]),
                                  "float_bytes": 8 * (shapes[n][0] * shapes[n][1] + shapes[n][0])}
                              for n, r in ranks.items()}
    assert out.num_parameters() == report["params"]


def test_the_search_stops_as_soon_as_the_budget_is_met_exactly(uneven):
    """A budget equal to the parameters after the first step (fc1, the largest, at r⁰ = 10): one step,
    budget_met (P(r) <= budget, equality included), nothing else tried."""
    m, val = uneven
    dense = m.num_parameters()
    budget = dense - (32 * 16 - 10 * (32 + 16))
    ranks, report = search_ranks(m, val, max_params=budget, tolerance=60)
    assert ranks == {"fc1": 10} and len(report["history"]) == 1
    assert report["params"] == budget and report["budget_met"]


def test_a_budget_already_met_factorizes_nothing(uneven):
    m, val = uneven
    ranks, report = search_ranks(m, val, max_params=m.num_parameters())
    assert ranks == {} and report["history"] == [] and report["budget_met"]


def test_grouped_convolutions_are_left_dense():
    """Only Linear and groups-1 Conv2d layers are searched: a grouped convolution is not one matrix."""
    from refcomp.nn import Conv2d, Flatten

    rng = np.random.default_rng(0)
    m = Sequential(("grouped", Conv2d(2, 8, 3, groups=2, rng=rng, dtype="float64")), ("relu0", ReLU()),
                   ("conv", Conv2d(8, 8, 3, rng=rng, dtype="float64")), ("flatten", Flatten()),
                   ("fc", Linear(8, 3, rng=rng, dtype="float64")))
    val = (rng.normal(size=(6, 2, 5, 5)), rng.integers(0, 3, size=6))
    ranks, report = search_ranks(m, val, max_params=1, tolerance=6)
    tried = {h["layer"] for h in report["history"]}
    assert tried == {"conv", "fc"} and "grouped" not in ranks
    # conv: (8, 8·3·3) = (8, 72) by its reshaped kernel, r⁰ = ⌈576 / 80⌉ − 1 = 7
    assert report["history"][0] == {**report["history"][0], "layer": "conv", "rank": 7}


def test_ladders_end_at_one_whatever_the_shrink():
    """(R.1) ends at rank 1 even when ⌊s·2⌋ = 0 (s < 1/2): the last step is 2 → 1."""
    for out, n_in in ((5, 5), (16, 12), (300, 784)):
        for s in (0.1, 0.3, 0.49, 0.5, 0.75, 0.99):
            assert rank_ladder(out, n_in, s) == _oracle_ladder(out, n_in, s)
    assert rank_ladder(5, 5, 0.3) == [2, 1]                           # r⁰ = ⌈25/10⌉ − 1 = 2
    assert rank_ladder(5, 1) == []                                    # an (out, 1) matrix: rank 1 saves nothing


@pytest.mark.parametrize("args, name", [((0, 5, 0.75), "out"), ((5, 0, 0.75), "n_in"), ((5, 5, 0.0), "shrink"),
                                        ((5, 5, -0.5), "shrink"), ((5, 5, 1.0), "shrink")])
def test_ladder_bad_arguments(args, name):
    with pytest.raises(ValidationError, match=name):
        rank_ladder(*args)


def test_val_set_must_be_a_pair(setup):
    m, (x, y) = setup
    for bad in ([x, y], (x, y, y)):
        with pytest.raises(ValidationError, match="val_set"):
            search_ranks(m, bad, max_params=10)
