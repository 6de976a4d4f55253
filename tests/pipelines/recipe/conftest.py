"""The recipes' shared fixture: digits_mlp trained 5 epochs, and its data as a recipe's RecipeData."""

import pytest

from refcomp import datasets, models
from refcomp.nn.train import train
from refcomp.pipelines.recipe import RecipeData


@pytest.fixture(scope="module")
def digits():
    train_set, test_set = datasets.load_split("digits", seed=0)
    model = models.digits_mlp(0)
    train(model, train_set, epochs=5, rng=0, progress=False)
    return model, RecipeData.from_split(train_set, test_set, calibration=200)
