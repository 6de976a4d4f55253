"""Every file refcomp writes records the refcomp version that wrote it (refcomp.io.provenance)."""

import json

import numpy as np
import pytest

from refcomp import models
from refcomp._version import __version__
from refcomp.io import compact_file, save_model
from refcomp.io.compressed_file import load_compressed, save_compressed

pytest.importorskip("safetensors")


def _header(path) -> dict:
    """The refcomp JSON header of a model file, read straight from its container."""
    raw = path.read_bytes()
    if path.suffix == ".rcm":
        return compact_file.read_header(raw, path)[0]
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return json.loads(z["__refcomp_header__"].tobytes())
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return json.loads(f.metadata()["refcomp"])


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".rcm"])
def test_model_files_record_the_version(tmp_path, suffix):
    """Each container's header holds refcomp_version, beside (not inside) the user's metadata."""
    path = save_model(models.digits_mlp(0), tmp_path / f"m{suffix}", metadata={"k": 1})
    header = _header(path)
    assert header["refcomp_version"] == __version__
    assert header["metadata"] == {"k": 1}


def test_rcdc_files_record_the_version(tmp_path):
    """The earlier Deep Compression file (still written by tests and converters) records it too."""
    from refcomp.compress.share.cluster import cluster_weight
    from refcomp.formats import RelativeIndexCSR

    w = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    layer = RelativeIndexCSR.from_clustered(cluster_weight(w, 2, mask=w > 0), index_bits=3)
    path = save_compressed(tmp_path / "m.rcdc", {"fc": layer})
    raw = path.read_bytes()
    (n,) = np.frombuffer(raw[4:8], "<u4")
    assert json.loads(raw[8:8 + int(n)])["refcomp_version"] == __version__
    assert set(load_compressed(path)[0]) == {"fc"}          # and the reader does not mind the field


def test_png_plots_record_the_version(tmp_path):
    """A plot's PNG Software text chunk names refcomp's version (and matplotlib's)."""
    pytest.importorskip("matplotlib")
    from PIL import Image

    from refcomp.compress.prune.sensitivity import plot_sensitivity

    assert plot_sensitivity({"fc1": [(0.0, 0.9), (0.5, 0.8)]}, tmp_path / "s.png")
    with Image.open(tmp_path / "s.png") as im:
        software = im.text["Software"]
    assert software.startswith(f"refcomp {__version__} (matplotlib ")
