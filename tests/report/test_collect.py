"""Record parts from models: the compressed layers (wrapped ones by their original name), provenance."""

import re

from refcomp import __version__, datasets, models
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.weight_only import quantize_weights
from refcomp.report import check_record, model_bytes, model_parts, provenance


def test_model_parts_of_weight_only_int4():
    before = models.digits_mlp(0)
    after, _ = quantize_weights(before, bits=4)
    layers, weights = model_parts(before, after)
    assert [la["name"] for la in layers] == ["fc1", "fc2"] == [w["layer"] for w in weights]
    for la, w, name in zip(layers, weights, ("fc1", "fc2")):
        n = before[name].weight.data.size
        assert la["bytes_before"] == 4 * n and la["bytes_after"] == after[name].weight.nbytes < n
        assert la["shape"] == list(before[name].weight.data.shape) and la["format"] == "QTensor"
        assert sum(w["histogram"]["counts"]) == n and len(w["grid"]) in (15, 16)     # int4, full or restricted
        # the histogram is of the float weights before, not of the 16 values after
        assert w["histogram"]["edges"][0] == float(before[name].weight.data.min())
    assert model_bytes(before) == 4 * sum(p.data.size for _, p in before.named_weights())
    assert model_bytes(after) < model_bytes(before)


def test_a_wrapped_layer_is_named_by_the_module_it_replaced():
    before = models.digits_mlp(0)
    (x, _), _ = datasets.load_split("digits", seed=0)
    after, _ = quantize_static(before, x[:64], integer_only=False, requantize="float")
    wrapped = [n for n, m in after.named_modules() if n.endswith(".layer")]
    layers, _ = model_parts(before, after)
    assert wrapped and [la["name"] for la in layers] == ["fc1", "fc2"]


def test_nothing_compressed_nothing_listed():
    m = models.digits_mlp(0)
    assert model_parts(m, m) == ([], [])


def test_provenance_has_version_and_utc_date_and_leaves_out_what_is_not_given():
    p = provenance("refcomp x", data="digits", seed=None, split=None, calibration="c.txt")
    assert p["refcomp_version"] == __version__ and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", p["date"])
    assert set(p) == {"command", "refcomp_version", "date", "data", "calibration"}
    check_record({"title": "t", "model": {"name": "m"}, "provenance": p})
