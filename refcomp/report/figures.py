"""The report's figures, drawn by matplotlib into inline SVG text (no file, no network).

Each function takes parts of a checked record (refcomp.report.record) and
returns the ``<svg>...</svg>`` element, or None when there is nothing to draw.
Text is drawn as paths (``svg.fonttype = "path"``) so the page looks the same
without the fonts; each figure's element ids (matplotlib writes "figure_1",
"patch_1", glyph ids ... in every SVG) get its own prefix so that several
figures inline in one page never share an id.
"""

from __future__ import annotations

import io
import math
import re
import textwrap

import numpy as np

__all__ = ["available", "sizes_svg", "histograms_svg", "sensitivity_svg", "stages_svg", "human_bytes"]


def available() -> bool:
    """True when matplotlib can be imported (the report is written without figures otherwise)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def human_bytes(n: float) -> str:
    """1536 -> "1.5 kB" (decimal units: the axes' ticks then fall on round numbers)."""
    for unit in ("B", "kB", "MB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")     # no display: the figures only become SVG text
    import matplotlib.pyplot as plt

    return matplotlib, plt


def _svg(fig, salt: str) -> str:
    """The figure as an <svg> element (the XML prolog and DOCTYPE dropped: it is inlined in HTML)."""
    matplotlib, plt = _pyplot()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})   # no date: the same run, the same bytes
    plt.close(fig)
    text = buf.getvalue()
    return _prefix_ids(text[text.index("<svg"):], salt)


def _prefix_ids(svg: str, prefix: str) -> str:
    """Every id="X" of ``svg`` and its references ("#X", "url(#X)") renamed "<prefix>-X"."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    return re.sub(r'(\bid="|#)([^"#)\s]+)(?=[")])',
                  lambda m: f"{m[1]}{prefix}-{m[2]}" if m[2] in ids else m[0], svg)


def sizes_svg(layers: list) -> str | None:
    """Horizontal bars per layer: bytes before and after compression, each labelled with its size
    (and the after bar with the ratio), the first layer on top. When the sizes span more than two
    decades (an embedding table beside small layers) the axis is logarithmic, else the small
    layers' bars would be invisible."""
    if not layers:
        return None
    _, plt = _pyplot()
    names = [layer["name"] for layer in layers]
    before = np.array([layer["bytes_before"] for layer in layers], dtype=float)
    after = np.array([layer["bytes_after"] for layer in layers], dtype=float)
    n = len(layers)
    y = np.arange(n)[::-1]                     # the first layer at the top, as in the table
    fig, ax = plt.subplots(figsize=(9, 1.2 + (0.5 if n <= 8 else 0.34) * n))
    h = 0.4
    positive = np.concatenate([before, after])
    positive = positive[positive > 0]
    top = positive.max() if positive.size else 1.0
    log = positive.size > 0 and top / positive.min() > 100
    ax.barh(y + h / 2, before, h, color="#9aa5b1", label="before (float32)")
    ax.barh(y - h / 2, after, h, color="#2f6f9f", label="after")
    # labels just right of each bar end: a fixed fraction of the axis, in data or in log units
    right = (lambda v: max(v, positive.min()) * 1.15) if log else (lambda v: v + 0.01 * top)
    fs = 8 if n <= 8 else 7
    for yi, b, a in zip(y, before, after):
        ax.text(right(b), yi + h / 2, human_bytes(b), va="center", fontsize=fs)
        ratio = f" ({b / a:.1f}x)" if a > 0 else ""
        ax.text(right(a), yi - h / 2, human_bytes(a) + ratio, va="center", fontsize=fs)
    ax.set_yticks(y, names, fontsize=fs)
    ax.set_ylim(-0.7, n - 0.3)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(positive.min() / 2, top * 6)    # room for the labels right of the longest bar
    else:
        ax.set_xlim(0, top * 1.25)
    _bytes_axis(ax, log=log)
    ax.set_title("size per layer, before and after", loc="left")
    # above the plot, right: inside it would cover the longest bar's label
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _svg(fig, "sizes")


def _bytes_axis(ax, log: bool = False) -> None:
    """The x axis in B / KiB / MiB; on a log axis only the 1, 2, 5 ticks are labelled (all of them
    collide once the axis spans a few decades)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if log:
        lo, hi = ax.get_xlim()
        many = math.log10(hi / lo) > 3        # past three decades 1-2-5 labels run into each other
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if many else (1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human_bytes(v)))
    ax.set_xlabel("size" + (" (log scale)" if log else ""))


def _draw_grid(ax, grid, lo, hi) -> tuple[int, int]:
    """The grid values inside [lo, hi] as vertical lines. A dense grid (int8: up to 256 levels) would
    paint the plot over, so only every ``step``-th level is drawn. Returns (levels inside, step)."""
    g = np.sort(np.asarray(grid, dtype=float))
    g = g[(g >= lo) & (g <= hi)]
    if g.size == 0:
        return 0, 1
    step = max(1, math.ceil(g.size / 32))
    ax.vlines(g[::step], 0, 1, transform=ax.get_xaxis_transform(), colors="#d1495b", linewidth=0.8,
              alpha=0.85)
    return int(g.size), step


def _title(name: str, kind: str, drawn: int, step: int) -> str:
    """Two short lines: the layer (its tail when long) and what the red lines are."""
    name = name if len(name) <= 34 else "…" + name[-33:]
    if not drawn:
        return name
    every = f", every {step}th drawn" if step > 1 else ""
    # wrapped: a subplot is ~3 inches wide, and a longer line runs into its neighbour's title
    return name + "\n" + textwrap.fill(f"{drawn} {kind}{every}", 44)


def histograms_svg(weights: list, *, columns: int = 3) -> str | None:
    """One histogram per layer of its weights, with its grid (quantization levels or centroids) in red."""
    if not weights:
        return None
    _, plt = _pyplot()
    n = len(weights)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    # constrained layout keeps the shared axis labels clear of the subplots (tight_layout does not
    # reserve room for them: the x label ran into the last row's ticks)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.5 * rows), squeeze=False, layout="constrained")
    for ax, entry in zip(axes.ravel(), weights):
        edges = np.asarray(entry["histogram"]["edges"], dtype=float)
        counts = np.asarray(entry["histogram"]["counts"], dtype=float)
        ax.stairs(counts, edges, fill=True, color="#7fa7c9")
        lo, hi = edges[0], edges[-1]
        grid = np.asarray(entry.get("grid") or [], dtype=float)
        if 0 < grid.size <= 64:
            # a few values (centroids, int4 levels): each one matters, widen the axis to show all;
            # a dense grid (int8) is shown where the weights are
            lo, hi = min(lo, grid.min()), max(hi, grid.max())
        pad = 0.02 * (hi - lo)
        drawn, step = _draw_grid(ax, grid, lo - pad, hi + pad)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_title(_title(entry["layer"], entry.get("grid_kind", "grid values"), drawn, step), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.supxlabel("weight value", fontsize=8)
    fig.supylabel("count", fontsize=8)
    return _svg(fig, "histograms")


def _in_percent(metric: str) -> bool:
    return "accuracy" in metric


def sensitivity_svg(curves: dict, metric: str) -> str | None:
    """The metric vs each layer's sparsity, one line per layer (one layer pruned at a time)."""
    if not curves:
        return None
    _, plt = _pyplot()
    scale = 100.0 if _in_percent(metric) else 1.0
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, curve in curves.items():
        s, m = np.asarray(curve, dtype=float).T
        ax.plot(100 * s, scale * m, marker="o", markersize=4, label=name)
    ax.set_xlabel("sparsity of the layer (%)")
    ax.set_ylabel(metric + (" (%)" if scale == 100.0 else ""))
    ax.set_title("sensitivity: one layer pruned at a time, no retraining", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _svg(fig, "sensitivity")


def stages_svg(stages: list, metric: str) -> str | None:
    """The metric vs size of each stage or recipe (log size axis), in the order run, each point named."""
    # (number in the order run, stage) of the stages measured: one point alone says no more than the table
    points = [(i + 1, s) for i, s in enumerate(stages) if s["metric"] is not None and s["bytes"] > 0]
    if len(points) < 2:
        return None
    _, plt = _pyplot()
    scale = 100.0 if _in_percent(metric) else 1.0
    x = np.array([p["bytes"] for _, p in points], dtype=float)
    y = scale * np.array([p["metric"] for _, p in points], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, y, color="#9aa5b1", linewidth=1, zorder=1)
    ax.scatter(x, y, color="#2f6f9f", zorder=2)
    for j, ((number, p), xi, yi) in enumerate(zip(points, x, y)):
        # alternate above / below: consecutive stages often share a size or a metric
        ax.annotate(f"{number}. {p['name']}\n{human_bytes(xi)}", (xi, yi), xytext=(6, 10 if j % 2 == 0 else -22),
                    textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    lo, hi = x.min(), x.max()
    ax.set_xlim(lo / 1.6, hi * 2.5)             # room for the names right of the points
    span = max(y.max() - y.min(), 0.5 if scale == 100.0 else 0.005)
    ax.set_ylim(y.min() - 0.35 * span, y.max() + 0.35 * span)
    _bytes_axis(ax, log=True)
    ax.set_ylabel(metric + (" (%)" if scale == 100.0 else ""))
    ax.set_title(f"{metric} vs size", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _svg(fig, "stages")
