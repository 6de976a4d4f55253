"""The model zoo: parameter counts and seeded initialisation."""

import numpy as np

from refcomp import models


def test_model_parameter_counts():
    assert models.lenet5().num_parameters() == 431_080
    assert models.lenet_300_100().num_parameters() == 266_610
    names = [n for n, _ in models.lenet5().named_parameters()]
    assert names[:4] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]


def test_models_are_seeded():
    a, b, c = models.lenet5(1), models.lenet5(1), models.lenet5(2)
    np.testing.assert_array_equal(a["conv1"].weight.data, b["conv1"].weight.data)
    assert not np.array_equal(a["conv1"].weight.data, c["conv1"].weight.data)
    bound = 1 / np.sqrt(25)
    assert np.abs(a["conv1"].weight.data).max() <= bound
    he = models.lenet_300_100(0, init="he_normal")["fc1"].weight.data
    assert abs(he.std() - np.sqrt(2 / 784)) < 0.05 * np.sqrt(2 / 784)
