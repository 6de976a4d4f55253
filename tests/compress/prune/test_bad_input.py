"""Issue 5, "What must be shown" 4: bad input gets a clear refcomp error naming the argument."""

import numpy as np
import pytest

from refcomp.compress.share.cluster import kmeans
from refcomp.compress.prune import (
    apply_mask,
    block_mask,
    global_masks,
    layerwise_masks,
    nm_mask,
    row_mask,
    structure_norms,
    unstructured_mask,
)
from refcomp.errors import RefcompError, ShapeError, ValidationError
from refcomp.formats.clustered import Clustered

W = np.arange(1.0, 17.0).reshape(4, 4)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.5", True, None])
def test_ratio_outside_unit_interval(bad):
    with pytest.raises(ValidationError, match=r"sparsity: expected a real number in \[0, 1\)"):
        unstructured_mask(W, bad)
    with pytest.raises(ValidationError, match="sparsity"):
        global_masks({"fc1": W}, bad)
    with pytest.raises(ValidationError, match=r"sparsity\['fc1'\]"):
        layerwise_masks({"fc1": W}, {"fc1": bad})


@pytest.mark.parametrize("n,m,argument", [(3, 2, "n"), (5, 4, "n"), (-1, 4, "n"), (1, 0, "m"), (2.0, 4, "n")])
def test_bad_n_m(n, m, argument):
    with pytest.raises(ValidationError, match=f"^{argument}:"):
        nm_mask(W, n, m)


def test_nm_group_must_divide_the_input_dimension():
    with pytest.raises(ShapeError, match="divisible by m = 3"):
        nm_mask(W, 1, 3)


@pytest.mark.parametrize("bits", [0, 9, -1, 2.5, True])
def test_bits_outside_1_to_8(bits):
    with pytest.raises(ValidationError, match="^bits:"):
        kmeans(W, bits)
    with pytest.raises(ValidationError, match="^bits:"):
        Clustered(np.zeros(2, dtype=np.float32), np.zeros((2, 2), dtype=np.uint8), bits=bits)


def test_masks_of_the_wrong_shape():
    with pytest.raises(ShapeError, match=r"^mask: expected shape \(4, 4\), got shape \(4, 3\)"):
        apply_mask(W.copy(), np.ones((4, 3), dtype=bool))
    with pytest.raises(ShapeError, match="^mask:"):
        kmeans(W, 2, mask=np.ones(16, dtype=bool))
    with pytest.raises(ShapeError, match="^scores:"):
        row_mask(np.ones(3), 0.5, (4, 4))


def test_block_shapes_that_do_not_fit():
    with pytest.raises(ShapeError, match="^block_shape:"):
        structure_norms(W, "block", block_shape=(3, 1))
    with pytest.raises(ValidationError, match=r"^block_shape\[1\]:"):
        block_mask(np.ones((2, 2)), 0.5, (2, 0))


def test_unknown_layer_names():
    scores = {"fc1": W, "fc2": W}
    with pytest.raises(ValidationError, match=r"^exclude: expected layer names among \['fc1', 'fc2'\], got unknown \['fc3'\]"):
        global_masks(scores, 0.5, exclude=["fc3"])
    with pytest.raises(ValidationError, match="^sparsity:.*unknown.*conv9"):
        layerwise_masks(scores, {"conv9": 0.5})


def test_nan_scores_are_rejected_not_ranked():
    bad = W.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValidationError, match="^scores:.*finite"):
        unstructured_mask(bad, 0.5)
    with pytest.raises(RefcompError):
        nm_mask(bad, 2, 4)


# ---- issue 14: the new pruning functions name the bad argument

def _issue14_cases():
    from refcomp.compress.prune import (DynamicSparsity, cosine_fraction, drop_smallest, gradient_magnitude,
                                        grasp, hessian_gradient_product, low_gradient_neurons,
                                        merge_linear_pair, rigl_update, set_update, signed_neuron_importance)
    from refcomp.nn import ActivityL1, HardConcreteGate, Linear, Sequential
    m = Sequential(("fc", Linear(4, 4, rng=0)))
    mask = np.ones((4, 4), bool)
    return [
        ("grad", lambda: gradient_magnitude(W, np.ones((2, 2)))),
        ("hg", lambda: grasp(W, np.ones((2, 2)))),
        ("eps", lambda: hessian_gradient_product(m, {"fc": m["fc"]}, [(np.ones((1, 4)), np.zeros(1, int))],
                                                 eps=-1.0)),
        ("batches", lambda: hessian_gradient_product(m, {"fc": m["fc"]}, [])),
        ("next_weight", lambda: signed_neuron_importance(np.ones((2, 4)), np.ones(4))),
        ("fraction", lambda: low_gradient_neurons(W, -0.5)),
        ("mask", lambda: drop_smallest(W, np.ones((4, 3), bool), 1)),
        ("k", lambda: drop_smallest(W, mask, 17)),
        ("zeta", lambda: set_update(W, mask, 1.0, rng=0)),
        ("fraction", lambda: rigl_update(W, mask, W, float("nan"))),
        ("t_end", lambda: cosine_fraction(1, 0.3, 0)),
        ("alpha", lambda: cosine_fraction(1, 1.5, 10)),
        ("method", lambda: DynamicSparsity(m, {"fc": mask}, method="snfs")),
        ("delta_t", lambda: DynamicSparsity(m, {"fc": mask}, delta_t=0)),
        ("beta", lambda: HardConcreteGate(3, beta=0.0)),
        ("drop_init", lambda: HardConcreteGate(3, drop_init=1.0)),
        ("l1", lambda: ActivityL1(float("nan"))),
        ("w2", lambda: merge_linear_pair(np.ones((3, 2)), None, np.ones((2, 2)), None)),
        ("b1", lambda: merge_linear_pair(np.ones((3, 2)), np.ones(2), np.ones((2, 3)), None)),
    ]


N_ISSUE14 = 19


def test_issue14_case_count():
    assert len(_issue14_cases()) == N_ISSUE14


@pytest.mark.parametrize("case", range(N_ISSUE14))
def test_issue14_bad_arguments_are_named(case):
    argument, call = _issue14_cases()[case]
    with pytest.raises(RefcompError, match=f"^{argument}:"):
        call()
