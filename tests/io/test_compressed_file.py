"""The Deep Compression file: exact round trip, Huffman/fixed choice as counted, corrupt files refused."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.share.cluster import cluster_weight
from refcomp.io.compressed_file import load_compressed, save_compressed
from refcomp.pipelines.deep_compression import load_into
from refcomp.formats.relative_csr import RelativeIndexCSR, size_table
from refcomp.errors import FileFormatError, ValidationError

from .._support.helpers import mlp


def _layer(seed, density, bits, index_bits, layout, shape=(20, 30)):
    g = np.random.default_rng(seed)
    w = g.normal(size=shape).astype(np.float32)
    m = g.random(shape) < density
    m.flat[0] = True
    return RelativeIndexCSR.from_clustered(cluster_weight(w, bits, mask=m), index_bits=index_bits,
                                           layout=layout)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), density=st.floats(0.01, 1.0), bits=st.integers(1, 8),
       index_bits=st.integers(1, 8), layout=st.sampled_from(["flat", "rows"]))
def test_round_trip_is_exact(tmp_path_factory, seed, density, bits, index_bits, layout):
    layer = _layer(seed, density, bits, index_bits, layout)
    bias = np.arange(20, dtype=np.float32)
    path = tmp_path_factory.mktemp("f") / "m.rcdc"
    save_compressed(path, {"fc": layer}, {"fc.bias": bias}, metadata={"k": 1})
    layers, tensors, meta = load_compressed(path)
    np.testing.assert_array_equal(layers["fc"].to_dense(), layer.to_dense())
    np.testing.assert_array_equal(layers["fc"].index_fields, layer.index_fields)
    np.testing.assert_array_equal(tensors["fc.bias"], bias)
    assert meta == {"k": 1}


def test_payload_matches_the_size_table(tmp_path):
    """Payload = table bits (rounded to bytes per stream) + row pointers at 32 bits; header is JSON."""
    import json
    import struct
    layer = _layer(0, 0.1, 5, 5, "flat", shape=(100, 200))
    path = save_compressed(tmp_path / "a.rcdc", {"a": layer})
    raw = path.read_bytes()
    (h,) = struct.unpack("<I", raw[4:8])
    json.loads(raw[8:8 + h])
    payload = len(raw) - 8 - h - 4      # version 2 ends with a 4-byte CRC-32
    row = size_table({"a": layer})[0]
    assert row["pqh_bits"] / 8 - 1 <= payload <= row["pqh_bits"] / 8 + 3


def test_corrupt_files_raise_file_format_error(tmp_path):
    layer = _layer(1, 0.3, 4, 4, "rows")
    path = save_compressed(tmp_path / "m.rcdc", {"fc": layer})
    raw = path.read_bytes()
    cases = {
        "magic": b"XXXX" + raw[4:],
        "truncated": raw[:-5],
        "header": raw[:9] + b"#" + raw[10:],
        "codebook NaN": raw.replace(b'"codebook_size":16', b'"codebook_size":17'),
        "version": raw.replace(b'"version":2', b'"version":9'),
        "stream bits": raw[:-3] + bytes(b ^ 0xFF for b in raw[-3:]),
    }
    for what, data in cases.items():
        p = tmp_path / f"{what}.rcdc"
        p.write_bytes(data)
        with pytest.raises(FileFormatError):
            load_compressed(p)


def test_load_into_a_model_and_mismatch(tmp_path):
    m = mlp()
    layer = RelativeIndexCSR.from_clustered(cluster_weight(m["fc1"].weight.data, 3), index_bits=4,
                                            layout="flat")
    others = {n: p.data for n, p in m.named_weights() if n != "fc1.weight"}
    path = save_compressed(tmp_path / "m.rcdc", {"fc1": layer}, others)
    back = load_into(m, path)
    np.testing.assert_array_equal(back["fc1"].weight.data, layer.to_dense())
    np.testing.assert_array_equal(back["fc3"].weight.data, m["fc3"].weight.data)
    path2 = save_compressed(tmp_path / "m2.rcdc", {"fc1": layer}, {"fc1.bias": m["fc1"].bias.data})
    with pytest.raises(ValidationError, match="missing"):
        load_into(m, path2)
    with pytest.raises(ValidationError, match="clustered RelativeIndexCSR"):
        save_compressed(tmp_path / "x.rcdc", {"fc1": RelativeIndexCSR.from_dense(np.eye(3), index_bits=2)})


def test_every_single_bit_flip_is_refused(tmp_path):
    """Version 2 ends with a CRC-32 of the file: in version 1, 46 of 70 single-bit flips loaded silently
    as other weights (a flipped Huffman bit mostly decodes to other valid symbols)."""
    layer = _layer(2, 0.3, 4, 5, "rows")
    raw = save_compressed(tmp_path / "m.rcdc", {"fc": layer}, {"fc.bias": np.ones(20, np.float32)}).read_bytes()
    p = tmp_path / "flip.rcdc"
    g = np.random.default_rng(0)
    for bit in g.choice(8 * len(raw), size=70, replace=False):
        data = bytearray(raw)
        data[bit // 8] ^= 1 << (bit % 8)
        p.write_bytes(bytes(data))
        with pytest.raises(FileFormatError):
            load_compressed(p)


def test_a_version_1_file_is_still_read(tmp_path):
    """Version 1 (no checksum) is what refcomp compress wrote before: still converted, bit-exact."""
    import struct

    layer = _layer(3, 0.4, 3, 4, "flat")
    raw = save_compressed(tmp_path / "m.rcdc", {"fc": layer}).read_bytes()[:-4]     # without the CRC
    (h,) = struct.unpack("<I", raw[4:8])
    header = raw[8:8 + h].replace(b'"version":2', b'"version":1')
    p = tmp_path / "v1.rcdc"
    p.write_bytes(raw[:8] + header + raw[8 + h:])
    layers, _, _ = load_compressed(p)
    np.testing.assert_array_equal(layers["fc"].to_dense(), layer.to_dense())


def test_a_layer_or_tensor_named_twice_is_refused(tmp_path):
    import json
    import struct
    import zlib

    layer = _layer(3, 0.4, 3, 4, "flat")
    raw = save_compressed(tmp_path / "m.rcdc", {"fc": layer}, {"b": np.ones(3, np.float32)}).read_bytes()[:-4]
    (h,) = struct.unpack("<I", raw[4:8])
    header = json.loads(raw[8:8 + h])
    for key in ("layers", "tensors"):
        twice = dict(header, **{key: header[key] * 2})
        text = json.dumps(twice).encode()
        body = raw[:4] + struct.pack("<I", len(text)) + text + raw[8 + h:]
        p = tmp_path / f"{key}.rcdc"
        p.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
        with pytest.raises(FileFormatError, match="appears twice"):
            load_compressed(p)
