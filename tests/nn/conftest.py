import pytest


@pytest.fixture(autouse=True, scope="module")
def _single_thread_blas():
    """One BLAS thread: the machine is shared, and tiny matrices only lose from threading."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(1):
        yield
