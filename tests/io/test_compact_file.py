"""The compact encoding of the model file: a compressed LeNet-300-100 round trip, its bytes, hostile files."""

import json
import struct
import time
import zlib

import numpy as np
import pytest

from refcomp import models
from refcomp.compress.share.cluster import cluster_weight
from refcomp.errors import FileFormatError, ValidationError
from refcomp.formats import Clustered, Dense, RelativeIndexCSR
from refcomp.io import load_model, model_header, save_model
from refcomp.io.compact_file import MAGIC, encode
from refcomp.io.compressed_file import save_compressed

RNG = np.random.default_rng(3)


def compressed_lenet300(layout="flat"):
    """LeNet-300-100 as Deep Compression leaves it: fc1, fc2 RelativeIndexCSR (6 %, 9 % kept), fc3 Clustered."""
    m = models.lenet_300_100(0).eval()
    for name, keep in (("fc1", 0.06), ("fc2", 0.09)):
        w = m[name].weight.to_dense()
        shared = cluster_weight(w, 5, mask=RNG.random(w.shape) < keep)
        m[name].weight = RelativeIndexCSR.from_clustered(shared, index_bits=5, layout=layout)
    w = m["fc3"].weight.to_dense()
    m["fc3"].weight = cluster_weight(w, 5, mask=RNG.random(w.shape) < 0.26)
    return m


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    m = compressed_lenet300()
    return m, save_model(m, tmp_path_factory.mktemp("c") / "model.rcm")


@pytest.mark.parametrize("layout", ["flat", "rows"])
def test_a_compressed_lenet300_round_trips_without_a_model_builder(tmp_path, layout):
    m = compressed_lenet300(layout)
    path = save_model(m, tmp_path / "model.rcm")
    assert path.read_bytes()[:4] == MAGIC
    back = load_model(path)                       # the graph is in the file: no model is supplied
    assert repr(back) == repr(m) and not back.training
    for name, cls in (("fc1", RelativeIndexCSR), ("fc2", RelativeIndexCSR), ("fc3", Clustered)):
        assert type(back[name].weight) is cls
        assert back[name].weight.to_dense().tobytes() == m[name].weight.to_dense().tobytes()
        assert back[name].weight.nbytes == m[name].weight.nbytes
    x = RNG.standard_normal((16, 1, 28, 28)).astype(np.float32)
    assert back.forward(x).tobytes() == m.forward(x).tobytes()


def test_the_suffix_or_the_format_argument_selects_the_encoding(tmp_path, lenet_file):
    m, path = lenet_file
    other = save_model(m, tmp_path / "model.bin", format="compact")
    assert other.read_bytes() == path.read_bytes()     # deterministic: the same model gives the same bytes
    with pytest.raises(ValidationError, match="compact"):
        save_model(m, tmp_path / "model.bin")


def test_the_file_holds_the_coded_fields_and_a_small_header(lenet_file):
    """Bytes = 16-byte prefix + deflated model header + every tensor of the directory, nothing else."""
    m, path = lenet_file
    raw = path.read_bytes()
    _, crc, c, h = struct.unpack("<4sIII", raw[:16])
    assert zlib.crc32(raw[8:]) == crc
    header = json.loads(zlib.decompress(raw[16:16 + c]))
    assert len(json.dumps(header, sort_keys=True, separators=(",", ":"))) == h
    want = model_header(m)
    assert header == json.loads(json.dumps(want))        # the same header as the safetensors file's
    sizes = {k: np.dtype(v["dtype"]).itemsize * int(np.prod(v["shape"])) for k, v in header["tensors"].items()}
    assert len(raw) == 16 + c + sum(sizes.values())
    assert c < 700                                       # LeNet-300-100's graph and directory, deflated
    # the coded fields are the bytes RelativeIndexCSR.fields() gives, in sorted name order after the header
    fields = m["fc1"].weight.fields()
    at = 16 + c + sum(n for k, n in sizes.items() if k < "fc1.weight.index_stream")
    assert raw[at:at + fields["index_stream"].nbytes] == fields["index_stream"].tobytes()


def test_the_coded_fields_are_the_bytes_of_the_rcdc_payload(tmp_path):
    """The compact file stores each coded layer with exactly the .rcdc payload's bytes (+ its int64 header)."""
    m = compressed_lenet300()
    storage = {n: m[n].weight for n in ("fc1", "fc2")}
    rcdc = save_compressed(tmp_path / "m.rcdc", storage).read_bytes()
    (h,) = struct.unpack("<I", rcdc[4:8])
    payload = len(rcdc) - 8 - h - 4      # version 2 ends with a 4-byte CRC-32
    coded = sum(a.nbytes for layer in storage.values() for k, a in layer.fields().items() if k != "header")
    assert coded == payload
    for layer in storage.values():
        for k, a in layer.fields().items():
            if k != "header" and a.nbytes:
                assert a.tobytes() in rcdc


def test_dtypes_outside_the_encoding_are_refused_on_saving(tmp_path):
    m = models.digits_mlp(0)
    m["fc1"].weight = Dense(m["fc1"].weight.to_dense().astype(">f4"))   # big-endian: not stored as is
    with pytest.raises(ValidationError, match="compact encoding"):
        save_model(m, tmp_path / "m.rcm")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValidationError, match="directory"):
        encode({"tensors": {}}, {"x": np.zeros(2, np.float32)})


# --- hostile files ------------------------------------------------------------------
def _refresh(raw: bytes) -> bytes:
    """The same bytes with a correct checksum: what a deliberate forgery would write."""
    return raw[:4] + struct.pack("<I", zlib.crc32(raw[8:])) + raw[8:]


def _with_header(raw: bytes, edit) -> bytes:
    _, _, c, _ = struct.unpack("<4sIII", raw[:16])
    header = json.loads(zlib.decompress(raw[16:16 + c]))
    edit(header)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    packed = zlib.compress(text, 9)
    return _refresh(raw[:8] + struct.pack("<II", len(packed), len(text)) + packed + raw[16 + c:])


def _raises_quickly(path, data, match=None):
    path.write_bytes(data)
    t = time.perf_counter()
    with pytest.raises(FileFormatError, match=match):
        load_model(path)
    assert time.perf_counter() - t < 2.0


def test_truncated_files_are_refused(tmp_path, lenet_file):
    raw = lenet_file[1].read_bytes()
    for cut in (0, 3, 4, 10, 16, 100, len(raw) // 2, len(raw) - 1):
        _raises_quickly(tmp_path / "t.rcm", raw[:cut])


@pytest.mark.parametrize("what, forge, match", [
    ("magic", lambda r: b"RXM1" + r[4:], None),
    ("layout", lambda r: b"RCM7" + r[4:], "layout"),
    ("header length", lambda r: r[:8] + struct.pack("<I", 2 ** 31) + r[12:], "past the end"),
    ("inflated length", lambda r: _refresh(r[:12] + struct.pack("<I", 2 ** 31) + r[16:]), "allowed"),
    ("inflated length short", lambda r: _refresh(r[:12] + struct.pack("<I", 10) + r[16:]), "declared"),
    ("extra bytes", lambda r: _refresh(r + b"\0"), "after the last tensor"),
    ("deflate", lambda r: _refresh(r[:16] + b"\xff" * 8 + r[24:]), "deflate|declared"),
    ("huge shape", lambda r: _with_header(r, lambda h: h["tensors"]["fc1.bias"].update(shape=[2 ** 40, 2 ** 40])),
     "runs past the end"),
    ("negative shape", lambda r: _with_header(r, lambda h: h["tensors"]["fc1.bias"].update(shape=[-1])),
     "invalid shape"),
    ("dtype", lambda r: _with_header(r, lambda h: h["tensors"]["fc1.bias"].update(dtype="|O")), "dtype"),
    ("version", lambda r: _with_header(r, lambda h: h.update(version=99)), "newer"),
    ("format", lambda r: _with_header(r, lambda h: h.update(format="someone.else")), "not a refcomp model"),
    ("graph", lambda r: _with_header(r, lambda h: h["graph"]["children"][1]["config"].update(in_features=9)),
     "shape"),
    ("coded layer shape", lambda r: _huge_coded_shape(r, 2 ** 20), "needs"),
    ("coded layer shape overflowing", lambda r: _huge_coded_shape(r, 2 ** 40), "invalid layout"),
])
def test_hostile_files_are_refused_quickly(tmp_path, lenet_file, what, forge, match):
    _raises_quickly(tmp_path / "h.rcm", forge(lenet_file[1].read_bytes()), match)


def _huge_coded_shape(raw: bytes, d: int) -> bytes:
    """fc1's field header declares a (d, d) weight: refused before any (rows, cols) array is built."""
    _, _, c, _ = struct.unpack("<4sIII", raw[:16])
    header = json.loads(zlib.decompress(raw[16:16 + c]))
    names = sorted(header["tensors"])
    at = 16 + c
    for k in names:
        if k == "fc1.weight.header":
            break
        spec = header["tensors"][k]
        at += np.dtype(spec["dtype"]).itemsize * int(np.prod(spec["shape"]))
    fields = bytearray(raw)
    fields[at + 48:at + 64] = np.array([d, d], "<i8").tobytes()   # the two shape entries
    return _refresh(bytes(fields))


def test_every_flipped_bit_is_refused(tmp_path, lenet_file):
    """The checksum covers the whole file: a flipped bit in a Huffman stream cannot decode silently."""
    raw = lenet_file[1].read_bytes()
    for pos in range(0, len(raw), 97):
        for bit in (0, 5):
            data = bytearray(raw)
            data[pos] ^= 1 << bit
            _raises_quickly(tmp_path / "f.rcm", bytes(data))


def test_a_compact_file_given_to_the_rcdc_reader_is_named(lenet_file):
    from refcomp.io.compressed_file import load_compressed

    with pytest.raises(FileFormatError, match="compact model file.*load_model"):
        load_compressed(lenet_file[1])
