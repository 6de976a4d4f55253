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
