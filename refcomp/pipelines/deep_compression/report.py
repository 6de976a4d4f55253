"""The Deep Compression report: Markdown with the paper's size table, JSON, the size plot, and the
run record (refcomp.report) rendered as the self-contained report.html.

Each records the refcomp version that wrote it (report.md under its title,
results.json as ``refcomp_version``, sizes.png in its PNG ``Software`` text
chunk, report.html in its provenance): a report's numbers can then be traced
to the code.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ... import report as run_report
from ..._version import __version__
from ...compress.prune.model import prunable_layers
from ...formats.relative_csr import size_table_markdown
from ...io.atomic import write_atomic
from ...io.provenance import png_metadata
from .run import PipelineResult

__all__ = ["write_report", "run_record"]


def _pruned_bytes(rows: list) -> float:
    """Stage P's bytes: the relative-index entries holding float32 weights instead of cluster indices."""
    return sum(r["entries"] * (32 + r["index_bits"]) + r["row_pointer_bits"] for r in rows) / 8


def run_record(result: PipelineResult, *, title: str, model_name: str, provenance: dict,
               sensitivity: Mapping | None = None) -> dict:
    """The run record (refcomp.report) of a pipeline run: sizes, weights, stages, provenance.

    The stage sizes count the compressed layers' weights only, as the paper's table does.
    provenance : refcomp.report.provenance(...) of the run.
    sensitivity : {layer: [(sparsity, accuracy), ...]} of the dense baseline, if swept.
    """
    rows = [r for r in result.table if r["layer"] != "total"]
    total = result.table[-1]
    acc = result.accuracy
    layers = [{"name": r["layer"], "shape": list(result.storage[r["layer"]].shape), "format": "RelativeIndexCSR, "
               "Huffman-coded (P+Q+H)", "bytes_before": int(r["dense_bits"] // 8), "bytes_after": int(r["pqh_bytes"])}
              for r in rows]
    pruned = prunable_layers(result.pruned, [r["layer"] for r in rows]) if result.pruned is not None else {}
    weights = []
    for r in rows:
        name = r["layer"]
        values = pruned[name].weight.data if name in pruned else result.storage[name].to_dense()
        weights.append({"layer": name, "histogram": run_report.histogram(values, drop_zeros=True),
                        "grid": [float(c) for c in np.asarray(result.clustered[name].codebook)],
                        "grid_kind": "centroids",
                        "note": "Histograms: the nonzero weights after pruning and retraining (before clustering); "
                                "red: the cluster centroids after fine-tuning, the values the stored weights take."})
    stages = [
        {"name": "dense", "bytes": int(total["dense_bits"] // 8), "metric": acc["dense"]},
        {"name": "pruned + retrained (P)", "bytes": int(round(_pruned_bytes(rows))), "metric": acc["pruned"]},
        {"name": "clustered (P+Q)", "bytes": int(total["pq_bytes"]), "metric": acc["clustered"]},
        {"name": "centroids fine-tuned (P+Q)", "bytes": int(total["pq_bytes"]), "metric": acc["compressed"]},
        {"name": "Huffman-coded (P+Q+H)", "bytes": int(total["pqh_bytes"]),
         "metric": acc.get("from_file", acc["compressed"])},
    ]
    summary = {"pipeline": "Deep Compression (prune, cluster, fine-tune centroids, Huffman)",
               "parameters": int(result.dense_bytes // 4), "compressed layers": len(rows),
               "weights kept": f"{total['kept_pct']:.1f} %",
               "weights": f"{total['dense_bits'] // 8:,} B -> {total['pqh_bytes']:,} B ({result.weights_ratio:.1f}x)",
               "whole model (float32 biases)": f"{result.dense_bytes:,} B -> "
                                               f"{total['pqh_bytes'] + result.bias_bytes:,} B ({result.model_ratio:.1f}x)",
               "test accuracy": f"{100 * acc['dense']:.2f} % dense -> {100 * acc['compressed']:.2f} % compressed"}
    if result.file:
        summary["model file"] = f"{Path(result.file).name}, {result.file_bytes:,} B"
    record = {"title": title, "model": {"name": model_name, "summary": summary}, "provenance": provenance,
              "layers": layers, "weights": weights, "stages": stages, "metric": "test accuracy"}
    if sensitivity:
        record["sensitivity"] = {k: [[float(s), float(a)] for s, a in v] for k, v in sensitivity.items()}
    return record


def _plot_sizes(result: PipelineResult, path: Path) -> bool:
    """Stacked bars of each layer's compressed bytes (weight field, index field, codebook,
    row pointers) after P+Q+H, next to its P+Q size. Returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in result.table if r["layer"] != "total"]
    names = [r["layer"] for r in rows]
    parts = {"weight field (Huffman)": [], "index field (Huffman)": [], "codebook": [], "row pointers": []}
    for r in rows:
        e = r["entries"]
        parts["weight field (Huffman)"].append(r["huffman_weight_bits"] * e / 8)
        parts["index field (Huffman)"].append(r["huffman_index_bits"] * e / 8)
        parts["codebook"].append(r["codebook_bits"] / 8)
        parts["row pointers"].append(r["row_pointer_bits"] / 8)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for label, vals in parts.items():
        ax1.bar(x, vals, bottom=bottom, label=label)
        bottom += np.array(vals)
    ax1.bar(x + 0.0, [r["pq_bytes"] for r in rows], fill=False, edgecolor="k", linestyle="--",
            label="P+Q (no Huffman)")
    ax1.set_xticks(x, names)
    ax1.set_ylabel("bytes")
    ax1.set_title("compressed size per layer (P+Q+H)")
    ax1.legend(fontsize=7)
    total = result.table[-1]
    stages = ["dense", "pruned (P)", "P+Q", "P+Q+H"]
    pruned_bytes = _pruned_bytes(rows)
    vals = [total["dense_bits"] / 8, pruned_bytes, total["pq_bytes"], total["pqh_bytes"]]
    ax2.bar(stages, np.array(vals) / 1024)
    ax2.set_yscale("log")
    ax2.set_ylabel("KiB (log)")
    ax2.set_title(f"weights: {total['dense_bits'] / 8 / 1024:.0f} KiB -> {total['pqh_bytes'] / 1024:.1f} KiB "
                  f"({result.weights_ratio:.1f}x)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata=png_metadata())
    write_atomic(path, buf.getvalue())      # a complete PNG or none (Ctrl-C), with the usual permissions
    plt.close(fig)
    return True


def _file_line(result: PipelineResult) -> str:
    """The report's sentence on the compressed file: its size and what its bytes hold."""
    line = (f"File `{Path(result.file).name}`: {result.file_bytes:,} B on disk "
            f"({result.dense_bytes / result.file_bytes:.1f}x the dense parameters), the compressed model in the "
            "compact encoding of the model file, graph included: `refcomp.io.load_model(path)` returns it "
            "runnable, and it was read back that way and evaluated as `from_file`.")
    p = result.file_parts
    if p:
        line += (f" It holds {p['coded_fields']:,} B of coded weight fields (the table's streams, code lengths "
                 f"and codebooks in whole bytes per stream, row pointers at 32 bits), {p['other_tensors']:,} B "
                 f"of other tensors (biases) and a {p['header']:,} B header (the graph and tensor directory, "
                 "deflated; a 16-byte prefix with a checksum; the int64 field header of each coded layer), "
                 "which the table does not count.")
    return line


def write_report(result: PipelineResult, out_dir, *, title: str = "Deep Compression", command: str = "",
                 extra_seconds: Mapping | None = None, extra_markdown: str = "", record: dict | None = None) -> dict:
    """Write report.md, results.json and sizes.png (if matplotlib) into ``out_dir``; return their paths.

    extra_markdown : appended to the report (e.g. the sensitivity section of the CLI).
    record : the run record (:func:`run_record`); then report.html and record.json are written too
        (paths "html", "record"), and report.md points to the page.
    """
    if record is not None:
        run_report.check_record(record)    # a bad record fails before any file is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds = dict(extra_seconds or {}, **result.seconds)
    acc = result.accuracy
    total = result.table[-1]
    lines = [f"# {title}", "", f"Written by refcomp {__version__}.", ""]
    if record is not None:
        lines += [f"Figures and tables in one page: [{run_report.HTML_FILE}]({run_report.HTML_FILE}).", ""]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    lines += [
        "## Accuracy (test set)", "",
        "| stage | accuracy |", "|---|---|",
        *(f"| {k} | {100 * v:.2f} % |" for k, v in acc.items()),
        "",
        f"Change from the dense baseline: {100 * (acc['compressed'] - acc['dense']):+.2f} percentage points "
        "(evaluated on weights decoded from the stored bit fields; `compressed_csr` through the CSR kernels).",
        "",
        "## Size (paper Table 2/3 style; weights only)", "",
        size_table_markdown(result.table),
        f"Weights: {total['dense_bits'] / 8:,.0f} B dense -> {total['pqh_bytes']:,} B "
        f"(**{result.weights_ratio:.1f}x**, P+Q+H; {total['dense_bits'] / 8 / total['pq_bytes']:.1f}x P+Q).",
        f"Whole model incl. {result.bias_bytes:,} B of float32 biases: {result.dense_bytes:,} B -> "
        f"{total['pqh_bytes'] + result.bias_bytes:,} B (**{result.model_ratio:.1f}x**).",
        "",
        *([_file_line(result), ""] if result.file else []),
        "## Time", "",
        "| stage | seconds |", "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in seconds.items()),
        f"| **total** | {sum(seconds.values()):.1f} |",
        "",
        "## Configuration", "",
        "```json", json.dumps(result.config.to_dict(), indent=1, sort_keys=True), "```", "",
    ]
    png = out / "sizes.png"
    if _plot_sizes(result, png):
        lines += ["![size breakdown](sizes.png)", ""]
    else:
        # said in the report, where the plot would be: matplotlib is an extra, not a core dependency
        lines += ["(No size plot: it needs matplotlib, `pip install 'refcomp[plot]'`.)", ""]
        png = None
    if extra_markdown:
        lines += [extra_markdown, ""]
    paths = {"report": write_atomic(out / "report.md", "\n".join(lines).encode())}
    summary = result.summary()
    summary["refcomp_version"] = __version__
    summary["seconds"] = seconds
    summary["table"] = result.table
    paths["json"] = write_atomic(out / "results.json",
                                 json.dumps(summary, indent=1, sort_keys=True, default=float).encode())
    if png is not None:
        paths["plot"] = png
    if record is not None:
        paths.update(run_report.write_report(record, out, markdown=False))
    return paths
