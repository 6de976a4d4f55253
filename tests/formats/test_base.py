"""WeightFormat's defaults (what a format gets without overriding) and check_field_names."""

import numpy as np
import pytest

from refcomp.errors import FileFormatError
from refcomp.formats.base import WeightFormat, check_field_names


class Codes(WeightFormat):
    """The smallest format: a stored float32 array and its byte count, nothing overridden."""

    def __init__(self, w, nbytes):
        self.w, self.shape, self._nbytes = w, w.shape, nbytes

    def to_dense(self):
        return self.w

    @property
    def nbytes(self):
        return self._nbytes


def test_default_matmul_is_x_times_w_transposed():
    # y[b, o] = sum_i x[b, i] w[o, i], written out with Python sums (a non-square w: the transpose matters)
    w = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    x = np.array([[1, 0, -1], [2, 1, 0], [0, 0, 1], [1, 1, 1]], np.float32)
    want = [[sum(float(x[b, i]) * float(w[o, i]) for i in range(3)) for o in range(2)] for b in range(4)]
    np.testing.assert_array_equal(Codes(w, 24).matmul(x), want)


def test_default_take_rows_is_an_embedding_lookup():
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    idx = np.array([[3, 0], [1, 3]])
    out = Codes(w, 48).take_rows(idx)
    assert out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [9, 10, 11] and out[1, 0].tolist() == [3, 4, 5]


@pytest.mark.parametrize("nbytes", [0, 1, 7, 1000])
def test_default_storage_bits_is_eight_per_byte(nbytes):
    bits = Codes(np.zeros((1, 1), np.float32), nbytes).storage_bits
    assert bits == 8 * nbytes and isinstance(bits, int)


def test_a_stored_format_trains_nothing_and_has_no_default_fields():
    f = Codes(np.zeros((2, 2), np.float32), 16)
    assert tuple(f.named_parameters()) == ()
    with pytest.raises(NotImplementedError):
        f.fields()


def test_field_names_must_be_exactly_the_wanted_keys():
    check_field_names({"data": 0, "mask": 1}, ("mask", "data"))      # order does not matter
    check_field_names({}, ())
    # one missing, one extra, one renamed, or not a dict at all: refused, naming both key sets
    with pytest.raises(FileFormatError) as missing:
        check_field_names({"data": 0}, ("data", "mask"))
    assert str(missing.value) == "fields: expected keys ['data', 'mask'], got ['data']"
    with pytest.raises(FileFormatError) as extra:
        check_field_names({"data": 0, "mask": 1, "bits": 2}, ("mask", "data"))
    assert str(extra.value) == "fields: expected keys ['data', 'mask'], got ['bits', 'data', 'mask']"
    with pytest.raises(FileFormatError) as renamed:
        check_field_names({"dat": 0}, ("data",))
    assert str(renamed.value) == "fields: expected keys ['data'], got ['dat']"
    with pytest.raises(FileFormatError) as not_a_dict:
        check_field_names([("data", 0)], ("data",))
    assert str(not_a_dict.value) == "fields: expected keys ['data'], got list"
    # a dict-like object with the right keys is still not a dict: a file reader hands over a dict
    with pytest.raises(FileFormatError, match="got list"):
        check_field_names(["data"], ("data",))
