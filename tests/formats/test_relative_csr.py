"""Deep Compression storage: relative-index CSR round trip, fillers, size accounting."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp.compress.share.cluster import cluster_weight
from refcomp.formats.huffman import HuffmanCode, encode
from refcomp.formats.relative_csr import (
    RelativeIndexCSR,
    code_field,
    decode_field,
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
    (lambda: RelativeIndexCSR.encode(np.ones(3, bool), np.array([0, 1, 1]), index_bits=3,
                                     codebook=np.zeros(0)), ShapeError, "codebook"),  # an empty codebook
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


# --- encode's choices: field widths and dtypes a reader relies on

@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 9, 16, 17, 256])
def test_default_weight_bits_are_the_fewest_that_address_the_codebook(k):
    s = RelativeIndexCSR.encode(np.ones(k, bool), np.arange(k), index_bits=3, codebook=np.linspace(-1, 1, k))
    assert s.weight_bits == max(1, math.ceil(math.log2(k)))


def test_a_declared_float_weight_width_is_kept():
    # any width >= 1 is accepted, e.g. 1 bit for binarized weights stored as floats
    s = RelativeIndexCSR.encode(np.ones(3, bool), np.array([1.0, -1.0, 1.0]), index_bits=3, weight_bits=1)
    assert s.weight_bits == 1
    assert RelativeIndexCSR.encode(np.ones(3, bool), np.ones(3), index_bits=3, weight_bits=16).weight_bits == 16


@pytest.mark.parametrize("index_bits,dtype", [(1, np.uint8), (8, np.uint8), (9, np.uint16), (16, np.uint16)])
def test_index_fields_take_the_fewest_bytes_and_survive_the_file_fields(index_bits, dtype):
    mask = np.zeros((3, 70), bool)
    mask[[0, 1, 2, 2], [0, 69, 3, 40]] = True
    s = RelativeIndexCSR.encode(mask, np.arange(210.0).reshape(3, 70), index_bits=index_bits)
    assert s.index_fields.dtype == dtype and s.row_ptr.dtype == np.int64
    back = RelativeIndexCSR.from_fields(s.fields())
    assert back.index_fields.dtype == dtype and back.index_bits == index_bits
    assert back.row_ptr.dtype == np.int64
    np.testing.assert_array_equal(back.row_ptr, s.row_ptr)
    np.testing.assert_array_equal(back.to_dense(), np.where(mask, np.arange(210.0).reshape(3, 70), 0))


def test_from_dense_keeps_what_the_mask_keeps():
    w = np.array([[0.0, 2.0, 3.0], [4.0, 0.0, 0.0]], np.float32)
    mask = np.array([[True, False, True], [True, False, False]])  # a kept 0, a pruned 2
    s = RelativeIndexCSR.from_dense(w, index_bits=2, mask=mask)
    np.testing.assert_array_equal(s.to_mask(), mask)
    np.testing.assert_array_equal(s.to_dense(), np.where(mask, w, 0))
    assert RelativeIndexCSR.from_dense(w, index_bits=2, layout="flat").layout == "flat"
    with pytest.raises(ShapeError) as info:
        RelativeIndexCSR.from_dense(w, index_bits=2, mask=np.ones(6, bool))
    assert info.value.argument == "mask"


def test_from_clustered_without_a_mask_stores_every_weight_at_its_width():
    c = Clustered(np.array([-1.0, 0.0, 1.0], np.float32), np.array([[0, 1, 2], [2, 2, 0]]), bits=4)
    s = RelativeIndexCSR.from_clustered(c, index_bits=2)
    assert s.n_kept == 6 and s.weight_bits == 4  # the Clustered's width, wider than 3 entries need
    np.testing.assert_array_equal(s.to_dense(), c.to_dense())
    assert RelativeIndexCSR.from_clustered(c, index_bits=2, layout="flat").layout == "flat"


# --- decoding: dtypes and plain CSR

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decoded_weight_dtype_follows_the_codebook_or_the_stored_floats(dtype):
    mask = np.array([[True, False], [False, True]])
    c = Clustered(np.array([0.5, -0.25], dtype), np.array([[0, 1], [1, 1]]), mask)
    clustered = RelativeIndexCSR.from_clustered(c, index_bits=2)
    assert clustered.to_dense().dtype == dtype
    plain = RelativeIndexCSR.from_dense(np.array([[1, 0], [0, 2]], dtype), index_bits=2)
    assert plain.to_dense().dtype == dtype
    assert plain.to_mask().dtype == bool
    np.testing.assert_array_equal(clustered.to_dense(), [[0.5, 0], [0, -0.25]])


@pytest.mark.parametrize("layout", ["rows", "flat"])
def test_csr_arrays_of_a_clustered_layer_with_empty_last_rows_match_scipy(layout):
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(5)
    mask = rng.random((6, 9)) < 0.4
    mask[4:] = False  # trailing empty rows still get their row pointers
    c = Clustered(np.array([-1.0, 0.5, 2.0, 3.0], np.float32), rng.integers(0, 4, (6, 9)), mask)
    s = RelativeIndexCSR.from_clustered(c, index_bits=3, layout=layout)
    ref = sparse.csr_matrix(c.to_dense().reshape(6, 9) if layout == "rows" else c.to_dense().reshape(1, 54))
    indptr, indices, data = s.to_csr_arrays()
    assert indptr.dtype == np.int64 and indices.dtype == np.int64
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(data, ref.data)


def test_inconsistent_layers_are_file_format_errors():
    def layer(row_ptr, fields=(0, 1), values=(0, 1), codebook=(1.0, 2.0), shape=(2, 3)):
        return RelativeIndexCSR(shape, "rows", 2, np.array(row_ptr), np.array(fields, np.uint8),
                                np.array(values, np.uint8), np.array(codebook), 1)

    np.testing.assert_array_equal(layer([0, 1, 2]).to_dense(), [[1.0, 0, 0], [0, 2.0, 0]])
    for bad in ([0, 2], [1, 1, 2], [0, 1, 2, 2]):  # too few / not from 0 / too many pointers
        with pytest.raises(FileFormatError, match="row_ptr"):
            layer(bad).to_dense()
    with pytest.raises(FileFormatError, match="exceeds the codebook"):  # index 2 of a 2-entry codebook
        layer([0, 1, 2], values=(0, 2)).to_dense()


# --- the file fields: header, boundaries of every count, corruptions

def test_the_header_lists_layout_widths_count_stream_bits_and_shape():
    s = RelativeIndexCSR.from_dense(np.array([[0, 1.5, 0, 0], [0, 0, 0, -2.0]], np.float32), index_bits=2,
                                    layout="flat")
    f = s.fields()
    # flat = 1; 2-bit index, 32-bit floats; 3 entries (1.5, a filler over 3 zeros, -2 after 2 more);
    # no weight stream; 3 fixed 2-bit fields; the shape
    assert f["header"].dtype == np.int64
    assert f["header"].tolist() == [1, 2, 32, 3, 0, 6, 2, 4]
    assert "row_ptr" not in f and f["values"].tolist() == [1.5, 0.0, -2.0]


def test_a_hand_built_layer_with_numpy_unsigned_sizes_still_writes_an_int64_header():
    # e.g. a shape read back from a uint64 array: the header is int64 whatever the integers' types
    s = RelativeIndexCSR.from_dense(np.array([[0, 1.5, 0, 0], [0, 0, 0, -2.0]], np.float32), index_bits=2)
    hand = RelativeIndexCSR(tuple(np.array(s.shape, np.uint64)), s.layout, np.uint64(2), s.row_ptr,
                            s.index_fields, s.values, None, np.uint64(32))
    back = RelativeIndexCSR.from_fields(hand.fields())
    assert back.shape == (2, 4)
    np.testing.assert_array_equal(back.to_dense(), s.to_dense())


def _clustered(k, shape=(5, 7), bits=None, density=0.5, seed=0, **kw):
    rng = np.random.default_rng(seed)
    c = Clustered(np.linspace(-1, 1, k), rng.integers(0, k, shape), rng.random(shape) < density, bits=bits)
    return RelativeIndexCSR.from_clustered(c, **{"index_bits": 3, **kw})


@pytest.mark.parametrize("make", [
    lambda: RelativeIndexCSR.from_dense(np.array([0, 1.5, 0, 2.0], np.float32), index_bits=2),  # 7-value header
    lambda: RelativeIndexCSR.from_dense(np.zeros((3, 4), np.float32), index_bits=2),  # no entries
    lambda: RelativeIndexCSR.from_dense(np.zeros((0, 4), np.float32), index_bits=2),  # no weights
    lambda: RelativeIndexCSR.from_dense(np.array([[0, 1.5], [2.0, 0]]), index_bits=1),  # float64: 64 bits
    lambda: _clustered(2),  # 1-bit weights
    lambda: _clustered(256, shape=(30, 40)),  # 8-bit weights
    lambda: RelativeIndexCSR.encode(np.ones(300, bool), np.arange(300), index_bits=2,
                                    codebook=np.linspace(-1, 1, 300)),  # 9-bit weights
    lambda: RelativeIndexCSR.encode(np.ones(5, bool), np.arange(5), index_bits=16, codebook=np.arange(5.0),
                                    weight_bits=16),
])
def test_fields_round_trip_at_every_boundary(make):
    s = make()
    back = RelativeIndexCSR.from_fields(s.fields())
    assert (back.shape, back.layout, back.index_bits, back.weight_bits) == (s.shape, s.layout, s.index_bits,
                                                                            s.weight_bits)
    assert back.values.dtype == s.values.dtype and back.index_fields.dtype == s.index_fields.dtype
    np.testing.assert_array_equal(back.values, s.values)
    np.testing.assert_array_equal(back.row_ptr, s.row_ptr)
    assert back.to_dense().dtype == s.to_dense().dtype
    np.testing.assert_array_equal(back.to_dense(), s.to_dense())


def _with_header(f, **at):
    h = f["header"].copy()
    for i, v in at.items():
        h[int(i[1:])] = v
    return {**f, "header": h}


def _float_fields(layout="rows"):
    return RelativeIndexCSR.from_dense(np.array([[0, 1.5, 0, 0], [0, 0, 0, -2.0]], np.float32), index_bits=2,
                                       layout=layout).fields()


@pytest.mark.parametrize("corrupt,match", [
    (lambda f: ["header", "index_stream"], "header"),  # not a dict
    (lambda f: {**f, "header": f["header"].astype(np.int32)}, r"fields\['header'\]"),
    (lambda f: {**f, "header": f["header"].reshape(1, -1)}, r"fields\['header'\]"),
    (lambda f: _with_header(f, h0=2), r"fields\['header'\]"),  # a third layout
    (lambda f: _with_header(f, h1=17), r"fields\['header'\]"),  # index fields of 17 bits
    (lambda f: _with_header(f, h2=0), r"fields\['header'\]"),  # weight fields of 0 bits
    (lambda f: _with_header(f, h2=65), r"fields\['header'\]"),
    (lambda f: _with_header(f, h3=-1), r"fields\['header'\]"),  # a negative count
    (lambda f: _with_header(f, h6=-2, h7=-4), r"fields\['header'\]"),  # a negative shape
    (lambda f: {**f, "values": f["values"].astype(np.int32)}, r"fields\['values'\]"),
    (lambda f: {**f, "values": np.append(f["values"], np.float32(1))}, r"fields\['values'\]"),
    (lambda f: {**f, "row_ptr": f["row_ptr"].astype(np.int64)}, r"fields\['row_ptr'\]"),  # stored as uint32
    (lambda f: {**f, "index_lengths": np.ones(3, np.uint8)}, "index code lengths"),
    (lambda f: _with_header(f, h5=int(f["header"][5]) + 2), "huffman stream"),  # a field more than the count
])
def test_corrupted_float_fields_are_refused_before_decoding(corrupt, match):
    with pytest.raises(FileFormatError, match=match):
        RelativeIndexCSR.from_fields(corrupt(_float_fields()))


def test_a_huge_declared_shape_is_refused_by_the_header():
    # 2^31 x 2^31 = 2^62 weights: refused before any size is computed in int64
    f = _with_header(_float_fields("flat"), h6=2 ** 31, h7=2 ** 31)
    with pytest.raises(FileFormatError, match=r"fields\['header'\]"):
        RelativeIndexCSR.from_fields(f)


@pytest.mark.parametrize("corrupt,match", [
    (lambda f: {**f, "codebook": f["codebook"].astype(np.int64)}, r"fields\['codebook'\]"),
    (lambda f: {**f, "codebook": f["codebook"].reshape(2, 4)}, r"fields\['codebook'\]"),
    (lambda f: {**f, "codebook": np.linspace(-1, 1, 9)}, r"fields\['codebook'\]"),  # 9 entries for 3 bits
    (lambda f: _with_header(f, h2=17), "at most 16"),
    (lambda f: {**f, "weight_lengths": np.ones(3, np.uint8)}, "weight code lengths"),
])
def test_corrupted_clustered_fields_are_refused(corrupt, match):
    f = _clustered(8).fields()
    with pytest.raises(FileFormatError, match=match):
        RelativeIndexCSR.from_fields(corrupt(f))


def test_a_cluster_index_just_past_a_short_codebook_is_refused():
    s = _clustered(8)
    f = s.fields()
    top = int(s.values.max())
    with pytest.raises(FileFormatError, match="beyond the codebook"):
        RelativeIndexCSR.from_fields({**f, "codebook": f["codebook"][:top]})
    assert RelativeIndexCSR.from_fields({**f, "codebook": f["codebook"][:top + 1]}).n_kept == s.n_kept


# --- the coded fields: Huffman only where it pays for its lengths

def test_code_field_keeps_the_fixed_width_unless_huffman_is_strictly_smaller():
    # 32 equal 2-bit symbols: Huffman takes 1 bit each + 4 lengths of 8 bits = 64 = 32·2, a tie
    lengths, stream, nbits = code_field(np.zeros(32, np.int64), 2)
    assert lengths.size == 0 and nbits == 64
    lengths, stream, nbits = code_field(np.zeros(33, np.int64), 2)
    assert lengths.tolist() == [1, 0, 0, 0] and nbits == 33


@pytest.mark.parametrize("width", [3, 4])
def test_a_skewed_field_is_huffman_coded_and_decodes_back(width):
    rng = np.random.default_rng(width)
    symbols = np.minimum(rng.geometric(0.6, 500) - 1, (1 << width) - 1).astype(np.int64)
    lengths, stream, nbits = code_field(symbols, width)
    assert lengths.dtype == np.uint8 and lengths.size == 1 << width
    assert nbits + 8 * lengths.size < width * symbols.size
    assert nbits == int(lengths.astype(np.int64)[symbols].sum())  # each symbol costs its code's length
    back = decode_field(lengths, stream, nbits, width, symbols.size, "index")
    np.testing.assert_array_equal(back, symbols)


def test_huffman_coded_layer_fields_round_trip():
    # mostly zeros: the cluster indices and the short gaps are skewed, both fields Huffman-coded
    rng = np.random.default_rng(2)
    shape = (20, 50)
    idx = np.where(rng.random(shape) < 0.9, 0, rng.integers(0, 8, shape))
    c = Clustered(np.linspace(-1, 1, 8), idx, rng.random(shape) < 0.7)
    s = RelativeIndexCSR.from_clustered(c, index_bits=4)
    f = s.fields()
    assert f["weight_lengths"].size == 8 and f["index_lengths"].size == 16
    back = RelativeIndexCSR.from_fields(f)
    np.testing.assert_array_equal(back.values, s.values)
    np.testing.assert_array_equal(back.index_fields, s.index_fields)
    np.testing.assert_array_equal(back.to_dense(), c.to_dense())


@pytest.mark.parametrize("width,dtype", [(1, np.uint16), (16, np.uint16), (17, np.int64)])
def test_decode_field_returns_the_count_in_the_narrowest_dtype(width, dtype):
    symbols = np.array([0, 1, 1, 0, 1], np.int64)
    lengths, stream, nbits = code_field(symbols, width)
    back = decode_field(lengths, stream, nbits, width, 5, "index")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, symbols)
    with pytest.raises(FileFormatError):  # five symbols where four were announced
        decode_field(lengths, stream, nbits, width, 4, "index")
    assert decode_field(np.zeros(0, np.uint8), np.zeros(0, np.uint8), 0, width, 0, "index").size == 0


@pytest.mark.parametrize("lengths,stream", [
    (np.zeros(0, np.int64), np.zeros(2, np.uint8)),
    (np.zeros((1, 8), np.uint8), np.zeros(2, np.uint8)),
    (np.zeros(0, np.uint8), np.zeros(1, np.uint16)),
    (np.zeros(0, np.uint8), np.zeros((1, 2), np.uint8)),
])
def test_decode_field_refuses_streams_that_are_not_1d_bytes(lengths, stream):
    with pytest.raises(FileFormatError, match="1-D uint8"):
        decode_field(lengths, stream, 12, 3, 4, "index")


def test_decode_field_refuses_more_bits_than_the_stream_holds():
    with pytest.raises(FileFormatError, match="17 bits of weight stream in 2 bytes"):
        decode_field(np.zeros(0, np.uint8), np.zeros(2, np.uint8), 17, 1, 17, "weight")


def test_the_fitted_codes_cover_every_value_of_the_field():
    s = _clustered(8, index_bits=5)
    assert s.weight_code().n_symbols == 8 and s.index_code().n_symbols == 32


# --- sizes (D.22), stated on small layers counted by hand

def _two_float_layers():
    # fc: 2-bit fields, rows: row 0 keeps column 1 (field 1), row 1 column 3 (a filler 3, then field 0)
    fc = RelativeIndexCSR.from_dense(np.array([[0, 1.5, 0, 0], [0, 0, 0, -2.0]], np.float32), index_bits=2)
    # fc2: one stream, column 0 (field 0)
    fc2 = RelativeIndexCSR.from_dense(np.array([[0.5, 0, 0, 0]], np.float32), index_bits=3, layout="flat")
    return {"fc": fc, "fc2": fc2}


def test_size_breakdown_of_float_layers_counted_by_hand():
    fc, fc2 = _two_float_layers().values()
    r = size_breakdown(fc)
    # 3 entries of 32 + 2 bits; 3 row pointers of 2 bits; Huffman never pays on 3 entries, 2 flag bits
    assert {k: r[k] for k in ("weights", "kept", "kept_pct", "entries", "fillers", "codebook_bits",
                              "row_pointer_bits", "dense_bits", "pq_bits", "pqh_bits", "pq_bytes", "pqh_bytes")} \
        == {"weights": 8, "kept": 2, "kept_pct": 25.0, "entries": 3, "fillers": 1, "codebook_bits": 0,
            "row_pointer_bits": 6, "dense_bits": 256, "pq_bits": 108, "pqh_bits": 110, "pq_bytes": 14,
            "pqh_bytes": 14}
    assert (r["huffman_weight_bits"], r["huffman_index_bits"]) == (32.0, 2.0)
    assert r["pq_ratio"] == 256 / 108 and r["pqh_ratio"] == 256 / 110
    r2 = size_breakdown(fc2)  # the flat stream has no row pointers
    assert (r2["row_pointer_bits"], r2["pq_bits"], r2["pqh_bits"], r2["pqh_bytes"]) == (0, 35, 37, 5)


def test_size_breakdown_of_layers_without_entries_or_weights():
    empty = size_breakdown(RelativeIndexCSR.from_dense(np.zeros((3, 4), np.float32), index_bits=2, layout="flat"))
    assert (empty["kept_pct"], empty["huffman_weight_bits"], empty["huffman_index_bits"]) == (0.0, 0.0, 0.0)
    assert (empty["pq_bits"], empty["pq_ratio"], empty["pqh_bits"]) == (0, math.inf, 2)
    none = size_breakdown(RelativeIndexCSR.from_dense(np.zeros((0, 4), np.float32), index_bits=2))
    # one row pointer, of the 1 bit the empty stream still takes
    assert (none["weights"], none["kept_pct"], none["row_pointer_bits"], none["pq_bits"]) == (0, 0.0, 1, 1)
    one = size_breakdown(RelativeIndexCSR.from_dense(np.array([[1.0], [0.0]], np.float32), index_bits=2))
    assert one["row_pointer_bits"] == 3 * 1  # 3 pointers addressing entries 0…1: 1 bit each


def test_size_table_totals_and_markdown_counted_by_hand():
    rows = size_table(_two_float_layers())
    total = rows[-1]
    # sums; per-entry widths averaged over the 3 + 1 entries
    assert (total["weights"], total["kept"], total["kept_pct"], total["entries"]) == (12, 3, 25.0, 4)
    assert (total["pq_bits"], total["pqh_bits"], total["pq_bytes"], total["pqh_bytes"]) == (143, 147, 18, 19)
    assert (total["weight_bits"], total["index_bits"], total["huffman_index_bits"]) == (32.0, 2.25, 2.25)
    assert total["pq_ratio"] == 384 / 143 and total["pqh_ratio"] == 384 / 147
    assert size_table_markdown(rows) == (
        "| Layer | #Weights | Weights % (P) | Weight bits (P+Q) | Weight bits (P+Q+H) | Index bits (P+Q) "
        "| Index bits (P+Q+H) | Bytes (P+Q) | Bytes (P+Q+H) | Compressed (P+Q) | Compressed (P+Q+H) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| fc | 8 | 25.0% | 32 | 32.0 | 2 | 2.0 | 14 | 14 | 42.2% (2×) | 43.0% (2×) |\n"
        "| fc2 | 4 | 25.0% | 32 | 32.0 | 3 | 3.0 | 5 | 5 | 27.3% (4×) | 28.9% (3×) |\n"
        "| **total** | 12 | 25.0% | 32 | 32.0 | 2.2 | 2.2 | 18 | 19 | 37.2% (3×) | 38.3% (3×) |\n")


def test_size_table_dense_width_and_empty_totals():
    layers = _two_float_layers()
    assert size_table(layers)[-1]["dense_bits"] == 12 * 32  # float32 by default
    assert [r["dense_bits"] for r in size_table(layers, dense_bits_per_weight=16)] == [8 * 16, 4 * 16, 12 * 16]
    empty = size_table({"a": RelativeIndexCSR.from_dense(np.zeros((3, 4), np.float32), index_bits=2,
                                                         layout="flat")})[-1]
    assert (empty["kept_pct"], empty["index_bits"], empty["huffman_weight_bits"]) == (0.0, 0.0, 0.0)
    assert (empty["pq_ratio"], empty["pqh_ratio"]) == (math.inf, 12 * 32 / 2)
    none = size_table({"a": RelativeIndexCSR.from_dense(np.zeros((0, 4), np.float32), index_bits=2)})[-1]
    assert (none["weights"], none["kept_pct"]) == (0, 0.0)
