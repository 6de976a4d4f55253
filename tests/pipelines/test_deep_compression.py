"""The Deep Compression pipeline (run_pipeline, PipelineConfig, presets, progress)."""

from pathlib import Path

import numpy as np
import pytest

from refcomp.pipelines.deep_compression import PRESETS, PipelineConfig, run_pipeline
from refcomp.errors import ValidationError

from .._support.terminal import TerminalStream

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


def test_progress_bar_only_on_a_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")      # a terminal that moves its cursor (CI may say dumb)
    import io

    from refcomp.pipelines.deep_compression.run import _Progress
    from refcomp.progress import Display

    tty, pipe = TerminalStream(), io.StringIO()
    for stream in (tty, pipe):
        with Display(stream) as shown:
            bar = _Progress(shown, 3)
            bar.stage("prune")
            bar.advance(loss="0.1")
            shown.refresh()
            bar.close()
    assert "prune" in tty.getvalue() and "1/3" in tty.getvalue() and "loss 0.1" in tty.getvalue()
    assert pipe.getvalue() == ""


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A short pipeline run on the digits MLP that writes its compressed model file."""
    from refcomp import datasets, models
    from refcomp.nn import train

    train_set, test_set = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    train(m, train_set, epochs=2, progress=False)
    cfg = PipelineConfig.from_dict({"prune_rounds": 1, "prune_epochs": 1, "finetune_epochs": 0},
                                   PipelineConfig(**PRESETS["digits_mlp"]))
    r = run_pipeline(m, train_set, test_set, cfg, progress=False,
                     save_to=tmp_path_factory.mktemp("dc") / "model.rcm")
    return r, cfg, test_set


def test_the_pipeline_writes_a_model_file_load_model_runs(digits_run):
    """save_to: the compact model file, graph included; load_model returns the evaluated model."""
    from refcomp.formats import RelativeIndexCSR
    from refcomp.io import load_model

    r, cfg, test_set = digits_run
    assert Path(r.file).read_bytes()[:4] == b"RCM1" and r.file_bytes == Path(r.file).stat().st_size
    back = load_model(r.file)                   # no model builder: the file holds the graph
    for name in cfg.sparsity:
        assert isinstance(back[name].weight, RelativeIndexCSR)
        assert back[name].weight.nbytes == r.storage[name].nbytes
        assert back[name].weight.to_dense().tobytes() == r.storage[name].to_dense().tobytes()
    x = test_set[0]
    assert back.forward(x).tobytes() == r.model.eval().forward(x).tobytes()
    assert r.accuracy["from_file"] == r.accuracy["compressed"]
    parts = r.file_parts
    assert sum(parts.values()) == r.file_bytes and parts["other_tensors"] == r.bias_bytes
    # the coded fields are the table's P+Q+H bytes, up to whole bytes per stream (two streams per layer)
    assert 0 <= parts["coded_fields"] - r.table[-1]["pqh_bytes"] <= 2 * len(cfg.sparsity)
    assert parts["header"] < 600


def test_the_pruned_stage_is_kept_as_pruning_alone(digits_run):
    """result.pruned: stage 1's model, float weights zero exactly where the final masks are."""
    from refcomp.nn import evaluate

    r, cfg, test_set = digits_run
    for name in cfg.sparsity:
        w = r.pruned[name].weight.to_dense()
        assert w.dtype == np.float32 and np.array_equal(w != 0, r.masks[name])
        assert len(np.unique(w[r.masks[name]])) > 2 ** cfg.weight_bits[name]   # not yet shared
    assert evaluate(r.pruned, test_set)["accuracy"] == r.accuracy["pruned"]


def test_an_rcdc_file_converts_to_a_model_file(digits_run, tmp_path):
    """load_into(..., stored=True) + save_model: the same coded layers in a file load_model reads."""
    from refcomp import models
    from refcomp.formats import RelativeIndexCSR
    from refcomp.io import load_model, save_model
    from refcomp.io.compressed_file import save_compressed
    from refcomp.pipelines.deep_compression import load_into
    from refcomp.pipelines.deep_compression.run import _other_tensors

    r, cfg, test_set = digits_run
    # an .rcdc as refcomp compress wrote it before it wrote the compact model file
    rcdc = save_compressed(tmp_path / "m.rcdc", r.storage, _other_tensors(r.model, list(cfg.sparsity)))
    stored = load_into(models.digits_mlp(0), rcdc, stored=True)
    for name in cfg.sparsity:
        assert isinstance(stored[name].weight, RelativeIndexCSR)
        assert stored[name].weight.nbytes == r.storage[name].nbytes
    back = load_model(save_model(stored, tmp_path / "m.safetensors"))
    decoded = load_into(models.digits_mlp(0), rcdc)
    x = test_set[0]
    assert back.forward(x).tobytes() == decoded.eval().forward(x).tobytes()
    assert back.forward(x).tobytes() == r.model.eval().forward(x).tobytes()
    # converted to the compact encoding, it is the file the pipeline writes now, byte for byte
    assert save_model(stored, tmp_path / "m.rcm").read_bytes() == Path(r.file).read_bytes()


def test_pipeline_prunes_gradually_and_fine_tunes_the_centroids(monkeypatch):
    """The two steps a shortcut would skip: pruning reaches its sparsity on the cubic ramp over the
    rounds (Zhu & Gupta 2017; never one shot), and the centroids move after clustering (Han et al. 2016
    §3.3: fine-tuning the shared values), lowering the training loss."""
    import copy

    from refcomp import datasets, models
    from refcomp.nn import train
    from refcomp.pipelines.deep_compression import run as run_module

    seen = {}
    real_prune, real_cluster = run_module.prune_with_schedule, run_module.cluster_model

    def prune_spy(model, schedule, *args, **kwargs):
        seen["ramp"] = [schedule.sparsity(e) for e in range(kwargs["epochs"])]
        return real_prune(model, schedule, *args, **kwargs)

    def cluster_spy(*args, **kwargs):
        shared, report = real_cluster(*args, **kwargs)
        seen["clustered"] = copy.deepcopy(shared)
        return shared, report

    monkeypatch.setattr(run_module, "prune_with_schedule", prune_spy)
    monkeypatch.setattr(run_module, "cluster_model", cluster_spy)
    train_set, test_set = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    train(m, train_set, epochs=2, progress=False)
    cfg = PipelineConfig.from_dict({"prune_rounds": 3, "prune_epochs": 1, "finetune_epochs": 2, "finetune_lr": 0.01,
                                    "weight_bits": {"fc1": 2, "fc2": 2}}, PipelineConfig(**PRESETS["digits_mlp"]))
    r = run_pipeline(m, train_set, test_set, cfg, progress=False)
    ramp = seen["ramp"]
    assert ramp == sorted(ramp) and ramp[0] == pytest.approx(0.8 * (1 - (2 / 3) ** 3)) and ramp[-1] == 0.8
    before = {n: layer.weight.codebook for n, layer in run_module.clustered_layers(seen["clustered"]).items()}
    for name in cfg.sparsity:
        assert not np.allclose(r.clustered[name].codebook, before[name])
    from refcomp.nn.losses import CrossEntropyLoss

    def loss(model):
        return CrossEntropyLoss().forward(model.eval().forward(train_set[0]), train_set[1])

    assert loss(r.model) < loss(seen["clustered"])


def test_regularizer_config_keys_are_validated():
    base = PipelineConfig(**PRESETS["digits_mlp"])
    ok = PipelineConfig.from_dict({"regularizer": "elastic_net", "reg_l1": 1e-4, "reg_l2": 1e-3}, base)
    assert (ok.regularizer, ok.regularizer_update) == ("elastic_net", "proximal")
    for bad, arg in (({"regularizer": "l0"}, "regularizer"), ({"regularizer": "l1"}, "reg_l1"),
                     ({"regularizer": "l1", "reg_l1": 1e-4, "reg_l2": 1e-3}, "reg_l2"),
                     ({"regularizer": "elastic_net", "reg_l1": 1e-4}, "reg_l2"), ({"reg_l1": 1e-4}, "reg_l1"),
                     ({"regularizer": "l1", "reg_l1": -1.0}, "reg_l1"),
                     ({"regularizer": "l1", "reg_l1": 1e-4, "regularizer_update": "ista"}, "regularizer_update")):
        with pytest.raises(ValidationError, match=arg):
            PipelineConfig.from_dict(bad, base)


@pytest.mark.parametrize("update", ["proximal", "subgradient"])
def test_l1_is_used_during_the_pruning_retraining(monkeypatch, update):
    """regularizer="l1" reaches the retraining as a penalty on the compressed layers' weights only; the
    proximal update leaves kept weights at exactly 0, the subgradient one (almost) never does."""
    from refcomp import datasets, models
    from refcomp.nn import regularizers, train
    from refcomp.pipelines.deep_compression import run as run_module

    seen = {}
    real_prune = run_module.prune_with_schedule

    def prune_spy(*args, **kwargs):
        seen["reg"] = kwargs["regularizer"]
        seen["model"], report = real_prune(*args, **kwargs)
        return seen["model"], report

    monkeypatch.setattr(run_module, "prune_with_schedule", prune_spy)
    train_set, test_set = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    train(m, train_set, epochs=2, progress=False)
    cfg = PipelineConfig.from_dict({"prune_rounds": 1, "prune_epochs": 2, "finetune_epochs": 0,
                                    "sparsity": {"fc1": 0.5, "fc2": 0.0}, "regularizer": "l1", "reg_l1": 0.3,
                                    "regularizer_update": update}, PipelineConfig(**PRESETS["digits_mlp"]))
    run_pipeline(m, train_set, test_set, cfg, progress=False)
    reg = seen["reg"]
    assert isinstance(reg, regularizers.ProximalElasticNet if update == "proximal" else regularizers.ElasticNet)
    assert (reg.l1, reg.l2) == (0.3, 0.0)
    out = seen["model"]
    assert [n for n, p in out.named_parameters() if reg.select(n, p)] == ["fc1.weight", "fc2.weight"]
    w, mask = out["fc1"].weight.data, out["fc1"].weight.mask
    zeros_kept = int(((w == 0) & mask).sum())
    assert zeros_kept > 100 if update == "proximal" else zeros_kept < 5
    cfg_none = PipelineConfig.from_dict({"sparsity": {"fc1": 0.5, "fc2": 0.0}, "prune_rounds": 1,
                                         "finetune_epochs": 0}, PipelineConfig(**PRESETS["digits_mlp"]))
    run_pipeline(m, train_set, test_set, cfg_none, progress=False)
    assert seen["reg"] is None


def test_a_partial_override_merges_into_the_preset_key_by_key():
    """[sparsity] fc1 = ... changes fc1 alone: the preset's fc2 and fc3 stay (they used to vanish, and the
    error then blamed weight_bits, a table the user had not written)."""
    base = PipelineConfig(**PRESETS["lenet_300_100"])
    cfg = PipelineConfig.from_dict({"sparsity": {"fc1": 0.5}, "prune_rounds": 2}, base)
    assert cfg.sparsity == {"fc1": 0.5, "fc2": 0.91, "fc3": 0.74}
    assert cfg.weight_bits == base.weight_bits and cfg.prune_rounds == 2 and cfg.prune_epochs == base.prune_epochs
    assert base.sparsity["fc1"] == 0.94                       # the preset itself is not changed
    with pytest.raises(ValidationError, match=r"^weight_bits\['fc4'\]: .*missing from sparsity and index_bits"):
        PipelineConfig.from_dict({"weight_bits": {"fc4": 4}}, base)
    # a new layer given in all three tables is accepted
    new = PipelineConfig.from_dict({t: {"fc4": v} for t, v in (("sparsity", 0.5), ("weight_bits", 4),
                                                               ("index_bits", 4))}, base)
    assert set(new.sparsity) == {"fc1", "fc2", "fc3", "fc4"}
    with pytest.raises(ValidationError, match="sparsity: expected a table"):
        PipelineConfig.from_dict({"sparsity": 0.5}, base)


def test_the_report_records_the_refcomp_version(digits_run, tmp_path):
    """report.md (under its title), results.json and the PNG (Software chunk) name the refcomp that wrote them."""
    import json

    from refcomp._version import __version__
    from refcomp.pipelines.deep_compression import write_report

    r, _, _ = digits_run
    paths = write_report(r, tmp_path, title="T")
    assert paths["report"].read_text().splitlines()[:3] == ["# T", "", f"Written by refcomp {__version__}."]
    assert json.loads(paths["json"].read_text())["refcomp_version"] == __version__
    if "plot" in paths:
        from PIL import Image

        with Image.open(paths["plot"]) as im:
            assert im.text["Software"].startswith(f"refcomp {__version__} ")


def test_the_report_without_matplotlib_names_the_extra(digits_run, tmp_path, monkeypatch):
    """No sizes.png then, and report.md says which extra draws it."""
    import sys

    from refcomp.pipelines.deep_compression import write_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    paths = write_report(digits_run[0], tmp_path)
    assert "plot" not in paths and not (tmp_path / "sizes.png").exists()
    assert "pip install 'refcomp[plot]'" in paths["report"].read_text()
