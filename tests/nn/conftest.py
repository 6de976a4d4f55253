import sys
from pathlib import Path

import pytest

# the gradient-check helper sits next to the tests
sys.path.insert(0, str(Path(__file__).parent))


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
