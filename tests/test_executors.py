"""refcomp.executors: the serial, process and dask executors give the serial results, in order; bad names fail."""

import sys
import time
from concurrent.futures import Executor, Future

import numpy as np
import pytest

from refcomp.compress.precision.model import select_layer_bits
from refcomp.compress.prune.sensitivity import sensitivity
from refcomp.errors import BackendUnavailableError, ValidationError
from refcomp.executors import SerialExecutor, check_executor, get_executor, run_tasks
from refcomp.nn import train

from ._support.helpers import blobs, mlp


def _slow_square(i: int, delay: float) -> int:
    """A task that finishes later the earlier it was submitted: results must still come back in task order."""
    time.sleep(delay)
    return i * i


def _fail(i: int) -> int:
    if i == 2:
        raise ValidationError("i", "not 2", i)
    return i


@pytest.fixture(scope="module")
def trained():
    x, y = blobs(n=200)
    m = mlp()
    train(m, (x, y), epochs=5, batch_size=20, progress=False, rng=0)
    return m, (x, y)


@pytest.fixture(scope="module")
def pool():
    """Two worker processes shared by the tests (each start costs a refcomp import per worker)."""
    with get_executor("process", 2) as ex:
        yield ex


@pytest.mark.parametrize("call, argument", [
    (lambda: get_executor("threads"), "executor"),
    (lambda: check_executor("Serial"), "executor"),
    (lambda: get_executor("process", 0), "workers"),
    (lambda: get_executor("serial", 3), "workers"),
    (lambda: get_executor("process", 2, address="tcp://127.0.0.1:8786"), "address"),
    (lambda: get_executor("dask", 2, address="tcp://127.0.0.1:8786"), "workers"),
    (lambda: run_tasks(abs, [(1,)], executor=4), "executor"),
])
def test_bad_arguments_name_the_argument(call, argument):
    with pytest.raises(ValidationError, match=rf"^{argument}: expected "):
        call()


def test_serial_runs_at_submit_and_keeps_exceptions_in_the_future():
    with get_executor() as ex:
        assert isinstance(ex, SerialExecutor) and isinstance(ex, Executor)
        assert ex.submit(pow, 2, 10).result() == 1024
        f = ex.submit(_fail, 2)
        assert isinstance(f.exception(), ValidationError)
        assert list(ex.map(_fail, [0, 1])) == [0, 1]


def test_process_results_in_task_order_and_errors_reraised(pool):
    tasks = [(i, 0.3 - 0.1 * i) for i in range(3)]       # the first submitted finishes last
    assert run_tasks(_slow_square, tasks, pool) == [0, 1, 4]
    with pytest.raises(ValidationError, match="^i: expected not 2"):
        run_tasks(_fail, [(i,) for i in range(4)], pool)


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)      # import dask.distributed -> ImportError
    with pytest.raises(BackendUnavailableError, match=r"refcomp\[dask\]") as info:
        check_executor("dask")
    assert "pip install 'refcomp[dask]'" in info.value.hint
    with pytest.raises(BackendUnavailableError, match=r"refcomp\[dask\]"):
        get_executor("dask", 2)


def test_sensitivity_is_the_same_in_worker_processes(trained, pool):
    model, data = trained
    before = {n: model[n].weight.data.copy() for n in ("fc1", "fc2", "fc3")}
    sparsities = (0.0, 0.5, 0.9, 0.99)
    serial = sensitivity(model, data, sparsities=sparsities)
    assert len({a for c in serial.values() for _, a in c}) > 2       # the curves differ: a real comparison
    assert sensitivity(model, data, sparsities=sparsities, executor=pool) == serial
    for name, w in before.items():                                    # the caller's model untouched
        np.testing.assert_array_equal(model[name].weight.data, w)


def test_layer_bits_are_the_same_in_worker_processes(trained):
    """By name: run_tasks starts (and ends) its own pool."""
    model, (x, _) = trained
    serial = select_layer_bits(model, x[:64], 4.0, bit_choices=(2, 4), group_size=None)
    alloc, sens = select_layer_bits(model, x[:64], 4.0, bit_choices=(2, 4), group_size=None, executor="process")
    assert sens == serial[1] and alloc == serial[0]
    assert list(sens) == ["fc1", "fc2", "fc3"] and all(r[2] > r[4] > 0 for r in sens.values())


def test_sensitivity_on_a_local_dask_cluster_equals_serial(trained):
    pytest.importorskip("dask.distributed")
    model, data = trained
    serial = sensitivity(model, data, sparsities=(0.0, 0.7, 0.95))
    with get_executor("dask", 2) as ex:
        assert sensitivity(model, data, sparsities=(0.0, 0.7, 0.95), executor=ex) == serial
        assert list(ex.map(_slow_square, [3, 1], [0.2, 0.0])) == [9, 1]


def test_refcomp_errors_cross_the_process_boundary_whole():
    import pickle

    from refcomp.cli._common import UsageError
    from refcomp.errors import UnsupportedOperatorError

    for error in (ValidationError("x", "finite", "nan"), UsageError("--out", "a folder", "a file", "rm it"),
                  UnsupportedOperatorError("Conv", "c1", 17, "NOTSET", "SAME")):
        back = pickle.loads(pickle.dumps(error))      # in memory: what a worker's pipe carries
        assert type(back) is type(error) and str(back) == str(error) and back.__dict__ == error.__dict__


def _sleep_forever(pid_file: str, i: int) -> None:
    import os
    from pathlib import Path

    Path(f"{pid_file}.{i}").write_text(str(os.getpid()))
    time.sleep(120)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to this process")
def test_ctrl_c_ends_the_workers_at_once(tmp_path, monkeypatch):
    """Ctrl-C while tasks run: KeyboardInterrupt in the caller at once, the pool's workers ended, not waited for."""
    import os
    import signal
    import threading

    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # the test runner may ignore SIGINT
    pid_file = str(tmp_path / "pid")

    def interrupt_when_both_run():
        for _ in range(600):
            if all(os.path.exists(f"{pid_file}.{i}") for i in range(2)):
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    t = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_tasks(_sleep_forever, [(pid_file, 0), (pid_file, 1)], "process")
    finally:
        signal.signal(signal.SIGINT, old)
    assert time.perf_counter() - t < 60                               # not the tasks' 120 s
    for i in range(2):
        pid = int((tmp_path / f"pid.{i}").read_text())
        with pytest.raises(ProcessLookupError):                       # the worker is gone
            os.kill(pid, 0)


def test_a_ctrl_c_while_workers_start_is_held_until_they_have_started(monkeypatch):
    """A SIGINT during the submissions (the forkserver handshakes) is raised after them, not inside one."""
    import signal

    # Python's own handler, as in a terminal (a suite started in the background inherits SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from refcomp import executors

        order = []

        class Pool(Executor):
            def submit(self, fn, *args):
                order.append("submit")
                if len(order) == 1:
                    signal.raise_signal(signal.SIGINT)     # Ctrl-C in the middle of the first submission
                    order.append("after the signal")
                f = Future()
                f.set_result(fn(*args))
                return f

        with pytest.raises(KeyboardInterrupt):
            executors.run_tasks(abs, [(-1,), (-2,)], Pool())
        assert order == ["submit", "after the signal", "submit"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
