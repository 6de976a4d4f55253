"""Fixtures shared by the whole-model tests of several compression families."""

import pytest

from refcomp.nn import evaluate

from .models_for_tests import digits_split, trained_digits_mlp


@pytest.fixture(scope="module")
def digits():
    tr, te = digits_split()
    m = trained_digits_mlp()
    return m, tr, te, evaluate(m, te)["accuracy"]
