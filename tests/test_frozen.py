"""refcomp._frozen: read-only copies that NumPy refuses to make writeable again."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from refcomp._frozen import frozen, is_frozen


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64, np.float32, np.float64, np.complex128])
def test_a_frozen_copy_cannot_be_written_nor_made_writeable(dtype):
    a = np.arange(12).reshape(3, 4)[:, ::2].astype(dtype)  # not contiguous: frozen copies
    f = frozen(a)
    assert f.flags.c_contiguous and f.flags.aligned and f.shape == a.shape and f.dtype == a.dtype
    np.testing.assert_array_equal(f, a)
    assert is_frozen(f) and not is_frozen(a)
    for view in (f, f[1:], f.T, f.reshape(-1), f[::2]):
        with pytest.raises(ValueError, match="WRITEABLE"):
            view.flags.writeable = True
    assert not as_strided(f).flags.writeable
    a[0, 0] = 5  # a copy: the source stays the caller's
    assert f[0, 0] == 0 and a.flags.writeable


def test_frozen_converts_and_handles_empty():
    f = frozen([3, 1, 2], np.int64)
    assert f.dtype == np.int64 and is_frozen(f)
    e = frozen(np.zeros((0, 3), np.float32))
    assert e.shape == (0, 3) and not e.flags.writeable


def test_a_merely_read_only_array_is_not_frozen():
    a = np.arange(3)
    a.flags.writeable = False
    assert not is_frozen(a)
    a.flags.writeable = True  # what frozen() prevents
