"""kernels/numba/_threads.py: Numba's threading layer is fork-safe and refcomp's calls are thread-safe.

With Numba's default choice on Linux without TBB (GNU OpenMP, "omp"), a
process that has run a parallel kernel and then forks gets children that
Numba terminates ("fork() called from a process already using GNU OpenMP")
on their first parallel kernel, so a multiprocessing pool hangs. Each check
runs in a fresh interpreter (the layer is chosen once per process) under a
timeout, so a hang fails instead of blocking the suite.
"""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import sys
    import threading

    import numpy as np

    import refcomp
    import refcomp.ops as ops
    from refcomp.formats import CSRMatrix

    rng = np.random.default_rng(0)
    dense = rng.standard_normal((300, 400)).astype(np.float32)
    dense[rng.random(dense.shape) < 0.7] = 0
    W = CSRMatrix.from_dense(dense)
    A = rng.integers(0, 256, (64, 256)).astype(np.uint8)
    B = rng.integers(-128, 128, (256, 160)).astype(np.int8)
    X = rng.standard_normal((400, 64)).astype(np.float32)
    WANT = (ops.csr_matmul(W, X, backend="numpy"), ops.matmul_integer(A, B, backend="numpy"))


    def work(i=0):
        y = ops.csr_matmul(W, X, backend="numba")
        m = ops.matmul_integer(A, B, backend="numba")
        return bool(np.allclose(y, WANT[0], rtol=1e-5, atol=1e-4) and np.array_equal(m, WANT[1]))


    if __name__ == "__main__":
        refcomp.set_num_threads(2)  # the parent runs the kernels on Numba's threads ...
        assert work()
        ok = []
        threads = [threading.Thread(target=lambda: ok.append(all(work() for _ in range(5)))) for _ in range(3)]
        for t in threads:  # ... and from several Python threads at once
            t.start()
        for t in threads:
            t.join()
        assert ok == [True] * 3, ok
        import numba
        print("layer", numba.threading_layer(), flush=True)
        pool = mp.get_context("fork").Pool(2)
        try:
            res = pool.map_async(work, range(4)).get(timeout=60)  # a terminated child: a hang, then this
        finally:
            pool.terminate()
        assert res == [True] * 4, res
        print("fork ok", flush=True)
""")


def _run(tmp_path, env_extra=None):
    import os

    path = tmp_path / "fork_after_threads.py"
    path.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    env.update(env_extra or {})
    try:
        r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=400, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung: {exc.stdout!r} {exc.stderr!r}")
    return r


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_a_fork_pool_runs_numba_kernels_after_the_parent_used_them_with_threads(tmp_path):
    r = _run(tmp_path)
    assert r.returncode == 0 and "fork ok" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Terminating" not in r.stderr


def test_the_applications_choice_of_layer_is_kept(tmp_path):
    code = ("import numpy as np, numba, refcomp.ops as ops\n"
            "from refcomp.kernels.numba import _threads\n"
            "ops.gelu(np.ones(10**5, np.float32), backend='numba')\n"
            "print(numba.threading_layer(), _threads.LAYER_CHOSEN_BY_REFCOMP)\n")
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    got = {}
    for layer in (None, "workqueue", "omp"):
        e = dict(env, NUMBA_THREADING_LAYER=layer) if layer else env
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=e)
        if layer == "omp" and r.returncode != 0:
            continue  # no OpenMP runtime here
        assert r.returncode == 0, r.stderr[-3000:]
        got[layer] = r.stdout.split()
    # not chosen by the application: a fork-safe layer (tbb where installed, else workqueue)
    assert got[None][0] in ("tbb", "workqueue") and got[None][1] == "True"
    assert got["workqueue"] == ["workqueue", "False"]
    if "omp" in got:
        assert got["omp"] == ["omp", "False"]
