"""``refcomp bench``: time refcomp's kernels against the tools people would use instead.

Two tables, every ratio measured in the same run on the same inputs:

- int8 GEMM (uint8 A x int8 B -> int32), shapes (M, K, N) from the issue:
  refcomp c (B packed once, as a runtime holds a weight), refcomp c through
  ``refcomp.ops.matmul_integer`` (validation + packing per call), refcomp
  numba, numpy float32 matmul, onnxruntime MatMulInteger (default session,
  and with ``session.x64quantprecision=1``), onnx.reference. GOP/s = 2MKN/t.
  The "exact" columns say whether onnxruntime's output equalled the exact
  int32 result on these (random) inputs.
- sparse_linear float32 (out = in = 1024, batch 128) by sparsity: refcomp c
  and numba vs scipy.sparse (csr @ dense) and dense numpy float32.
  GFLOP/s counted on non-zeros (2 nnz batch / t).

Single-threaded unless --threads (numpy BLAS limited with threadpoolctl when
installed, else OPENBLAS_NUM_THREADS must be set before start-up; onnxruntime
sessions get intra_op_num_threads). Timing: the candidates of one shape are
timed round-robin (5 rounds of one >= 0.25 s loop each, the best loop counts),
so the ratios compare measurements taken under the same background load.
``--clock cpu`` measures process CPU time instead of wall time. Benchmarks
are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time

import numpy as np

from refcomp.io import write_atomic  # no partial file on Ctrl-C; the file keeps its mode

HELP = "benchmark the C / Numba kernels against numpy, onnxruntime, onnx.reference and scipy"

GEMM_SHAPES = [(128, 384, 1536), (128, 1536, 384), (512, 768, 768), (1024, 1024, 1024), (1, 1024, 1024)]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="shorter timing loops and fewer shapes")
    parser.add_argument("--threads", type=int, default=1, help="threads for every library (default 1)")
    parser.add_argument("--which", choices=["gemm", "spmm", "threads", "all"], default="all",
                        help="threads: only the 1 vs 2 thread scaling table (wall clock; needs a quiet machine)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall time, or process CPU time (steadier on a shared machine; single-thread columns only)")
    parser.add_argument("--output", help="also write the tables as Markdown into the '## Kernels' section of this "
                        "file (e.g. docs/performance.md; other sections are kept)")


# ------------------------------------------------------------------ timing
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _loop(fn, clock, min_time) -> float:
    """Seconds per call of ``fn`` over one loop of at least ``min_time`` on ``clock``."""
    n, t0 = 0, clock()
    while True:
        fn()
        n += 1
        dt = clock() - t0
        if dt >= min_time:
            return dt / n


def best_time(fn, *, min_time=0.2, repeats=3, clock=None) -> float:
    """Seconds per call: best over ``repeats`` loops of >= ``min_time`` seconds each.

    ``clock``: the module clock (set by --clock) unless given: wall time, or the
    CPU time of this process (all its threads), which a busy shared machine
    disturbs less for single-threaded code. Thread scaling is always wall time.
    """
    clock = clock or _clock
    fn()  # warm-up (JIT, packing caches, page faults)
    return min(_loop(fn, clock, min_time) for _ in range(repeats))


def interleaved_best(cands: dict, *, min_time=0.2, rounds=5) -> dict:
    """Seconds per call for each candidate, timed round-robin.

    ``cands`` maps a name to ``fn`` or ``(fn, clock)``. Each round times one
    loop of >= ``min_time`` per candidate, in turn; the best loop counts.
    Interleaving makes a ratio compare candidates measured under the same
    background load, which on a shared machine matters more than the repeats.
    """
    items = {k: (v if isinstance(v, tuple) else (v, None)) for k, v in cands.items()}
    for fn, _ in items.values():
        fn()  # warm-up
    best = {k: float("inf") for k in items}
    for _ in range(rounds):
        for k, (fn, clock) in items.items():
            best[k] = min(best[k], _loop(fn, clock or _clock, min_time))
    return best


@contextlib.contextmanager
def blas_threads(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # rely on OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set by the caller
        yield
        return
    with threadpool_limits(limits=n):
        yield


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from refcomp._version import __version__
    from refcomp.kernels import c_status

    st = c_status()
    # refcomp's version too: every table written from this line can be traced to the code that timed it
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, refcomp {__version__}, "
            f"refcomp C ISA auto -> {st['best_isa']} (paths: {', '.join(st['isas']) or 'none'})")


# ------------------------------------------------------------------ GEMM
def _ort_session(b: np.ndarray, threads: int, exact: bool):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    K, N = b.shape
    node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    graph = helper.make_graph(
        [node], "mm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", K])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["M", N])],
        initializer=[numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if exact:
        so.add_session_config_entry("session.x64quantprecision", "1")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, onnx


def gemm_rows(*, quick=False, threads=1, log=print):
    from refcomp import kernels  # noqa: F401  (registers backends)
    from refcomp.kernels import c as ck
    from refcomp.kernels.numba import matmul_integer as nbm
    from refcomp.ops import matmul_integer

    rng = np.random.default_rng(0)
    min_time = 0.05 if quick else 0.25
    shapes = GEMM_SHAPES[:1] + GEMM_SHAPES[-1:] if quick else GEMM_SHAPES
    rows = []
    for M, K, N in shapes:
        a = rng.integers(0, 256, (M, K), dtype=np.uint8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
        exact = a.astype(np.int64) @ b.astype(np.int64)
        ops = 2.0 * M * K * N
        r = {"shape": (M, K, N)}
        af, bf = a.astype(np.float32), b.astype(np.float32)
        packed = ck.PackedB(b)
        assert np.array_equal(ck.matmul_integer(a, packed), exact)
        zm, zn = np.zeros(M, np.int32), np.zeros(N, np.int32)
        nb_packed = nbm.PackedB(b)
        nb_portable = nbm.PackedB(b, path="portable")  # the plain-Numba path (what CPUs without VNNI run)
        assert np.array_equal(nbm.matmul_integer(a, nb_packed, zm, zn, threads=1), exact)
        wall = time.perf_counter
        cands = {
            "numpy_f32": lambda: af @ bf,
            "c": lambda: ck.matmul_integer(a, packed, threads=threads),
            "c_1t_wall": (lambda: ck.matmul_integer(a, packed, threads=1), wall),
            "c_2t": (lambda: ck.matmul_integer(a, packed, threads=2), wall),
            "c_op": lambda: matmul_integer(a, b, backend="c"),
            "numba": lambda: nbm.matmul_integer(a, nb_packed, zm, zn, threads=threads),
            "numba_1t_wall": (lambda: nbm.matmul_integer(a, nb_packed, zm, zn, threads=1), wall),
            "numba_2t": (lambda: nbm.matmul_integer(a, nb_packed, zm, zn, threads=2), wall),
            "numba_op": lambda: matmul_integer(a, b, backend="numba"),
            "numba_portable": lambda: nbm.matmul_integer(a, nb_portable, zm, zn, threads=threads),
        }
        try:
            for key, ex in (("ort", False), ("ort_exact", True)):
                sess, _ = _ort_session(b, threads, ex)
                r[key + "_is_exact"] = bool(np.array_equal(sess.run(None, {"A": a})[0], exact))
                cands[key] = (lambda s=sess: s.run(None, {"A": a}))
        except ImportError:
            r["ort"] = r["ort_exact"] = None
        with blas_threads(threads):
            t = interleaved_best(cands, min_time=min_time, rounds=3 if quick else 5)
        r.update({k: ops / v for k, v in t.items()})
        if not quick or M * K * N <= 2**21:
            try:
                from onnx import TensorProto, helper
                from onnx.reference import ReferenceEvaluator

                node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
                g = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.UINT8, None),
                                                     helper.make_tensor_value_info("B", TensorProto.INT8, None)],
                                      [helper.make_tensor_value_info("Y", TensorProto.INT32, None)])
                ref = ReferenceEvaluator(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
                with blas_threads(threads):
                    r["onnx_ref"] = ops / best_time(lambda: ref.run(None, {"A": a, "B": b}), min_time=min_time, repeats=1)
            except ImportError:
                r["onnx_ref"] = None
        else:
            r["onnx_ref"] = None
        rows.append(r)
        log(f"  gemm {M}x{K}x{N}: c {r['c'] / 1e9:.0f} GOP/s, ort {(r['ort'] or 0) / 1e9:.0f}, numpy f32 {r['numpy_f32'] / 1e9:.0f}")
    return rows


def _g(x):
    return "n/a" if x is None else f"{x / 1e9:.1f}"


def _ratio(x, y):
    return "n/a" if not x or not y else f"{x / y:.2f}x"


def gemm_table(rows) -> str:
    head = ("| M×K×N | numpy f32 | ORT default | ORT exact (x64quantprecision) | onnx.reference | refcomp c | c via ops | numba "
            "| numba via ops | numba portable | c / ORT default | c / ORT exact | c / numpy f32 | numba / c | c 2-thread scaling "
            "| numba 2-thread scaling |")
    sep = "|" + "---|" * 17
    lines = [head, sep]
    for r in rows:
        M, K, N = r["shape"]
        ort = f"{_g(r['ort'])} ({'exact' if r.get('ort_is_exact') else 'NOT exact'})" if r.get("ort") else "n/a"
        orte = f"{_g(r['ort_exact'])} ({'exact' if r.get('ort_exact_is_exact') else 'NOT exact'})" if r.get("ort_exact") else "n/a"
        lines.append(
            f"| {M}×{K}×{N} | {_g(r['numpy_f32'])} | {ort} | {orte} | {_g(r['onnx_ref'])} | {_g(r['c'])} | {_g(r['c_op'])} "
            f"| {_g(r['numba'])} | {_g(r['numba_op'])} | {_g(r['numba_portable'])} | {_ratio(r['c'], r['ort'])} | {_ratio(r['c'], r['ort_exact'])} "
            f"| {_ratio(r['c'], r['numpy_f32'])} | {_ratio(r['numba'], r['c'])} | {_ratio(r['c_2t'], r['c_1t_wall'])} "
            f"| {_ratio(r['numba_2t'], r['numba_1t_wall'])} |")
    return "\n".join(lines) + "\n\nGOP/s (2·M·K·N per second), threads as stated above (the scaling columns: 2 vs 1 thread, wall clock); uint8 A × int8 B (random); " \
        "\"c\" = refcomp.kernels.c.matmul_integer with B packed once (PackedB), \"c via ops\" = " \
        "refcomp.ops.matmul_integer(backend=\"c\") (validation + packing on every call); \"numba\" and " \
        "\"numba via ops\" likewise (refcomp.kernels.numba.matmul_integer.PackedB; path " \
        f"{_numba_path()!r}); \"numba portable\" = the same with path=\"portable\" (plain Numba, no VNNI intrinsic).\n"


def _numba_path() -> str:
    from refcomp.kernels.numba.matmul_integer import best_path

    return best_path()


# ------------------------------------------------------------------ SpMM
def spmm_rows(*, quick=False, threads=1, log=print):
    from refcomp.formats import CSRMatrix
    from refcomp.kernels import c as ck
    from refcomp.kernels.numba import spmm as nbs
    from refcomp.ops import sparse_linear

    rng = np.random.default_rng(0)
    min_time = 0.05 if quick else 0.25
    out_f, in_f, batch = 1024, 1024, 128
    x = rng.standard_normal((batch, in_f)).astype(np.float32)
    xT = ck.aligned_array(x.T)  # built once, 64-byte aligned: the kernel then reads it in place
    Wfull = rng.standard_normal((out_f, in_f)).astype(np.float32)
    rows = []
    for s in (SPARSITIES[1:4] if quick else SPARSITIES):
        Wd = np.where(rng.random((out_f, in_f)) >= s, Wfull, 0).astype(np.float32)
        W = CSRMatrix.from_dense(Wd)
        flops = 2.0 * W.nnz * batch
        r = {"sparsity": s, "nnz": W.nnz}
        shp = W.shape
        blk = W.column_blocks(batch)  # what W @ X and sparse_linear use
        wall = time.perf_counter
        cands = {
            "dense": lambda: x @ Wfull.T,
            "c": lambda: ck.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, shp, xT, threads=threads, validated=True, blocks=blk),
            "c_1t_wall": (lambda: ck.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, shp, xT, threads=1, validated=True,
                                                  blocks=blk), wall),
            "c_2t": (lambda: ck.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, shp, xT, threads=2, validated=True,
                                             blocks=blk), wall),
            "c_op": lambda: sparse_linear(x, W, backend="c"),
            "numba": lambda: nbs.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, shp, xT, threads=threads),
        }
        try:
            S = W.to_scipy()
            cands["scipy"] = lambda: S @ xT
            cands["scipy_natural"] = lambda: x @ S.T  # how y = x Wᵀ is written with scipy
        except ImportError:
            r["scipy"] = r["scipy_natural"] = None
        with blas_threads(threads):
            t = interleaved_best(cands, min_time=min_time, rounds=3 if quick else 5)
        # the dense column: the time of the dense product, expressed per non-zero flop
        r.update({k: flops / v for k, v in t.items()})
        rows.append(r)
        log(f"  spmm {s:.0%}: c {r['c'] / 1e9:.1f} GFLOP/s, scipy {(r['scipy'] or 0) / 1e9:.1f}")
    return rows


def spmm_table(rows) -> str:
    head = ("| sparsity | nnz | dense numpy f32 (on nnz) | scipy S @ xᵀ | scipy x @ S.T | refcomp c | sparse_linear (c, op) "
            "| numba | c / scipy S @ xᵀ | op / scipy x @ S.T | c vs dense (time ratio) | c op vs dense | numba / c "
            "| c 2-thread scaling |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['sparsity']:.0%} | {r['nnz']} | {_g(r['dense'])} | {_g(r['scipy'])} | {_g(r.get('scipy_natural'))} "
            f"| {_g(r['c'])} | {_g(r['c_op'])} | {_g(r['numba'])} | {_ratio(r['c'], r['scipy'])} "
            f"| {_ratio(r['c_op'], r.get('scipy_natural'))} | {_ratio(r['c'], r['dense'])} | {_ratio(r['c_op'], r['dense'])} "
            f"| {_ratio(r['numba'], r['c'])} | {_ratio(r['c_2t'], r['c_1t_wall'])} |")
    return "\n".join(lines) + (
        "\n\nGFLOP/s counted on non-zeros (2·nnz·batch per second; dense numpy column: the dense "
        "x @ W.T time expressed the same way, so \"c vs dense\" > 1 means the sparse kernel is faster "
        "than the dense product), out = in = 1024, batch 128, float32, threads as stated above "
        "(last column: 2 vs 1 thread, wall clock). \"refcomp c\" = W @ xᵀ kernel (csr_spmm_f32, "
        "column-blocked as CSRMatrix chooses, xᵀ held 64-byte aligned), compared with scipy on the same xᵀ "
        "(\"scipy S @ xᵀ\", scipy's fastest form); \"sparse_linear (c, op)\" = refcomp.ops.sparse_linear(x, W) "
        "(adds the two transposes), compared with the same product written the natural way in scipy "
        "(\"scipy x @ S.T\").\n")


# ------------------------------------------------------------------ thread scaling
def _cpu_jiffies():
    """(busy jiffies of the whole machine, jiffies of this process) from /proc, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, int(own[11]) + int(own[12])  # utime + stime


def thread_rows(*, quick=False, log=print):
    """Wall-clock time of 1 vs 2 threads for the c and numba kernels, with the CPU the rest of the machine used.

    "others" = CPU-seconds per second that processes other than this one used
    while the shape was timed (from /proc/stat): 0 on an idle 2-core machine,
    1 when a neighbour keeps one core busy -- then a second thread has no core
    to run on and the scaling says nothing about the kernel.
    """
    from refcomp.formats import CSRMatrix
    from refcomp.kernels import c as ck
    from refcomp.kernels.numba import matmul_integer as nbm
    from refcomp.kernels.numba import spmm as nbs

    rng = np.random.default_rng(0)
    min_time = 0.05 if quick else 0.2
    wall = time.perf_counter
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    jobs = []
    for M, K, N in (GEMM_SHAPES[:1] if quick else GEMM_SHAPES[:4]):
        a = rng.integers(0, 256, (M, K), dtype=np.uint8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
        pc, pn = ck.PackedB(b), nbm.PackedB(b)
        z = np.zeros(1, np.int32)
        jobs.append((f"int8 GEMM {M}×{K}×{N}", {
            "c": lambda t, a=a, p=pc: ck.matmul_integer(a, p, threads=t),
            "numba": lambda t, a=a, p=pn: nbm.matmul_integer(a, p, z, z, threads=t)}))
    x = rng.standard_normal((128, 1024)).astype(np.float32)
    xT = ck.aligned_array(x.T)
    W = CSRMatrix.from_dense(np.where(rng.random((1024, 1024)) >= 0.9, rng.standard_normal((1024, 1024)), 0)
                             .astype(np.float32))
    blk = W.column_blocks(128)
    jobs.append(("sparse_linear 90 %", {
        "c": lambda t: ck.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, W.shape, xT, threads=t, validated=True, blocks=blk),
        "numba": lambda t: nbs.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, W.shape, xT, threads=t)}))
    rows = []
    for name, fns in jobs:
        cands = {f"{k}_{t}": ((lambda f=f, t=t: f(t)), wall) for k, f in fns.items() for t in (1, 2)}
        j0, w0 = _cpu_jiffies(), wall()
        t = interleaved_best(cands, min_time=min_time, rounds=3 if quick else 5)
        j1, w1 = _cpu_jiffies(), wall()
        others = None if j0 is None or j1 is None else max(0.0, ((j1[0] - j0[0]) - (j1[1] - j0[1])) / hz / (w1 - w0))
        r = {"name": name, "others": others}
        r.update({k: t[f"{k}_1"] / t[f"{k}_2"] for k in fns})
        rows.append(r)
        log(f"  {name}: c {r['c']:.2f}x, numba {r['numba']:.2f}x, others {others if others is None else round(others, 2)}")
    return rows


def thread_table(rows) -> str:
    lines = ["| kernel | c: 2 threads / 1 thread | numba: 2 threads / 1 thread | CPU used by other processes meanwhile |",
             "|---|---|---|---|"]
    for r in rows:
        o = "n/a" if r["others"] is None else f"{r['others']:.2f} cores"
        lines.append(f"| {r['name']} | {r['c']:.2f}x | {r['numba']:.2f}x | {o} |")
    return "\n".join(lines) + ("\n\nSpeed-up = best 1-thread wall time / best 2-thread wall time (interleaved, "
                               "B packed once; sparse_linear = the W @ xᵀ kernel). Meaningful only when the last "
                               "column is near 0: the machine has 2 cores.\n")


def run(args) -> int:
    global _clock
    from refcomp.kernels import c_status

    if not c_status()["available"]:
        from refcomp.errors import BackendUnavailableError

        raise BackendUnavailableError(f"the C kernels are not built ({c_status()['error']}); nothing to compare "
                                      "(build them: pip install -e . with a C compiler, see csrc/README.md)")
    _clock = CLOCKS[args.clock]
    from refcomp import backend

    threads_before = backend.get_num_threads()
    backend.set_num_threads(args.threads)  # refcomp.ops calls ("via ops" columns)
    try:
        return _run(args)
    finally:
        backend.set_num_threads(threads_before)


def _run(args) -> int:
    parts = [f"Machine: {machine()}\n",
             f"Threads: {args.threads}; clock: {args.clock} (2-thread scaling: wall clock); quick: {args.quick}\n"]
    print(parts[0], end="")
    if args.which in ("gemm", "all"):
        print("int8 GEMM ...")
        parts.append("### int8 GEMM\n\n" + gemm_table(gemm_rows(quick=args.quick, threads=args.threads)))
    if args.which in ("spmm", "all"):
        print("sparse_linear ...")
        parts.append("### sparse_linear float32\n\n" + spmm_table(spmm_rows(quick=args.quick, threads=args.threads)))
    if args.which == "threads":
        print("thread scaling ...")
        parts.append("### 2-thread scaling\n\n" + thread_table(thread_rows(quick=args.quick)))
    text = "\n".join(parts)
    print()
    print(text)
    if args.output and args.which == "threads":
        # its own marker pair, placed by hand in the prose: never replaces the main tables
        if not write_block(args.output, text, THREADS_BEGIN, THREADS_END):
            print(f"refcomp bench: {args.output} has no {THREADS_BEGIN} ... {THREADS_END} block; not written")
            return 1
    elif args.output:
        write_section(args.output, "## Kernels", text)
    return 0


BEGIN, END = "<!-- refcomp bench: begin -->", "<!-- refcomp bench: end -->"
THREADS_BEGIN, THREADS_END = "<!-- refcomp bench threads: begin -->", "<!-- refcomp bench threads: end -->"


def write_block(path: str, body: str, begin: str, end: str) -> bool:
    """Replace the text between the markers ``begin`` and ``end`` of ``path``; False if they are absent."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        return False
    if begin not in old or end not in old or old.index(begin) > old.index(end):
        return False
    new = old[:old.index(begin)] + f"{begin}\n{body.rstrip()}\n{end}" + old[old.index(end) + len(end):]
    write_atomic(path, new.encode())
    return True


def write_section(path: str, heading: str, body: str) -> None:
    """Put ``body`` into the Markdown file ``path`` without touching anything else.

    If the file has the markers BEGIN/END, only the text between them is
    replaced (prose written around the tables survives a re-run). Otherwise a
    section ``heading`` holding the markers is added (or replaces an existing
    section of that name up to the next '## ' heading). Written atomically.
    """
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = "# Performance\n"
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in old and END in old and old.index(BEGIN) < old.index(END):
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        lines = old.splitlines(keepends=True)
        start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
        section = [heading + "\n\n", block + "\n\n"]
        if start is None:
            lines = lines + (["\n"] if lines and lines[-1].strip() else []) + section
        else:
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
            lines = lines[:start] + section + lines[end:]
        new = "".join(lines)
    write_atomic(path, new.encode())
