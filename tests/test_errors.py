"""refcomp.errors: what each exception is, and how the CLI shows a missing optional package."""

import sys

import pytest

from refcomp.errors import BackendUnavailableError, MissingDependencyError, RefcompError


def test_missing_dependency_names_package_extra_and_command():
    exc = MissingDependencyError("refcomp.onnx", "onnx", "interop")
    # what `import onnx` would raise, and what refcomp raised before for a missing backend
    assert isinstance(exc, ImportError) and isinstance(exc, BackendUnavailableError) and isinstance(exc, RefcompError)
    assert str(exc) == "refcomp.onnx: expected the package onnx installed, got it missing (pip install refcomp[interop])"
    assert exc.hint == "install it with: pip install 'refcomp[interop]'"


def test_the_cli_prints_the_install_command_as_its_hint(monkeypatch, tmp_path, capsys):
    """A route that needs an extra: one error line, the pip command as the hint, exit 2, nothing written."""
    from refcomp.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)        # makes `import onnx` raise ImportError
    model = tmp_path / "m.onnx"
    model.write_bytes(b"unread")
    assert main(["compress", "--onnx", str(model), "--recipe", "w8a8-dynamic", "--data", "digits",
                 "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["refcomp compress: error: refcomp.onnx: expected the package onnx installed, got it missing "
                   "(pip install refcomp[interop])",
                   "refcomp compress: hint: install it with: pip install 'refcomp[interop]'"]
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("call", ["export", "digits", "diff"])
def test_other_optional_imports_raise_it(monkeypatch, call):
    """refcomp.onnx.export without onnx, the digits data without scikit-learn, diff's runtime without onnxruntime."""
    if call == "diff":
        pytest.importorskip("onnx")
        from refcomp.pipelines.diff.run import _onnxruntime_outputs

        monkeypatch.setitem(sys.modules, "onnxruntime", None)
        with pytest.raises(MissingDependencyError, match=r"package onnxruntime installed.*refcomp\[interop\]"):
            _onnxruntime_outputs("unread.onnx", None, 1)
    elif call == "export":
        from refcomp.models import digits_mlp
        from refcomp.onnx import export

        monkeypatch.setitem(sys.modules, "onnx", None)
        with pytest.raises(MissingDependencyError, match=r"refcomp\[interop\]"):
            export(digits_mlp(0), None, input_shape=(1, 64))
    else:
        from refcomp import datasets

        monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
        with pytest.raises(MissingDependencyError, match=r"scikit-learn.*refcomp\[data\]"):
            datasets.digits()
