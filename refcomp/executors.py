"""Where independent tasks run: in this process, in worker processes, or on a dask cluster.

A sensitivity analysis is many independent evaluations (one per layer), and a
sweep is many independent runs; :func:`get_executor` gives each of them a
``concurrent.futures.Executor`` to run them through, chosen by name:

- ``"serial"`` (the default): every task runs in the calling process, at
  ``submit``, in order. No copies, no start-up cost.
- ``"process"``: a ``concurrent.futures.ProcessPoolExecutor`` whose workers
  are started by the *forkserver* method. Not ``fork``: a process that ran an
  OpenMP-threaded Numba kernel and then forks gets children that die at their
  first kernel (docs/kernels.md, "Numba's threading layer (fork safety)"), and
  forking a process that has other threads running is unsafe in general. A
  forkserver child is forked from a small clean server process instead.
- ``"dask"``: ``dask.distributed``; a ``Client`` on ``address`` (a running
  scheduler) or on a new ``LocalCluster`` of ``workers`` processes, seen
  through ``Client.get_executor()`` (the same ``submit`` / ``map`` /
  ``Future`` interface). Needs the optional extra ``refcomp[dask]``.

Tasks and their arguments travel to the workers by the executor's own
transport (pickle over a pipe or a socket, never written to a file: refcomp
writes no pickle files). A task's result depends only on its arguments, so
results are identical whatever the executor; randomness, where a task has
any, comes from a seed among its arguments, never from the worker.

Workers use one refcomp thread each (``set_num_threads(1)``): ``workers``
processes are the parallelism, and threads inside them would oversubscribe
the cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import warnings
from concurrent.futures import Executor, Future, ProcessPoolExecutor

from .backend import set_num_threads
from .checks import integer
from .errors import BackendUnavailableError, ValidationError

__all__ = ["EXECUTORS", "SerialExecutor", "check_executor", "get_executor", "run_tasks"]

#: the names get_executor takes
EXECUTORS = ("serial", "process", "dask")


class SerialExecutor(Executor):
    """Runs each task at ``submit``, in the calling process: the reference every other executor must equal."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the Future carries it, as a pool's would; Ctrl-C propagates at once
            future.set_exception(exc)
        return future


def _worker_start() -> None:
    """Worker initializer: one refcomp thread (the processes are the parallelism); Ctrl-C left to the parent.

    A terminal's Ctrl-C reaches every process of the group: workers that took it
    would each print a KeyboardInterrupt traceback. The parent alone handles it
    (run_tasks ends the workers), so the command prints its one line.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_num_threads(1)


class _DaskExecutor(Executor):
    """A dask.distributed Client's executor that also closes the client (and the cluster it made) on shutdown."""

    def __init__(self, client, cluster):
        self._client, self._cluster = client, cluster
        self._executor = client.get_executor()
        client.run(set_num_threads, 1)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with warnings.catch_warnings():
            # "Sending large graph": a task carries its model and data by design (the module docstring)
            warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
            # pure=False: a task is run each time it is submitted, as with the other executors
            return self._executor.submit(fn, *args, pure=False, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def check_executor(name: str) -> str:
    """``name`` if it is an executor that can run here; else the error get_executor would raise, before any work."""
    if name not in EXECUTORS:
        raise ValidationError("executor", f"one of {', '.join(EXECUTORS)}", repr(name))
    if name == "dask":
        _dask_distributed()
    return name


def _dask_distributed():
    """The dask.distributed module, or BackendUnavailableError naming the extra that brings it."""
    try:
        import dask.distributed
    except ImportError as exc:
        error = BackendUnavailableError(f"executor: expected dask.distributed for the 'dask' executor, "
                                        f"got {exc} (it comes with the extra refcomp[dask])")
        error.hint = "pip install 'refcomp[dask]', or use --executor process"
        raise error from None
    return dask.distributed


def get_executor(name: str = "serial", workers: int | None = None, *, address: str | None = None) -> Executor:
    """A ``concurrent.futures.Executor`` by name: ``"serial"``, ``"process"`` or ``"dask"``.

    workers : processes for ``"process"`` and for the LocalCluster of
        ``"dask"`` (default: the CPU count); None or 1 for ``"serial"``.
    address : a running dask scheduler (``"tcp://host:8786"``) for ``"dask"``;
        without it a LocalCluster is started and closed with the executor.

    Use it as a context manager (``with get_executor("process", 2) as ex:``),
    or call ``shutdown()``: the pool's processes (or the cluster) end there.
    """
    check_executor(name)
    if workers is not None:
        integer(workers, "workers", minimum=1)
    if address is not None and name != "dask":
        raise ValidationError("address", f"None for the {name!r} executor (a dask scheduler's address)",
                              repr(address))
    if address is not None and workers is not None:
        raise ValidationError("workers", "None with address (the scheduler's cluster has its own workers)", workers)
    if name == "serial":
        if workers not in (None, 1):
            raise ValidationError("workers", "None or 1 for the 'serial' executor", workers)
        return SerialExecutor()
    n = workers or os.cpu_count() or 1
    if name == "process":
        return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_worker_start)
    distributed = _dask_distributed()
    if address is not None:
        return _DaskExecutor(distributed.Client(address), None)
    # processes=True: the GIL would serialize threads running NumPy-light Python code;
    # one thread per worker, the workers being the parallelism
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return _DaskExecutor(distributed.Client(cluster), cluster)


def run_tasks(fn, tasks, executor="serial") -> list:
    """``[fn(*t) for t in tasks]`` through ``executor``: a name (made and shut down here) or an Executor (kept open).

    The results come back in the order of ``tasks``, whichever finished first;
    the first task that raised re-raises its exception here. On any exception
    or Ctrl-C the tasks not started are cancelled, and the worker processes
    of an executor made here are ended at once rather than waited for.
    """
    tasks = [tuple(t) for t in tasks]
    if isinstance(executor, Executor):
        return _results(executor, fn, tasks)
    if not isinstance(executor, str):
        raise ValidationError("executor", f"one of {', '.join(EXECUTORS)} or a concurrent.futures.Executor",
                              type(executor).__name__)
    workers = None if executor == "serial" else max(1, min(len(tasks), os.cpu_count() or 1))
    ex = get_executor(executor, workers)
    try:
        results = _results(ex, fn, tasks)
    except BaseException:
        _abandon(ex)
        raise
    ex.shutdown()
    return results


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold a Ctrl-C that lands inside the block and raise it on leaving.

    Why: submitting starts the pool's workers, and a worker is started by a
    handshake with the forkserver; a KeyboardInterrupt raised in the middle of
    it leaves the server reading a broken message, and the server then prints
    its own traceback on the terminal. Held until the handshakes are done, the
    interrupt ends the run as usual (one line, the workers ended). Python runs
    signal handlers in the main thread only, so elsewhere nothing is changed.
    """
    if threading.current_thread() is not threading.main_thread() or not callable(signal.getsignal(signal.SIGINT)):
        yield                                       # not the main thread, or Ctrl-C ignored / not Python's
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        previous(signal.SIGINT, caught[0])          # Python's default raises KeyboardInterrupt here


def _results(ex: Executor, fn, tasks: list) -> list:
    with _ctrl_c_deferred():
        futures = [ex.submit(fn, *t) for t in tasks]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def _abandon(ex: Executor) -> None:
    """Shut ``ex`` down without waiting for its running tasks: a process pool's workers are terminated."""
    if isinstance(ex, ProcessPoolExecutor):
        # the public terminate_workers() exists from Python 3.14 on; before it, the pool's process table
        processes = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.terminate()
        for p in processes:
            p.join(5)
    else:
        ex.shutdown(wait=False, cancel_futures=True)
