"""A real Deep Compression run (digits, a few epochs) through run_record and write_report, and its page
in headless Chromium: every figure drawn, no error, the record's numbers those of the run."""

import numpy as np
import pytest

from refcomp import datasets, models
from refcomp.compress.prune.sensitivity import sensitivity
from refcomp.nn.train import train
from refcomp.pipelines.deep_compression import PipelineConfig, run_pipeline, write_report
from refcomp.pipelines.deep_compression.report import run_record
from refcomp.report import provenance
from tests._support.browser import open_page

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    train_set, test_set = datasets.load_split("digits", seed=0)
    model = models.build("digits_mlp", 0)
    train(model, train_set, epochs=3, batch_size=64, lr=0.05, momentum=0.9, rng=0, progress=False)
    curves = sensitivity(model, test_set, layers=["fc1", "fc2"], sparsities=(0.0, 0.5, 0.9))
    config = PipelineConfig(sparsity={"fc1": 0.75, "fc2": 0.5}, weight_bits={"fc1": 4, "fc2": 3},
                            index_bits={"fc1": 4, "fc2": 3}, prune_rounds=1, prune_epochs=1, finetune_epochs=1)
    out = tmp_path_factory.mktemp("dc")
    result = run_pipeline(model, train_set, test_set, config, progress=False, save_to=out / "model.rcm")
    record = run_record(result, title="digits_mlp", model_name="digits_mlp", sensitivity=curves,
                        provenance=provenance("refcomp compress --model digits_mlp", data="digits", seed=0))
    return result, record, write_report(result, out, record=record)


def test_the_record_holds_the_run(run):
    result, record, _ = run
    rows = {r["layer"]: r for r in result.table}
    assert [(la["name"], la["bytes_after"]) for la in record["layers"]] == [
        ("fc1", rows["fc1"]["pqh_bytes"]), ("fc2", rows["fc2"]["pqh_bytes"])]
    for w in record["weights"]:            # the red lines are the stored codebook
        np.testing.assert_array_equal(w["grid"], result.clustered[w["layer"]].codebook)
        assert len(w["grid"]) == {"fc1": 16, "fc2": 8}[w["layer"]]
    fc1 = result.pruned["fc1"].weight.data
    assert sum(record["weights"][0]["histogram"]["counts"]) == np.count_nonzero(fc1)   # pruned zeros left out
    assert [s["metric"] for s in record["stages"]] == [result.accuracy[k] for k in
                                                       ("dense", "pruned", "clustered", "compressed", "from_file")]
    sizes = [s["bytes"] for s in record["stages"]]
    assert sizes[0] > sizes[1] > sizes[2] == sizes[3] > sizes[4] == result.table[-1]["pqh_bytes"]
    assert [p for p, _ in record["sensitivity"]["fc2"]] == [0.0, 0.5, 0.9]


def test_the_page_shows_every_figure_in_chromium(run, tmp_path):
    _, record, paths = run
    seen = open_page(paths["html"], tmp_path / "deep_compression.png")
    assert seen["console_errors"] == [] and seen["page_errors"] == [] and seen["requests"] == []
    # sizes, histograms, sensitivity, accuracy vs size
    assert len(seen["figures"]) == 4 and all(w > 200 and h > 100 for _, w, h in seen["figures"]), seen["figures"]
    assert "[report.html](report.html)" in paths["report"].read_text()
