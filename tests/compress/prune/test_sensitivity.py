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


def _accuracy_with_layer_pruned(m, name, scores, s, x, y):
    """The oracle: zero the ⌊s·n + 1/2⌋ lowest-scored weights of one layer (a full sort), classify by argmax."""
    w = m[name].weight.data
    saved = w.copy()
    drop = np.argsort(scores.ravel(), kind="stable")[: int(np.floor(s * scores.size + 0.5))]
    w.ravel()[drop] = 0
    acc = float(np.mean(m.forward(x).argmax(1) == y))
    w[...] = saved
    return acc


def _trained():
    from refcomp.nn import train
    x, y = blobs(n=200)
    m = mlp()
    train(m, (x, y), epochs=3, batch_size=20, progress=False)
    return m, x, y


def test_each_point_is_the_accuracy_with_only_that_layer_magnitude_pruned():
    m, x, y = _trained()
    curves = sensitivity(m, (x, y), layers=["fc2"], sparsities=(0.5, 0.9))
    assert list(curves) == ["fc2"]
    scores = np.abs(m["fc2"].weight.data)
    for s, acc in curves["fc2"]:
        assert acc == _accuracy_with_layer_pruned(m, "fc2", scores, s, x, y)


def test_the_criterion_scores_the_chosen_layers_on_the_calibration_data():
    # GraSP scores the chosen weights together (its Hg is the block of H for them), on the calibration set
    from refcomp.compress.prune import layer_scores
    m, x, y = _trained()
    cal = (x[:50], y[:50])
    curves = sensitivity(m, (x, y), layers=["fc1"], sparsities=(0.3, 0.6), criterion="grasp", calibration=cal)
    scores = layer_scores(m, "grasp", layers=["fc1"], data=cal)["fc1"]
    for s, acc in curves["fc1"]:
        assert acc == _accuracy_with_layer_pruned(m, "fc1", scores, s, x, y)


def test_the_given_executor_runs_one_task_per_layer():
    from concurrent.futures import ThreadPoolExecutor

    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, *args, **kwargs):
            Counting.submitted += 1
            return super().submit(*args, **kwargs)

    m, x, y = _trained()
    with Counting(max_workers=1) as pool:
        curves = sensitivity(m, (x, y), sparsities=(0.5,), executor=pool)
    assert Counting.submitted == 3
    assert curves == sensitivity(m, (x, y), sparsities=(0.5,))


def test_markdown_table_written_out():
    md = sensitivity_markdown({"fc1": [(0.0, 0.9), (0.5, 0.875)], "fc2": [(0.0, 0.9), (0.5, 0.5)]})
    assert md == ("| layer | 0% | 50% |\n"
                  "|---|---|---|\n"
                  "| fc1 | 90.00 | 87.50 |\n"
                  "| fc2 | 90.00 | 50.00 |\n")


def test_plot_draws_each_curve_in_percent_with_its_labels(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    drawn = []
    subplots = plt.subplots

    def recording(*args, **kwargs):
        fig, ax = subplots(*args, **kwargs)
        drawn.append((fig, ax))
        return fig, ax

    monkeypatch.setattr(plt, "subplots", recording)
    curves = {"fc1": [(0.0, 0.9), (0.5, 0.8)], "fc2": [(0.0, 0.9), (0.5, 0.25)]}
    # a PNG at 100 dpi whatever the user's matplotlibrc says
    import matplotlib
    with matplotlib.rc_context({"savefig.format": "pdf", "savefig.dpi": 50}):
        assert plot_sensitivity(curves, tmp_path / "s.png")
    (fig, ax), = drawn
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["fc1", "fc2"]
    np.testing.assert_allclose(lines[0].get_xdata(), [0, 50])
    np.testing.assert_allclose(lines[1].get_ydata(), [90, 25])
    assert all(ln.get_marker() == "o" for ln in lines)
    assert ax.get_xlabel() == "sparsity of the layer (%)" and ax.get_ylabel() == "test accuracy (%)"
    assert ax.get_title() == "pruning sensitivity (one layer at a time, no retraining)"
    assert ax.xaxis.get_gridlines()[0].get_alpha() == 0.3 and ax.get_legend() is not None
    assert not plt.fignum_exists(fig.number)                 # closed: no figure piles up in a long run
    png = (tmp_path / "s.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == 600 and int.from_bytes(png[20:24], "big") == 400  # 6 × 4 in at 100 dpi
    assert b"refcomp" in png                                # the provenance text chunk


def test_plot_without_matplotlib_returns_false(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plot_sensitivity({"fc1": [(0.0, 1.0)]}, tmp_path / "s.png") is False
    assert not (tmp_path / "s.png").exists()
