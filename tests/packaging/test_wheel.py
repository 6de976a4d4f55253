"""The user's install: ``python -m build``, then ``pip install <wheel>`` into an empty venv, then the CLI.

What it proves: the sdist carries everything the C extension is compiled from
and builds by itself (``python -m build`` makes the wheel *from the sdist*);
the wheel holds the compiled cffi extension refcomp.kernels._crefcomp, built
without ``-march`` (portable: the ISA is chosen at run time); the core
dependencies are enough for ``refcomp demo`` and ``refcomp compress`` on the
bundled digits data; a route that needs an optional extra says which one.
Everything runs from a folder outside the checkout, so the installed wheel
is what is imported, never the source tree.

Needs the ``build`` package (the test extra), a C compiler and PyPI (or
pip's cache). Without them it skips, except under CI=true, where it fails.
Time (shared 2-core machine, warm pip cache): about 2-3 minutes, most of it
building the extension and installing numba/scipy; docs/architecture.md has
the measured split.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from refcomp._version import __version__

from ..conftest import REPO, _need

#: seconds each stage took, shown after the run (tests/packaging/conftest.py; measured: docs/architecture.md)
TIMINGS: dict[str, float] = {}


def _run(args, *, cwd, env=None, timeout=600, what=""):
    """Run a command; a failure shows its output (the build log, pip's or refcomp's error)."""
    t = time.perf_counter()
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if what:
        TIMINGS[what] = time.perf_counter() - t
    return res


def _clean_env(**extra) -> dict:
    """The environment of a user's shell: nothing pointing back into this checkout or its .venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return {**env, **extra}


def _source_copy(tmp_path_factory) -> Path:
    """The checkout without what builds and installs leave in it.

    Why a copy: setuptools adds the files listed in a stale ``refcomp.egg-info/SOURCES.txt``
    (the editable install's) to the sdist, so a file dropped from MANIFEST.in would still
    ship, and the test would pass on a broken MANIFEST.in; a copy also leaves the checkout
    untouched by the build.
    """
    src = tmp_path_factory.mktemp("src") / "refcomp"
    junk = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                                  ".pytest_cache", "*.so", "*.o", "_crefcomp.c")
    shutil.copytree(REPO, src, ignore=junk)
    return src


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist and wheel built by ``python -m build`` (the wheel from the sdist), in a fresh folder."""
    try:
        import build  # noqa: F401
    except ImportError:
        _need("the 'build' package", "pip install 'refcomp[test]'")
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        _need("a C compiler", "install cc/gcc: the wheel must hold the compiled C extension")
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "build", "--outdir", str(out), str(_source_copy(tmp_path_factory))],
               cwd=out, env=_clean_env(), what="build sdist + wheel")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    log = res.stdout + res.stderr
    # setup.py turns a failed C build into a warning; in a wheel that is a failure
    assert "not built" not in log, [ln for ln in log.splitlines() if "not built" in ln]
    compiles = [ln for ln in log.splitlines() if " -c " in ln and "csrc" in ln]
    assert compiles, "no C compile line in the build log"
    assert not [ln for ln in compiles if "-march" in ln], "a -march flag makes the wheel non-portable"
    (out / "build.log").write_text(log)
    return out


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """An empty venv (no pip, no packages) into which the wheel alone is installed; returns its bin/."""
    from pip import __version__ as pip_version

    if tuple(int(p) for p in re.findall(r"\d+", pip_version)[:2]) < (22, 3):
        _need(f"pip >= 22.3 (for --python; this one is {pip_version})", "python -m pip install -U pip")
    root = tmp_path_factory.mktemp("venv")
    res = _run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root, what="create venv")
    assert res.returncode == 0, res.stderr
    py = root / ("Scripts" if os.name == "nt" else "bin") / "python"
    wheel = next(dist.glob("refcomp-*.whl"))
    # this interpreter's pip installs into the new venv (--python): no pip bootstrap inside it
    res = _run([sys.executable, "-m", "pip", "--python", str(py), "install", str(wheel)], cwd=root,
               env=_clean_env(), what="pip install wheel")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return py.parent


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The user's folder: outside the checkout, so ``import refcomp`` cannot find the source tree."""
    d = tmp_path_factory.mktemp("work")
    assert REPO not in d.resolve().parents
    return d


def test_the_sdist_carries_the_c_sources_and_no_binaries(dist):
    """csrc/ (sources and headers) and the cffi builder: what the extension is compiled from."""
    sdist = next(dist.glob("refcomp-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    c_sources = {f"csrc/{f}" for f in os.listdir(REPO / "csrc") if f.endswith((".c", ".h"))}
    assert c_sources <= names, sorted(c_sources - names)
    assert {"kernels/build_cffi.py", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md"} <= names
    assert not [n for n in names if n.endswith((".so", ".o", ".pyd", ".dylib"))]


def test_the_wheel_holds_the_compiled_extension(dist):
    wheel = next(dist.glob("refcomp-*.whl"))
    assert wheel.name.startswith(f"refcomp-{__version__}-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert [n for n in names if n.startswith("refcomp/kernels/_crefcomp") and n.endswith((".so", ".pyd"))]
    assert "refcomp/cli/__init__.py" in names and "refcomp/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "csrc/"))]


def test_the_installed_wheel_is_what_runs(venv, work):
    """refcomp is imported from the venv, with its C kernels, and reports this version."""
    code = ("import refcomp, refcomp.kernels as k; from refcomp._version import __version__ as v; "
            "print(refcomp.__file__); print(v); print(k.c_status()['available'])")
    res = _run([str(venv / "python"), "-c", code], cwd=work, env=_clean_env())
    assert res.returncode == 0, res.stderr
    where, version, c_available = res.stdout.split()
    assert Path(where).resolve().is_relative_to(venv.parent.resolve())
    assert version == __version__ and c_available == "True"
    res = _run([str(venv / "refcomp"), "--version"], cwd=work, env=_clean_env())
    assert res.stdout.strip() == f"refcomp {__version__}"


def test_demo_runs_from_the_bare_wheel(venv, work):
    res = _run([str(venv / "refcomp"), "demo"], cwd=work, env=_clean_env(), what="refcomp demo")
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Deep Compression (P+Q+H)" in res.stdout and "W8A8 PTQ, integer-only" in res.stdout
    assert "Traceback" not in res.stderr


def test_compress_runs_from_the_bare_wheel(venv, work):
    """The Deep Compression route on digits, few epochs: model file, report and JSON, version recorded."""
    (work / "small.toml").write_text("prune_rounds = 1\nprune_epochs = 1\nfinetune_epochs = 1\n")
    res = _run([str(venv / "refcomp"), "compress", "--model", "digits_mlp", "--out", "r", "--baseline-epochs", "2",
                "--config", "small.toml"], cwd=work, env=_clean_env(), what="refcomp compress")
    assert res.returncode == 0, res.stderr[-4000:]
    out = work / "r"
    assert {"baseline.safetensors", "model.rcm", "report.md", "results.json"} <= {p.name for p in out.iterdir()}
    assert f"Written by refcomp {__version__}." in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["refcomp_version"] == __version__
    # the compressed model loads and runs in the installed refcomp
    code = "from refcomp.io import load_model; import numpy as np; print(load_model('r/model.rcm').forward(" \
           "np.zeros((1, 64), np.float32)).shape)"
    res = _run([str(venv / "python"), "-c", code], cwd=work, env=_clean_env())
    assert res.returncode == 0 and res.stdout.strip() == "(1, 10)", res.stderr


def test_a_recipe_runs_from_the_bare_wheel(venv, work):
    """Any pipeline as a TOML recipe (the repository's examples/ are plain files the user passes)."""
    recipe = Path(__file__).resolve().parents[2] / "examples" / "w8a8_dynamic.toml"
    res = _run([str(venv / "refcomp"), "compress", "--model", "digits_mlp", "--out", "rr", "--baseline-epochs", "2",
                "--recipe", str(recipe), "--json"], cwd=work, env=_clean_env(), what="refcomp compress --recipe")
    assert res.returncode == 0, res.stderr[-4000:]
    r = json.loads(res.stdout)
    assert r["route"] == "recipe" and r["record"]["refcomp_version"] == __version__
    assert {"model.rcm", "run.json", "report.md", "report.html"} <= {p.name for p in (work / "rr").iterdir()}


def test_a_route_needing_an_extra_names_it(venv, work):
    """--onnx needs onnx (refcomp[interop]): one error line naming the extra, a hint, exit 2, no traceback."""
    (work / "m.onnx").write_bytes(b"not read: onnx is missing")
    res = _run([str(venv / "refcomp"), "compress", "--onnx", "m.onnx", "--recipe", "w8a8-dynamic", "--data",
                "digits", "--out", "q"], cwd=work, env=_clean_env())
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("refcomp compress: error: ") and "refcomp[interop]" in lines[0]
    assert lines[1] == "refcomp compress: hint: install it with: pip install 'refcomp[interop]'" and len(lines) == 2
    assert not (work / "q").exists()
