"""Dense, and the masked Dense a pruned weight is while it trains."""

import numpy as np
import pytest

from refcomp.compress.prune.model import MaskedOptimizer, prune_model, weight_masks
from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import Dense
from refcomp.io import load_model, save_model
from refcomp.io.model_file import SUFFIXES
from refcomp.nn import SGD, Linear, ReLU, Sequential


def test_fields_with_and_without_a_mask():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert set(Dense(w).fields()) == {"data"}
    mask = np.array([[True, False, True], [False, True, True]])
    d = Dense(w * mask, mask=mask)
    back = Dense.from_fields({k: v.copy() for k, v in d.fields().items()})
    np.testing.assert_array_equal(back.mask, mask)
    np.testing.assert_array_equal(back.data, w * mask)
    with pytest.raises(DTypeError, match="mask"):
        Dense(w, mask=np.ones((2, 3)))
    with pytest.raises(ShapeError, match="mask"):
        Dense(w, mask=np.ones((3, 2), bool))
    with pytest.raises(ValidationError, match="fields"):
        Dense.from_fields({"data": w, "bits": w})


@pytest.mark.parametrize("container", ["safetensors", "npz", "compact"])
def test_a_pruned_model_keeps_its_masks_in_the_file_and_in_training(container, tmp_path):
    rng = np.random.default_rng(0)
    m = Sequential(("fc1", Linear(8, 6, rng=0)), ("relu", ReLU()), ("fc2", Linear(6, 3, rng=1)))
    pruned, report = prune_model(m, {"fc1": 0.5})
    back = load_model(save_model(pruned, tmp_path / f"p{SUFFIXES[container]}"))
    np.testing.assert_array_equal(back["fc1"].weight.mask, report["masks"]["fc1"])
    assert back["fc2"].weight.mask is None and set(weight_masks(back)) == {"fc1"}
    # training the loaded model with the masks its weights hold keeps the pruned entries at zero
    back.train()
    opt = MaskedOptimizer(SGD(back.parameters(), lr=0.5, momentum=0.9), back)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    for _ in range(3):
        back.zero_grad()
        y = back.forward(x)
        back.backward(np.ones_like(y))
        opt.step()
    assert not back["fc1"].weight.data[~report["masks"]["fc1"]].any()
    assert back["fc1"].weight.data[report["masks"]["fc1"]].any()


# Rank: any rank >= 1 is a weight (a bias vector too), a 0-d scalar is not
def test_rank_one_is_accepted_and_rank_zero_refused():
    b = Dense(np.array([1.0, -2.0, 3.0], np.float32))
    assert b.shape == (3,) and b.matrix().shape == (3, 1)
    np.testing.assert_array_equal(b.matmul(np.ones((2, 1), np.float32)), [[1.0, -2.0, 3.0]] * 2)
    with pytest.raises(ValidationError, match="rank 0"):
        Dense(np.float32(1.0))


# from_fields: {'data'} alone is a weight without a mask; refusals say which keys or type came
def test_from_fields_data_alone_and_refusals_name_what_came():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = Dense.from_fields({"data": w.copy()})
    assert d.mask is None
    np.testing.assert_array_equal(d.data, w)
    with pytest.raises(ValidationError, match=r"got \['bits', 'data'\]"):
        Dense.from_fields({"data": w, "bits": w})
    with pytest.raises(ValidationError, match="got list"):
        Dense.from_fields([w])
