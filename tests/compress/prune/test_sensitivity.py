"""The pruning sensitivity sweep: data, Markdown, plot, and the model restored."""

import numpy as np
import pytest

from refcomp.compress.prune.sensitivity import plot_sensitivity, sensitivity, sensitivity_markdown
from refcomp.errors import ValidationError

from ..._support.helpers import blobs, mlp


def test_sensitivity_data_plot_and_restore(tmp_path):
    x, y = blobs(n=200)
    m = mlp()
    from refcomp.nn import train
    train(m, (x, y), epochs=5, batch_size=20, progress=False)
    before = {n: m[n].weight.data.copy() for n in ("fc1", "fc2", "fc3")}
    curves = sensitivity(m, (x, y), sparsities=(0.0, 0.5, 0.95))
    assert list(curves) == ["fc1", "fc2", "fc3"]
    for name, curve in curves.items():
        assert [s for s, _ in curve] == [0.0, 0.5, 0.95]
        assert all(0.0 <= a <= 1.0 for _, a in curve)
        np.testing.assert_array_equal(m[name].weight.data, before[name])  # model restored
    base = curves["fc1"][0][1]
    assert all(c[0][1] == base for c in curves.values())  # sparsity 0 = the unpruned model
    assert min(a for c in curves.values() for _, a in c) < base  # pruning 95% of a layer costs something
    md = sensitivity_markdown(curves)
    assert md.count("\n") == 5 and "95%" in md
    pytest.importorskip("matplotlib")
    assert plot_sensitivity(curves, tmp_path / "s.png") and (tmp_path / "s.png").stat().st_size > 1000
    with pytest.raises(ValidationError, match=r"sparsities\[0\]"):
        sensitivity(m, (x, y), sparsities=(1.0,))
