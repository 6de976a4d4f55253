"""QParams: construction, validation (each error names its argument), layout, serialization."""

import json

import ml_dtypes
import numpy as np
import pytest

from refcomp.errors import DTypeError, RefcompError, ShapeError, ValidationError
from refcomp.quant import QDTYPES, QParams


def test_per_tensor_defaults():
    qp = QParams(0.5, 3, "uint8")
    assert qp.scale.dtype == np.float32 and qp.scale.shape == ()
    assert qp.zero_point.dtype == np.uint8 and int(qp.zero_point) == 3
    assert qp.per_tensor and not qp.per_axis and not qp.per_block
    assert (qp.qmin, qp.qmax) == (0, 255)


def test_zero_point_defaults_to_zero_of_the_dtype():
    qp = QParams([0.1, 0.2], None, "int4", axis=0)
    assert qp.zero_point.dtype == ml_dtypes.int4
    assert qp.zero_point.astype(int).tolist() == [0, 0]


def test_immutable():
    qp = QParams(1.0, 0, "int8")
    with pytest.raises(AttributeError):
        qp.scale = 2.0
    with pytest.raises(ValueError):
        qp.scale[...] = 2.0


def test_copies_are_the_object_itself():
    """Immutable with read-only arrays, so a (deep) copy may share it; copy's slot-by-slot setattr would raise."""
    import copy

    qp = QParams(np.float32([0.1, 0.2]), np.int8([1, -1]), "int8", axis=0, qmin=-127)
    assert copy.copy(qp) is qp and copy.deepcopy(qp) is qp
    holder = {"a": qp, "b": [qp]}
    twin = copy.deepcopy(holder)
    assert twin["a"] is qp and twin["b"][0] is qp


def test_a_pickled_copy_is_equal_and_still_immutable():
    """In memory, as an executor's pipe carries a quantized model between processes (refcomp.executors)."""
    import pickle

    for qp in (QParams(np.float32([0.1, 0.2]), np.int8([1, -1]), "int8", axis=0, qmin=-127),
               QParams(np.full((2, 2), 0.5, np.float32), None, "int4", axis=1, block_size=4)):
        back = pickle.loads(pickle.dumps(qp))
        assert back == qp and back.qmin == qp.qmin and back.block_size == qp.block_size
        assert back.zero_point.dtype == qp.zero_point.dtype
        assert not back.scale.flags.writeable and not back.zero_point.flags.writeable
        with pytest.raises(AttributeError):
            back.axis = 0


@pytest.mark.parametrize("name", sorted(QDTYPES))
def test_every_dtype_roundtrips_through_json(name):
    dt = QDTYPES[name]
    zp = 0 if dt.is_float else int(dt.qmin) + 1
    qp = QParams(np.float32(0.125), zp, name)
    again = QParams.from_dict(json.loads(json.dumps(qp.to_dict())))
    assert again == qp


def test_blocked_and_narrowed_roundtrip():
    scale = np.arange(1, 7, dtype=np.float32).reshape(2, 3) / 7
    qp = QParams(scale, np.ones((2, 3), np.int8), "int8", axis=-1, block_size=4, qmin=-127, qmax=127)
    assert qp.axis == 1 and qp.per_block and qp.narrowed
    again = QParams.from_dict(json.loads(json.dumps(qp.to_dict())))
    assert again == qp


def test_check_shape_and_expand_per_axis():
    qp = QParams([1.0, 2.0, 3.0], [0, 1, 2], "int8", axis=1)
    assert qp.check_shape((4, 3, 5)) == 1
    s, z = qp.expand((4, 3, 5))
    assert s.shape == (1, 3, 1) and z.ravel().tolist() == [0, 1, 2]


def test_expand_blocked_follows_onnx_ceil_rule():
    # ONNX QuantizeLinear-21: element j along the axis uses scale j // block_size; last block may be short.
    qp = QParams(np.array([[1.0, 2.0, 3.0]], np.float32), None, "int8", axis=1, block_size=4)
    s, _ = qp.expand((1, 10))
    assert s.ravel().tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]


# ---- bad input: each raises a refcomp error that names the argument ---------------
BAD = [
    (dict(scale=0.0), ValidationError, "scale"),
    (dict(scale=-1.0), ValidationError, "scale"),
    (dict(scale=np.nan), ValidationError, "scale"),
    (dict(scale=np.inf), ValidationError, "scale"),
    (dict(scale=1e-60), ValidationError, "scale"),  # underflows in float32
    (dict(scale=np.array([], np.float32), axis=0), ShapeError, "scale"),
    (dict(scale="a"), DTypeError, "scale"),
    (dict(scale=np.array([1 + 1j])), DTypeError, "scale"),
    (dict(scale=1.0, zero_point=128, dtype="int8"), ValidationError, "zero_point"),
    (dict(scale=1.0, zero_point=-1, dtype="uint8"), ValidationError, "zero_point"),
    (dict(scale=1.0, zero_point=16, dtype="uint4"), ValidationError, "zero_point"),
    (dict(scale=1.0, zero_point=np.int32(3), dtype="int8"), DTypeError, "zero_point"),
    (dict(scale=1.0, zero_point=np.array(3, np.uint8), dtype="int8"), DTypeError, "zero_point"),
    (dict(scale=1.0, zero_point=1.5, dtype="int8"), DTypeError, "zero_point"),
    (dict(scale=1.0, zero_point=True, dtype="int8"), DTypeError, "zero_point"),
    (dict(scale=1.0, zero_point=1, dtype="float8_e4m3fn"), ValidationError, "zero_point"),
    (dict(scale=1.0, zero_point=1.0, dtype="float4_e2m1fn"), ValidationError, "zero_point"),
    (dict(scale=[1.0, 2.0], zero_point=[1, 2, 3], dtype="int8", axis=0), ShapeError, "zero_point"),
    (dict(scale=[1.0, 2.0]), ShapeError, "scale"),  # per-tensor needs one value
    (dict(scale=[[1.0, 2.0]], axis=0), ShapeError, "scale"),  # per-axis needs 1-D
    (dict(scale=1.0, dtype="int7"), DTypeError, "dtype"),
    (dict(scale=1.0, dtype=np.float64), DTypeError, "dtype"),
    (dict(scale=1.0, axis=1.5), ValidationError, "axis"),
    (dict(scale=[[1.0]], axis=2, block_size=2), ValidationError, "axis"),
    (dict(scale=[[1.0]], block_size=2), ValidationError, "axis"),
    (dict(scale=[[1.0]], axis=0, block_size=-1), ValidationError, "block_size"),
    (dict(scale=[[1.0]], axis=0, block_size=2.0), ValidationError, "block_size"),
    (dict(scale=1.0, dtype="int8", qmin=-129), ValidationError, "qmin"),
    (dict(scale=1.0, dtype="int8", qmin=5, qmax=5), ValidationError, "qmin"),
    (dict(scale=1.0, dtype="int8", qmin=-127, zero_point=-128), ValidationError, "zero_point"),
    (dict(scale=1.0, dtype="float8_e5m2", qmax=3), ValidationError, "qmax"),
]


@pytest.mark.parametrize("kwargs,exc,argument", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_input_names_the_argument(kwargs, exc, argument):
    with pytest.raises(exc) as info:
        QParams(**kwargs)
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: expected")


def test_axis_out_of_range_for_the_tensor():
    qp = QParams([1.0, 2.0], None, "int8", axis=3)
    with pytest.raises(ValidationError) as info:
        qp.check_shape((2, 2))
    assert info.value.argument == "axis"


def test_per_axis_length_mismatch():
    qp = QParams([1.0, 2.0], None, "int8", axis=0)
    with pytest.raises(ShapeError) as info:
        qp.check_shape((3, 2))
    assert info.value.argument == "scale"


def test_block_size_inconsistent_with_the_axis():
    # 10 elements in blocks of 3 need ceil(10/3) = 4 scales, not 3
    qp = QParams(np.ones((1, 3), np.float32), None, "int8", axis=1, block_size=3)
    with pytest.raises(ShapeError) as info:
        qp.check_shape((1, 10))
    assert info.value.argument == "block_size"


@pytest.mark.parametrize("d", [
    {"dtype": "int8", "scale": 1.0},
    {"dtype": "int8", "scale": 1.0, "zero_point": 0, "oops": 1},
    {"dtype": "int8", "scale": 0.1, "zero_point": 0},  # 0.1 is not a float32 value
    {"dtype": "int8", "scale": 1.0, "zero_point": 0, "scale_dtype": "float64"},
    "not a dict",
])
def test_from_dict_rejects_foreign_dicts(d):
    with pytest.raises(RefcompError):
        QParams.from_dict(d)


# ---- found by mutation testing (benchmarks/mutation_score.py) ---------------------------------

def test_equality_looks_at_every_field():
    """Two QParams differing in exactly one field are unequal, whichever field it is."""
    base = dict(scale=np.float32([0.5, 0.25]), zero_point=np.int8([1, 2]), dtype="int8", axis=0)
    qp = QParams(**base)
    assert qp == QParams(**base)
    variants = [
        dict(base, dtype="int16", zero_point=np.int16([1, 2])),
        dict(base, axis=-1),                                  # per-axis keeps the axis as given
        dict(base, scale=np.float32([0.5, 0.125])),
        dict(base, scale=np.float32([0.5, 0.25]).astype(np.float16)),
        dict(base, zero_point=np.int8([1, 3])),
        dict(base, qmin=-100),
        dict(base, qmax=100),
    ]
    for v in variants:
        assert QParams(**v) != qp, v
    blocked = QParams(np.ones((2, 2), np.float32), None, "int8", axis=1, block_size=2)
    assert blocked != QParams(np.ones((2, 2), np.float32), None, "int8", axis=1, block_size=3)


def test_narrow_range_roundtrips_through_json():
    """qmin / qmax strictly inside the dtype's range survive to_dict -> JSON -> from_dict."""
    qp = QParams(0.5, 3, "int8", qmin=-100, qmax=100)
    d = json.loads(json.dumps(qp.to_dict()))
    assert (d["qmin"], d["qmax"]) == (-100, 100)
    again = QParams.from_dict(d)
    assert (again.qmin, again.qmax) == (-100, 100) and again == qp
    assert "qmin" not in QParams(0.5, 3, "int8").to_dict()


def test_json_zero_points_are_ints_for_integer_dtypes_and_floats_for_float_dtypes():
    d = QParams(0.5, 3, "uint8").to_dict()
    assert d["zero_point"] == 3 and type(d["zero_point"]) is int
    assert d["scale"] == 0.5 and d.get("scale_dtype") == "float32"
    f = QParams(0.5, 0, "float8e4m3fn").to_dict()
    assert type(f["zero_point"]) is float
    assert QParams.from_dict(f) == QParams(0.5, 0, "float8e4m3fn")
    # a dict without scale_dtype reads the scale as float32
    d.pop("scale_dtype")
    assert QParams.from_dict(d).scale.dtype == np.float32
    with pytest.raises(DTypeError) as e:
        QParams.from_dict(dict(d, zero_point=1.5))
    assert e.value.argument == "zero_point"


def test_scale_and_zero_point_are_read_only():
    qp = QParams(np.float32([0.5, 0.25]), np.int8([1, 2]), "int8", axis=0)
    assert not qp.scale.flags.writeable and not qp.zero_point.flags.writeable
    with pytest.raises(ValueError):
        qp.zero_point[0] = 5


def test_axis_at_minus_rank_is_allowed_and_rank_is_not():
    scale = np.ones((2, 3), np.float32)
    qp = QParams(scale, None, "int8", axis=-2, block_size=2)
    assert qp.axis == 0 and qp.check_shape((4, 3)) == 0
    per_axis = QParams([1.0, 2.0], None, "int8", axis=2)
    with pytest.raises(ValidationError) as e:
        per_axis.check_shape((2, 2))                       # axis == rank
    assert e.value.argument == "axis"
    assert QParams([1.0, 2.0], None, "int8", axis=-2).check_shape((2, 5)) == 0


def test_block_size_zero_means_not_blocked():
    """ONNX: block_size = 0 is the attribute's default, "not blocked"."""
    qp = QParams([1.0, 2.0], None, "int8", axis=0, block_size=0)
    assert qp.per_axis and qp.block_size is None


def test_expand_blocked_along_a_later_axis():
    """Blocked scales gather along their own axis (not the flattened array)."""
    scale = np.float32([[1, 2], [3, 4], [5, 6]])             # x (3, 4), blocks of 2 along axis 1
    zp = np.int8([[0, 1], [2, 3], [4, 5]])
    s, z = QParams(scale, zp, "int8", axis=1, block_size=2).expand((3, 4))
    assert s.tolist() == [[1, 1, 2, 2], [3, 3, 4, 4], [5, 5, 6, 6]]
    assert z.tolist() == [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]]
    assert s.dtype == np.float32


def test_scale_messages_name_what_went_wrong():
    with pytest.raises(ValidationError, match="representable in float32"):
        QParams(1e-50)                                      # > 0 in float64, 0 in float32
    with pytest.raises(ValidationError, match="representable in float32"):
        QParams(1e300)                                      # finite in float64, inf in float32
    with pytest.raises(ValidationError, match=r"min=0\.5, 1 NaN, 1 Inf"):
        QParams(np.float32([0.5, np.nan, np.inf]), None, "int8", axis=0)
    with pytest.raises(ValidationError, match=r"min=nan, 1 NaN, 0 Inf"):
        QParams(np.float32(np.nan))


@pytest.mark.parametrize("name", ["qmin", "qmax"])
def test_narrow_range_errors_name_their_bound(name):
    for dtype, value in (("int8", 1000), ("float8e4m3fn", 1)):
        with pytest.raises(ValidationError) as e:
            QParams(1.0, None, dtype, **{name: value})
        assert e.value.argument == name
