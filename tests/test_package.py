import subprocess
import sys

import pytest

import refcomp
from refcomp import backend
from refcomp.errors import BackendUnavailableError, DTypeError, ValidationError
from refcomp.numerics.dtypes import QDTYPES, qdtype


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "refcomp", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and refcomp.__version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "refcomp", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: refcomp" in out.stdout


def test_backend_names_are_validated():
    with pytest.raises(ValidationError, match="backend"):
        backend.implementation("matmul_integer", "cuda")
    with pytest.raises(ValidationError, match="n: expected an int >= 1"):
        refcomp.set_num_threads(0)


def test_explicit_unavailable_backend_raises():
    with pytest.raises(BackendUnavailableError):
        backend.implementation("no_such_op", "c")
    assert backend.implementation("no_such_op", "auto") is None


def test_resolve_names_the_backend_it_chose_and_lookup_never_falls_back():
    assert backend.resolve("matmul_integer", "numpy") == ("numpy", None)
    name, fn = backend.resolve("matmul_integer", "auto")
    assert fn is backend.implementation("matmul_integer", "auto")
    avail = backend.available("matmul_integer")  # numpy first, then the fast ones in the order "auto" prefers
    assert name == (avail[1] if len(avail) > 1 else "numpy")
    if fn is not None:
        assert backend.lookup("matmul_integer", name) is fn
    assert backend.lookup("no_such_op", "c") is None and backend.lookup("matmul_integer", "numpy") is None
    with pytest.raises(BackendUnavailableError):
        backend.resolve("no_such_op", "c")


@pytest.mark.parametrize("name", list(QDTYPES))
def test_qdtype_resolves_every_spelling(name):
    q = QDTYPES[name]
    assert qdtype(name) is q and qdtype(q.onnx) is q and qdtype(q.np_dtype) is q


def test_qdtype_matches_onnx_enum():
    pytest.importorskip("onnx")
    from onnx import helper

    for q in QDTYPES.values():
        assert helper.tensor_dtype_to_np_dtype(q.onnx) == q.np_dtype, q.name


def test_qdtype_rejects_float32():
    with pytest.raises(DTypeError, match="dtype"):
        qdtype("float32")


def test_cli_pins_blas_threads_to_refcomp_thread_count():
    """Commands run BLAS on refcomp's thread count, so training results do not depend on the core count."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from refcomp.cli import _blas_threads

    with _blas_threads(1):
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)
