"""Fixtures of the op tests."""

import pytest

import refcomp.backend


@pytest.fixture
def kernel_registry(monkeypatch):
    """Install a fake kernel registry: ``kernel_registry({(op, backend): fn, ...})``.

    The registry stands for what refcomp.kernels registers (nothing else is loaded), under the
    "auto" default, so a test can state which backend names reach the kernel and which the
    NumPy definition, whatever is built on the machine.
    """
    def install(registry):
        monkeypatch.setattr(refcomp.backend, "_registry", dict(registry))
        monkeypatch.setattr(refcomp.backend, "_loaded", True)
        monkeypatch.setattr(refcomp.backend, "_default_backend", "auto")

    return install
