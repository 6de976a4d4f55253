"""``refcomp bench``: the benchmark harness of a source checkout, benchmarks/harness.py.

Benchmarks are not part of the library (they import onnxruntime, scipy and
write docs/performance.md), so they live in benchmarks/ beside the package;
this entry finds that file next to the installed sources and hands it the
command line. From an installed wheel, without the checkout, it says so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import RefcompError
from . import _common
from ._common import UsageError

HELP = "benchmark the C / Numba kernels against numpy, onnxruntime, onnx.reference and scipy"

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "harness.py"


def _harness():
    if not HARNESS.is_file():
        return None
    spec = importlib.util.spec_from_file_location("refcomp_benchmarks_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_arguments(parser) -> None:
    harness = _harness()
    if harness is not None:
        harness.add_arguments(parser)
    _common.add_json(parser)


def _json_run(harness):
    """In place of the harness's table printing: its rows as one JSON document (harness.run still sets
    the clock and the thread count around it). The harness's progress lines are dropped: stdout is the JSON."""
    def run(args) -> int:
        def quiet(line):
            return None
        out = {"machine": harness.machine(), "threads": args.threads, "clock": args.clock, "quick": args.quick}
        if args.which in ("gemm", "all"):
            out["gemm"] = harness.gemm_rows(quick=args.quick, threads=args.threads, log=quiet)
        if args.which in ("spmm", "all"):
            out["spmm"] = harness.spmm_rows(quick=args.quick, threads=args.threads, log=quiet)
        if args.which == "threads":
            out["threads_scaling"] = harness.thread_rows(quick=args.quick, log=quiet)
        _common.emit_json(out)
        return 0
    return run


def run(args) -> int:
    harness = _harness()
    if harness is None:
        raise RefcompError(f"refcomp bench runs {HARNESS.relative_to(HARNESS.parents[1])} of a source checkout "
                           f"(not found at {HARNESS})")
    # checked before minutes of timing loops
    if args.threads < 1:
        raise UsageError("--threads", "an int >= 1", args.threads)
    if args.output:
        out = _common.output_file(args.output, "--output", (".md",))
        if args.which == "threads":
            # that table goes between markers placed by hand: without them nothing would be written
            text = out.read_text(encoding="utf-8") if out.is_file() else ""
            if harness.THREADS_BEGIN not in text or harness.THREADS_END not in text:
                raise UsageError("--output", f"with --which threads, a Markdown file holding the lines "
                                 f"{harness.THREADS_BEGIN} and {harness.THREADS_END}", repr(args.output),
                                 "place the two markers where the table should go")
    if args.json:
        if args.output:
            raise UsageError("--output", "no --output with --json (one writes Markdown, the other prints JSON)",
                             repr(args.output), "run the command twice, or drop one of them")
        harness._run = _json_run(harness)      # a module loaded for this call alone (_harness)
    return harness.run(args)
