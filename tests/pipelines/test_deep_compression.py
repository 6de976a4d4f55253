"""The Deep Compression pipeline (run_pipeline, PipelineConfig, presets, progress)."""

import numpy as np
import pytest

from refcomp.pipelines.deep_compression import PRESETS, PipelineConfig, run_pipeline
from refcomp.errors import ValidationError

pytest.importorskip("sklearn")


@pytest.mark.parametrize("criterion", ["taylor", "activation"])
def test_pipeline_with_a_data_driven_criterion(criterion):
    from refcomp import datasets, models
    train_set, test_set = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    from refcomp.nn import train
    train(m, train_set, epochs=5, progress=False)
    cfg = PipelineConfig.from_dict({"criterion": criterion, "prune_rounds": 1, "prune_epochs": 1,
                                    "finetune_epochs": 0}, PipelineConfig(**PRESETS["digits_mlp"]))
    r = run_pipeline(m, train_set, test_set, cfg, progress=False)
    assert r.table[-1]["kept"] == round(0.2 * 8192) + round(0.5 * 1280)
    assert r.accuracy["compressed"] > 0.8


def test_pipeline_unknown_layer_fails_before_work():
    from refcomp import models
    cfg = PipelineConfig(sparsity={"fc1": 0.5, "conv9": 0.5}, weight_bits={"fc1": 4, "conv9": 4},
                         index_bits={"fc1": 4, "conv9": 4})
    x = np.zeros((4, 64), np.float32)
    y = np.zeros(4, np.int64)
    with pytest.raises(ValidationError, match=r"unknown \['conv9'\]"):
        run_pipeline(models.digits_mlp(0), (x, y), (x, y), cfg, progress=False)


def test_presets_are_valid_configs():
    from refcomp import models
    from refcomp.compress.prune import prunable_layers
    for name, preset in PRESETS.items():
        cfg = PipelineConfig(**preset)
        assert set(cfg.sparsity) == set(prunable_layers(models.build(name, 0)))


def test_progress_bar_only_on_a_terminal():
    import io

    from refcomp.pipelines.deep_compression.run import _Progress
    pytest.importorskip("tqdm")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = _Progress(3, "auto", stream)
        bar.stage("prune")
        bar.advance(loss="0.1")
        bar.close()
    assert "prune" in tty.getvalue() and "1/3" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_an_rcdc_file_converts_to_a_model_file(tmp_path):
    """load_into(..., stored=True) + save_model: the same coded layers in a file load_model reads."""
    from refcomp import datasets, models
    from refcomp.formats import RelativeIndexCSR
    from refcomp.io import load_model, save_model
    from refcomp.nn import train
    from refcomp.pipelines.deep_compression import load_into

    train_set, test_set = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    train(m, train_set, epochs=2, progress=False)
    cfg = PipelineConfig.from_dict({"prune_rounds": 1, "prune_epochs": 1, "finetune_epochs": 0},
                                   PipelineConfig(**PRESETS["digits_mlp"]))
    r = run_pipeline(m, train_set, test_set, cfg, progress=False, save_to=tmp_path / "m.rcdc")
    stored = load_into(models.digits_mlp(0), r.file, stored=True)
    for name in cfg.sparsity:
        assert isinstance(stored[name].weight, RelativeIndexCSR)
        assert stored[name].weight.nbytes == r.storage[name].nbytes
    back = load_model(save_model(stored, tmp_path / "m.safetensors"))
    decoded = load_into(models.digits_mlp(0), r.file)
    x = test_set[0]
    assert back.forward(x).tobytes() == decoded.eval().forward(x).tobytes()
    assert back.forward(x).tobytes() == r.model.eval().forward(x).tobytes()
