"""RelativeIndexCSR as a stored weight: its fields are the coded bits the size table counts."""

import numpy as np
import pytest

from refcomp.compress.share.cluster import cluster_weight
from refcomp.errors import FileFormatError
from refcomp.formats import RelativeIndexCSR
from refcomp.formats.huffman import HuffmanCode, encode
from refcomp.formats.relative_csr import size_breakdown


def _layer(layout="rows", index_bits=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((40, 60)).astype(np.float32)
    mask = rng.random(w.shape) < 0.1
    return RelativeIndexCSR.from_clustered(cluster_weight(w, 3, mask=mask, rng=0), index_bits=index_bits,
                                           layout=layout)


@pytest.mark.parametrize("layout", ["rows", "flat"])
def test_fields_round_trip_and_count_the_size_table_bits(layout):
    s = _layer(layout)
    f = s.fields()
    back = RelativeIndexCSR.from_fields({k: v.copy() for k, v in f.items()})
    assert back.to_dense().tobytes() == s.to_dense().tobytes()
    np.testing.assert_array_equal(back.index_fields, s.index_fields)
    np.testing.assert_array_equal(back.values, s.values)
    # the streams are the P+Q+H fields of D.22: Huffman where it pays, else the fixed width
    sb = size_breakdown(s)
    for name, symbols, width, per_entry in (("index", s.index_fields, s.index_bits, sb["huffman_index_bits"]),
                                            ("weight", s.values, s.weight_bits, sb["huffman_weight_bits"])):
        lengths, nbits = f[f"{name}_lengths"], int(f["header"][4 if name == "weight" else 5])
        code = HuffmanCode(lengths) if lengths.size else HuffmanCode(np.full(1 << width, width, np.uint8))
        assert nbits == code.encoded_bits(np.asarray(symbols).astype(np.int64))
        assert nbits + 8 * lengths.size == round(per_entry * s.n_entries)  # header bits: 8 per code length
        data, _ = encode(np.asarray(symbols).astype(np.int64), code)
        assert f[f"{name}_stream"].tobytes() == data
    assert s.nbytes == sb["pqh_bytes"]


def test_float_values_without_codebook():
    w = np.array([[0, 1.5, 0, 0], [0, 0, 0, -2.0]], np.float32)
    s = RelativeIndexCSR.from_dense(w, index_bits=2)
    back = RelativeIndexCSR.from_fields(s.fields())
    np.testing.assert_array_equal(back.to_dense(), w)


def test_corrupted_fields_are_file_format_errors():
    s = _layer()
    f = s.fields()
    with pytest.raises(FileFormatError, match="keys"):
        RelativeIndexCSR.from_fields({k: v for k, v in f.items() if k != "row_ptr"})
    h = f["header"].copy()
    h[1] = 0  # index_bits 0
    with pytest.raises(FileFormatError, match="header"):
        RelativeIndexCSR.from_fields({**f, "header": h})
    with pytest.raises(FileFormatError):  # a truncated stream: fewer symbols than entries
        RelativeIndexCSR.from_fields({**f, "index_stream": f["index_stream"][:-3]})
    with pytest.raises(FileFormatError, match="codebook"):
        RelativeIndexCSR.from_fields({**f, "codebook": np.array([np.nan] * 8, np.float32)})
    rp = f["row_ptr"].copy()
    rp[3] = rp[4] + 1  # decreasing row pointers
    with pytest.raises(FileFormatError, match="row_ptr"):
        RelativeIndexCSR.from_fields({**f, "row_ptr": rp})
    with pytest.raises(FileFormatError, match="code lengths"):
        RelativeIndexCSR.from_fields({**f, "index_lengths": np.ones(3, np.uint8)})
