"""Files the commands write get the usual permissions: 0666 minus the umask, or the mode of the file they replace."""

import os
import stat

import pytest

from refcomp.cli import main
from refcomp.io import write_atomic

pytest.importorskip("sklearn")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_train_out_respects_the_umask(tmp_path, umask):
    out = tmp_path / "m.safetensors"
    umask(0o022)
    assert main(["train", "--model", "digits_mlp", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    assert _mode(out) == 0o644                                # as open(path, "w") would make it, not mkstemp's 0600
    umask(0o077)
    assert _mode(write_atomic(tmp_path / "private.bin", b"x")) == 0o600


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    p = tmp_path / "shared.bin"
    p.write_bytes(b"old")
    os.chmod(p, 0o664)                                        # chosen by the user: group-writable
    write_atomic(p, b"new")
    assert p.read_bytes() == b"new" and _mode(p) == 0o664
    os.chmod(p, 0o600)
    write_atomic(p, b"newer")
    assert _mode(p) == 0o600
