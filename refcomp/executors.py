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

import multiprocessing
import os
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
        except BaseException as exc:  # the Future carries it, as a pool's would (KeyboardInterrupt too)
            if not isinstance(exc, Exception):
                raise
            future.set_exception(exc)
        return future


def _one_thread() -> None:
    """Worker initializer: the processes are the parallelism (see the module docstring)."""
    set_num_threads(1)


class _DaskExecutor(Executor):
    """A dask.distributed Client's executor that also closes the client (and the cluster it made) on shutdown."""

    def __init__(self, client, cluster):
        self._client, self._cluster = client, cluster
        self._executor = client.get_executor()
        client.run(_one_thread)

    def submit(self, fn, /, *args, **kwargs) -> Future:
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
        ``"dask"`` (default: the CPU count); must be None for ``"serial"``.
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
    if name == "serial":
        if workers not in (None, 1):
            raise ValidationError("workers", "None or 1 for the 'serial' executor", workers)
        return SerialExecutor()
    n = workers or os.cpu_count() or 1
    if name == "process":
        return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_one_thread)
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
    the first task that raised re-raises its exception here.
    """
    tasks = [tuple(t) for t in tasks]
    if isinstance(executor, Executor):
        return [f.result() for f in [executor.submit(fn, *t) for t in tasks]]
    if not isinstance(executor, str):
        raise ValidationError("executor", f"one of {', '.join(EXECUTORS)} or a concurrent.futures.Executor",
                              type(executor).__name__)
    workers = None if executor == "serial" else max(1, min(len(tasks), os.cpu_count() or 1))
    with get_executor(executor, workers) as ex:
        return [f.result() for f in [ex.submit(fn, *t) for t in tasks]]
