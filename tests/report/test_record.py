"""The run record's check names the wrong key; the histogram and grid helpers."""

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.quant import QParams
from refcomp.report import check_record, histogram, qparams_grid


def test_a_full_record_passes(record):
    assert check_record(record) is record


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("title"), r"record: expected a dict with the keys title, model, provenance, got no title"),
    (lambda r: r.update(colour="red"), r"record: expected keys among .*, got also colour"),
    (lambda r: r["model"].pop("name"), r"record.model: expected a dict with the keys name"),
    (lambda r: r["layers"][1].update(bytes_after=-1), r"record.layers\[1\]\['bytes_after'\]: expected an int >= 0"),
    (lambda r: r["layers"][0].update(bytes_before=1.5), r"record.layers\[0\]\['bytes_before'\]: expected an int"),
    (lambda r: r["weights"][0]["histogram"]["counts"].pop(),
     r"record.weights\[0\]\['histogram'\]: expected n >= 1 counts and n \+ 1 edges"),
    (lambda r: r["weights"][1]["histogram"]["edges"].reverse(),
     r"record.weights\[1\]\['histogram'\]\['edges'\]: expected increasing numbers"),
    (lambda r: r["weights"][0].update(grid=[0.1, float("nan")]), r"record.weights\[0\]\['grid'\]\[1\]: expected a finite"),
    (lambda r: r["sensitivity"]["fc2"].append([0.5]), r"record.sensitivity\['fc2'\]\[3\]: expected a \[sparsity, metric\]"),
    (lambda r: r["sensitivity"]["fc2"].pop(), r"record.sensitivity\['fc2'\]: expected points at the sparsities of the first"),
    (lambda r: r["stages"][2].update(metric="high"), r"record.stages\[2\]\['metric'\]: expected a finite number or None"),
    (lambda r: r["provenance"].pop("date"), r"record.provenance: expected a dict with the keys command"),
    (lambda r: r["notes"].append(3), r"record.notes\[1\]: expected a str, got int"),
])
def test_a_wrong_key_is_named(record, edit, message):
    edit(record)
    with pytest.raises(ValidationError, match=message):
        check_record(record)


def test_histogram_leaves_out_the_pruned_zeros_when_asked():
    v = np.array([0.0, 0.0, 0.0, -1.0, 1.0, 0.5])
    h = histogram(v, bins=4, drop_zeros=True)
    assert sum(h["counts"]) == 3 and h["edges"][0] == -1.0 and h["edges"][-1] == 1.0
    assert sum(histogram(v, bins=4)["counts"]) == 6
    one = histogram([2.0, 2.0], bins=3)                       # one value: edges still increase
    assert one["edges"][0] < 2.0 < one["edges"][-1] and sum(one["counts"]) == 2


def test_qparams_grid_is_every_level_of_the_widest_channel():
    grid, kind = qparams_grid(QParams(np.float32(0.5), 3, "int8"))
    assert len(grid) == 256 and grid[0] == 0.5 * (-128 - 3) and grid[-1] == 0.5 * (127 - 3)
    assert kind == "int8 levels"
    grid, kind = qparams_grid(QParams(np.array([0.1, 0.4, 0.2], np.float32), 0, "int4", axis=0))
    assert len(grid) == 16 and grid[-1] == pytest.approx(0.4 * 7) and "channel 1 of 3: the largest scale" in kind
    blocks = QParams(np.array([[0.1, 0.3], [0.2, 0.1]], np.float32), 0, "int4", axis=1, block_size=2)
    assert "block 1 of 4" in qparams_grid(blocks)[1]
