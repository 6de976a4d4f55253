"""A run record with every section, built from seeded random weights (no training)."""

import numpy as np
import pytest

from refcomp.report import histogram


def make_record() -> dict:
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.1, 4096)
    w1[rng.random(4096) < 0.8] = 0                     # pruned: the zeros are left out of the histogram
    w2 = rng.normal(0, 0.2, 640)
    return {
        "title": "Test run <of> & \"record\"",
        "model": {"name": "mlp", "summary": {"parameters": 4736, "note": "synthetic"}},
        "provenance": {"command": "refcomp compress --model mlp --out r", "refcomp_version": "0.1.0",
                       "date": "2026-12-05T06:00:00Z", "data": "digits", "split": "seed-0 split", "seed": 0},
        "layers": [{"name": "fc1", "shape": [64, 64], "format": "RelativeIndexCSR", "bytes_before": 16384,
                    "bytes_after": 1200},
                   {"name": "fc2", "shape": [10, 64], "bytes_before": 2560, "bytes_after": 700}],
        "weights": [{"layer": "fc1", "histogram": histogram(w1, drop_zeros=True),
                     "grid": [-0.2, -0.1, 0.1, 0.2], "grid_kind": "centroids", "note": "nonzero weights"},
                    {"layer": "fc2", "histogram": histogram(w2), "grid": list(np.linspace(-0.8, 0.8, 256)),
                     "grid_kind": "int8 grid"}],
        "sensitivity": {"fc1": [[0.0, 0.95], [0.5, 0.94], [0.9, 0.7]], "fc2": [[0.0, 0.95], [0.5, 0.9], [0.9, 0.4]]},
        "stages": [{"name": "dense", "bytes": 18944, "metric": 0.95},
                   {"name": "pruned", "bytes": 5000, "metric": 0.945},
                   {"name": "clustered", "bytes": 1900, "metric": 0.94},
                   {"name": "not measured", "bytes": 1800, "metric": None}],
        "metric": "test accuracy",
        "notes": ["A note."],
    }


@pytest.fixture
def record() -> dict:
    return make_record()
