"""Deep Compression and pruning alone on the papers' protocol, beside the papers' rows.

    nice -n 10 .venv/bin/python benchmarks/protocol_deep_compression.py [--models lenet_300_100 lenet5]
                                [--scales 1.0 1.05] [--quick] [--json out.json]

For each model: the float baseline of benchmarks/protocol_common.py, then the
Deep Compression pipeline (prune on the cubic ramp + retrain, k-means weight
sharing + centroid fine-tuning, relative-index CSR + Huffman) with the model's
preset, every sparsity multiplied by each of ``--scales``. Every candidate is
measured on the validation images only; the chosen one is the highest ratio
whose validation errors are at most the baseline's + ``--tolerance`` (the
papers' "without loss of accuracy"). Then, once, the chosen model's test
errors. One row per candidate (val) and one for the choice (test), each with
the wall time of its pipeline run. The pruning-alone row (Han et al. 2015,
Table 1: 12× fewer parameters for LeNet-300-100 and LeNet-5 at no loss) is the
pruned + retrained stage of the chosen run, before weight sharing
(``PipelineResult.pruned``), measured on the test images once too.

Papers' rows (test error, ratio of weight bytes):
  Han et al. 2016 (Deep Compression) Table 1: LeNet-300-100 1.64 % → 1.58 %, 40×;
  LeNet-5 0.80 % → 0.74 %, 39×. Han et al. 2015 Table 1: LeNet-300-100 1.59 % at 12×
  parameters, LeNet-5 0.77 % at 12×.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import protocol_common as pc

from refcomp.pipelines.deep_compression import PRESETS, PipelineConfig, run_pipeline

PAPER = {"lenet_300_100": {"dc_error": 1.58, "dc_ratio": 40, "prune_error": 1.59, "prune_ratio": 12},
         "lenet5": {"dc_error": 0.74, "dc_ratio": 39, "prune_error": 0.77, "prune_ratio": 12}}


def _config(name: str, scale: float, quick: bool) -> PipelineConfig:
    preset = copy.deepcopy(PRESETS[name])
    preset["sparsity"] = {k: min(0.99, v * scale) for k, v in preset["sparsity"].items()}
    if quick:
        preset.update(prune_rounds=1, prune_epochs=1, finetune_epochs=1)
    return PipelineConfig.from_dict(preset)


def _errors(acc: float, n: int) -> int:
    """Errors from an accuracy the pipeline measured (pc.errors measures a model)."""
    return int(round((1.0 - acc) * n))


def run_model(name: str, scales, tolerance: int, quick: bool) -> dict:
    base, base_record = pc.baseline(name, quick=quick)
    train_set, val_set, test_set = pc.data(quick=quick)
    n_val, n_test = len(val_set[1]), len(test_set[1])
    candidates = []
    for scale in scales:
        t = time.perf_counter()
        result = run_pipeline(copy.deepcopy(base), train_set, val_set, _config(name, scale, quick), progress=False)
        table = result.table[-1]
        candidates.append({"scale": scale, "result": result, "wall_s": pc.seconds_since(t),
                           "val_errors": _errors(result.accuracy["compressed"], n_val),
                           "pruned_val_errors": _errors(result.accuracy["pruned"], n_val),
                           "ratio": result.weights_ratio, "kept_pct": table["kept_pct"]})
        c = candidates[-1]
        print(f"  {name} sparsity × {scale}: val errors {c['val_errors']} (baseline {base_record['val_errors']}), "
              f"{c['ratio']:.1f}×, kept {c['kept_pct']:.2f} %, {c['wall_s']:.0f} s", flush=True)
    ok = [c for c in candidates if c["val_errors"] <= base_record["val_errors"] + tolerance]
    chosen = max(ok, key=lambda c: c["ratio"]) if ok else min(candidates, key=lambda c: c["val_errors"])
    # the test set, once, for the chosen candidate only
    model = chosen["result"].model
    test_errors = pc.errors(model, test_set)
    pruned_test_errors = pc.errors(chosen["result"].pruned, test_set)
    return {"model": name, "baseline": base_record, "tolerance": tolerance,
            "candidates": [{k: v for k, v in c.items() if k != "result"} for c in candidates],
            "chosen_scale": chosen["scale"], "chosen_within_tolerance": bool(ok),
            "test_errors": test_errors, "pruned_test_errors": pruned_test_errors, "n_test": n_test, "ratio": chosen["ratio"],
            "kept_pct": chosen["kept_pct"], "prune_ratio": 100.0 / chosen["kept_pct"],
            "wall_s": chosen["wall_s"], "config": chosen["result"].config.to_dict(),
            "stage_seconds": chosen["result"].seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(PAPER), choices=list(PAPER))
    ap.add_argument("--scales", nargs="+", type=float, default=[1.0])
    ap.add_argument("--tolerance", type=int, default=0, help="val errors allowed above the baseline's")
    ap.add_argument("--quick", action="store_true", help="a small run that only checks the script")
    ap.add_argument("--json", help="write the records here")
    args = ap.parse_args(argv)
    print(pc.PROTOCOL)
    records = []
    for name in args.models:
        r = run_model(name, args.scales, args.tolerance, args.quick)
        records.append(r)
        p, b = PAPER[name], r["baseline"]
        n = r["n_test"]
        print(f"| {name} | baseline | {100 * b['test_errors'] / n:.2f} % | 1× | {b['train_seconds']:.0f} s |")
        print(f"| {name} | Deep Compression (paper) | {p['dc_error']:.2f} % | {p['dc_ratio']}× | |")
        print(f"| {name} | Deep Compression (ours, sparsity × {r['chosen_scale']}) | "
              f"{100 * r['test_errors'] / n:.2f} % | {r['ratio']:.1f}× | {r['wall_s']:.0f} s |")
        print(f"| {name} | pruning alone (paper) | {p['prune_error']:.2f} % | {p['prune_ratio']}× parameters | |")
        print(f"| {name} | pruning alone (ours: stage 1 of the same run) | "
              f"{100 * r['pruned_test_errors'] / n:.2f} % | {r['prune_ratio']:.1f}× parameters | |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
