"""Binary / ternary retraining of a whole model (prepare_lowbit, lowbit_bytes)."""

import numpy as np
import pytest

from refcomp.compress.quantize.lowbit_model import lowbit_bytes, prepare_lowbit
from refcomp.nn import evaluate, train


@pytest.mark.parametrize("kind, bits", [("binary", 1), ("ternary", 2)])
def test_binary_ternary_retraining(digits, kind, bits):
    m, tr, te, acc = digits
    q, _ = prepare_lowbit(m, kind)
    fc1 = q["fc1"]
    w_hat = fc1.weight.to_dense()
    # binary: ±α_c per output channel; ternary: {−α, 0, α} for the layer
    rows = w_hat if kind == "binary" else w_hat.reshape(1, -1)
    assert max(len(np.unique(r)) for r in rows) <= (2 if kind == "binary" else 3)
    before = evaluate(q, te)["accuracy"]
    train(q, tr, epochs=5, lr=0.01, rng=0, progress=False)
    after = evaluate(q, te)["accuracy"]
    assert after >= before - 0.01 and after >= 0.85
    n = sum(p.size for p in (m["fc1"].weight.data, m["fc2"].weight.data))
    assert lowbit_bytes(q) < n * bits / 8 + 2000
