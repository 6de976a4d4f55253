"""Deep Compression storage: relative-index CSR round trip, fillers, size accounting."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp.compress.share.cluster import cluster_weight
from refcomp.formats.huffman import HuffmanCode, encode
from refcomp.formats.relative_csr import (
    RelativeIndexCSR,
    size_breakdown,
    size_table,
    size_table_markdown,
)
from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats.clustered import Clustered

masks = hnp.arrays(bool, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
                   elements=st.booleans() | st.just(False))


@settings(max_examples=80)
@given(masks, st.integers(1, 8), st.sampled_from(["rows", "flat"]), st.integers(0, 2**32 - 1))
def test_round_trip_from_mask(mask, index_bits, layout, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=mask.shape).astype(np.float32)
    values[rng.random(mask.shape) < 0.1] = 0.0  # kept weights that are exactly 0 stay kept
    s = RelativeIndexCSR.encode(mask, values, index_bits=index_bits, layout=layout)
    np.testing.assert_array_equal(s.to_mask(), mask)
    np.testing.assert_array_equal(s.to_dense(), np.where(mask, values, 0))
    assert s.n_kept == mask.sum()
    assert s.index_fields.max(initial=0) <= 2 ** index_bits - 1


@settings(max_examples=60)
@given(masks, st.integers(1, 8), st.integers(1, 6), st.sampled_from(["rows", "flat"]), st.integers(0, 2**32 - 1))
def test_round_trip_clustered(mask, index_bits, bits, layout, seed):
    rng = np.random.default_rng(seed)
    codebook = np.sort(rng.normal(size=1 << bits)).astype(np.float32)
    indices = rng.integers(0, 1 << bits, size=mask.shape)
    c = Clustered(codebook, indices, mask, bits=bits)
    s = RelativeIndexCSR.from_clustered(c, index_bits=index_bits, layout=layout)
    np.testing.assert_array_equal(s.to_dense(), c.to_dense())
    assert s.weight_bits == bits


@pytest.mark.parametrize("index_bits", [1, 3, 8])
def test_csr_arrays_match_scipy(index_bits):
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(3)
    w = rng.normal(size=(37, 53)).astype(np.float32)
    w[rng.random(w.shape) < 0.85] = 0
    s = RelativeIndexCSR.from_dense(w, index_bits=index_bits)
    ref = sparse.csr_matrix(w)
    indptr, indices, data = s.to_csr_arrays()
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(data, ref.data)


def test_fillers_bridge_long_gaps():
    # 3-bit field: E = 7. Row [x . . . . . . . . . . . . . . y]: 14 zeros before y = 2 fillers + field 0
    mask = np.zeros((1, 16), dtype=bool)
    mask[0, [0, 15]] = True
    s = RelativeIndexCSR.encode(mask, np.arange(16.0).reshape(1, 16), index_bits=3)
    assert s.index_fields.tolist() == [0, 7, 7, 0]
    assert s.values.tolist() == [0.0, 0.0, 0.0, 15.0]
    assert (s.n_entries, s.n_fillers, s.n_kept) == (4, 2, 2)
    assert s.to_dense()[0, 15] == 15.0


@settings(max_examples=40)
@given(masks, st.integers(1, 8))
def test_filler_count_formula(mask, index_bits):
    # each gap of z zeros before a kept weight costs floor(z / (2^bits − 1)) fillers (D.21)
    s = RelativeIndexCSR.encode(mask, mask.astype(float), index_bits=index_bits, layout="flat")
    e = 2 ** index_bits - 1
    pos = np.flatnonzero(mask.ravel())
    gaps = np.diff(np.concatenate([[-1], pos])) - 1
    assert s.n_fillers == int(np.sum(gaps // e))


def test_rows_layout_restarts_each_row():
    mask = np.array([[False, True], [True, False]])
    s = RelativeIndexCSR.encode(mask, np.ones((2, 2)), index_bits=2, layout="rows")
    assert s.row_ptr.tolist() == [0, 1, 2] and s.index_fields.tolist() == [1, 0]
    f = RelativeIndexCSR.encode(mask, np.ones((2, 2)), index_bits=2, layout="flat")
    assert f.row_ptr.tolist() == [0, 2] and f.index_fields.tolist() == [1, 0]


def test_size_breakdown_counts_bits():
    rng = np.random.default_rng(0)
    mask = rng.random((50, 60)) < 0.1
    c = Clustered(np.linspace(-1, 1, 16).astype(np.float32), rng.integers(0, 16, size=(50, 60)), mask)
    s = RelativeIndexCSR.from_clustered(c, index_bits=5, layout="rows")
    r = size_breakdown(s)
    assert r["weights"] == 3000 and r["kept"] == mask.sum()
    ptr = 51 * s.n_entries.bit_length()  # 51 pointers, each wide enough for any entry offset
    assert r["codebook_bits"] == 16 * 32 and r["row_pointer_bits"] == ptr
    assert r["pq_bits"] == s.n_entries * (4 + 5) + 16 * 32 + ptr
    wcode, icode = s.weight_code(), s.index_code()
    weight = min(4 * s.n_entries, wcode.encoded_bits(s.values) + wcode.header_bits())
    index = min(5 * s.n_entries, icode.encoded_bits(s.index_fields) + icode.header_bits())
    assert r["pqh_bits"] == weight + index + 2 + 16 * 32 + ptr
    assert r["pqh_bits"] <= r["pq_bits"] + 2
    assert r["pq_ratio"] == pytest.approx(3000 * 32 / r["pq_bits"])
    assert r["pq_bytes"] == -(-r["pq_bits"] // 8)


def test_size_table_total_and_markdown():
    rng = np.random.default_rng(1)
    layers = {}
    for name, shape in (("fc1", (30, 40)), ("fc2", (10, 30))):
        w = rng.normal(size=shape)
        mask = np.abs(w) > 1.5
        layers[name] = RelativeIndexCSR.from_clustered(cluster_weight(w, 3, mask=mask), index_bits=4)
    rows = size_table(layers)
    assert [r["layer"] for r in rows] == ["fc1", "fc2", "total"]
    total = rows[-1]
    assert total["weights"] == 1500 and total["pq_bits"] == rows[0]["pq_bits"] + rows[1]["pq_bits"]
    assert total["pqh_ratio"] == pytest.approx(total["dense_bits"] / total["pqh_bits"])
    md = size_table_markdown(rows)
    lines = md.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("| Layer") and "**total**" in lines[-1]
    assert f"{total['pqh_bytes']:,}" in lines[-1]


def test_corrupt_storage_is_rejected():
    mask = np.zeros((2, 8), dtype=bool)
    mask[:, [1, 6]] = True
    s = RelativeIndexCSR.encode(mask, np.ones((2, 8)), index_bits=3)
    s.index_fields[1] = 6  # 1 + 1 + 6 + 1 = position 8: past the row
    with pytest.raises(FileFormatError, match="past"):
        s.to_dense()
    s = RelativeIndexCSR.encode(mask, np.ones((2, 8)), index_bits=3)
    s.row_ptr[1] = 5
    with pytest.raises(FileFormatError, match="row_ptr"):
        s.to_dense()


def test_storage_validation():
    with pytest.raises(ValidationError, match="index_bits"):
        RelativeIndexCSR.encode(np.ones(3, bool), np.ones(3), index_bits=0)
    with pytest.raises(ValidationError, match="layout"):
        RelativeIndexCSR.encode(np.ones(3, bool), np.ones(3), index_bits=3, layout="csc")
    with pytest.raises(ShapeError, match="mask"):
        RelativeIndexCSR.encode(np.ones(4, bool), np.ones(3), index_bits=3)
    with pytest.raises(ValidationError, match="values"):
        RelativeIndexCSR.encode(np.ones(3, bool), np.array([0, 1, 4]), index_bits=3, codebook=np.ones(4))
    with pytest.raises(ValidationError, match="layers"):
        size_table({})


# --- as a stored weight: its fields are the coded bits the size table counts

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


# --- every bad argument is refused with the refcomp.errors class a user catches, naming the argument
def _float_layer():
    return RelativeIndexCSR.from_dense(np.array([[0, 1.5, 0], [2.0, 0, 0]], np.float32), index_bits=2)


@pytest.mark.parametrize("call,cls,argument", [
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.array([0, 1, 1]), index_bits=17), ValidationError,
     "index_bits"),
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.array([0, 1, 1]), index_bits=3,
                                     codebook=np.ones((2, 2))), ShapeError, "codebook"),
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.array([0.0, 1.0, 1.0]), index_bits=3,
                                     codebook=np.ones(4)), DTypeError, "values"),
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.array([0, -1, 1]), index_bits=3,
                                     codebook=np.ones(4)), ValidationError, "values"),
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.array([0, 1, 3]), index_bits=3,
                                     codebook=np.ones(4), weight_bits=1), ValidationError, "weight_bits"),
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.array([0, 1, 3]), index_bits=3,
                                     codebook=np.ones(4), weight_bits=17), ValidationError, "weight_bits"),
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.ones(3), index_bits=3, weight_bits=0), ValidationError,
     "weight_bits"),
    (lambda: RelativeIndexCSR.from_clustered(np.ones(3), index_bits=3), ValidationError, "clustered"),
    (lambda: _float_layer().weight_code(), ValidationError, "self"),
    (lambda: size_breakdown(np.ones(3)), ValidationError, "layer"),
    (lambda: size_table({"fc": np.ones(3)}), ValidationError, "layers['fc']"),
    (lambda: size_table([_float_layer()]), ValidationError, "layers"),
    (lambda: size_table_markdown([]), ValidationError, "rows"),
])
def test_bad_arguments_are_refused_naming_them(call, cls, argument):
    with pytest.raises(cls) as info:
        call()
    assert info.value.argument == argument


def test_cluster_indices_are_stored_in_the_fewest_bytes_that_hold_weight_bits():
    # b <= 8 bits: one byte per stored index; wider codes (up to 16 bits) two
    mask = np.ones(3, bool)
    narrow = RelativeIndexCSR.encode(mask, np.array([0, 1, 3]), index_bits=3, codebook=np.arange(4.0))
    assert narrow.weight_bits == 2 and narrow.values.dtype == np.uint8
    byte = RelativeIndexCSR.encode(mask, np.array([0, 1, 3]), index_bits=3, codebook=np.arange(4.0), weight_bits=8)
    assert byte.values.dtype == np.uint8  # 8 bits still fit a byte
    wide = RelativeIndexCSR.encode(mask, np.array([0, 1, 3]), index_bits=3, codebook=np.arange(4.0), weight_bits=9)
    assert wide.weight_bits == 9 and wide.values.dtype == np.uint16
    np.testing.assert_array_equal(wide.to_dense(), [0.0, 1.0, 3.0])
    one = RelativeIndexCSR.encode(mask, np.zeros(3, int), index_bits=3, codebook=np.array([2.5]))
    assert one.weight_bits == 1  # a one-entry codebook still takes a 1-bit field
    assert _float_layer().weight_bits == 32  # float32 weights stored at their width
