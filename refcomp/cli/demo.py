"""``refcomp demo``: quantize a small random Linear layer and show what it costs.

The embedded default (seeded, no files needed):

- a weight W (out_features × in_features, Gaussian, a few large outliers, as
  trained layers have) quantized with several schemes: per-tensor vs
  per-channel vs per-block, symmetric vs asymmetric, restricted range,
  reduce_range, int8 / int4 / float8 e4m3fn / float4 e2m1;
- activations X (calibration batches + a held-out batch, heavy-tailed)
  calibrated with every observer (min-max, moving average, percentile, MSE,
  entropy);
- the layer output y = X·Wᵀ computed in integers (W8A8: MatMulInteger on the
  codes, then one float rescale) against the float64 reference.

For each: the QParams (scale / zero-point summary), max and mean absolute
error, SQNR = 10·log10(Σx² / Σ(x - x̂)²) in dB, stored size and compression
ratio vs float32. :func:`run_demo` returns the rows (dicts);
:func:`format_report` prints them; ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse

import numpy as np

from ..errors import ValidationError
from ..formats.qtensor import QTensor
from ..ops import matmul_integer
from ..quant import (
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
    QParams,
    choose_qparams,
    dequantize,
    qdtype,
    quantize,
)
from . import _common
from .demo_model import format_model_report, run_model_demo

HELP = ("the main job: quantize a random layer with several schemes and observers (qparams, error, size), "
        "then quantize and Deep-Compress a small trained network")

__all__ = ["HELP", "add_arguments", "run", "run_demo", "format_report", "weight_schemes", "sqnr_db"]


# ---- metrics ---------------------------------------------------------------------
def sqnr_db(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio 10·log10(Σx² / Σ(x - x̂)²) in dB (inf if exact)."""
    x = np.asarray(x, dtype=np.float64)
    noise = float(np.sum((x - np.asarray(x_hat, dtype=np.float64)) ** 2))
    signal = float(np.sum(x**2))
    if noise == 0:
        return float("inf")
    return 10.0 * np.log10(signal / noise) if signal > 0 else float("-inf")


def _errors(x, x_hat) -> dict:
    d = np.abs(np.asarray(x, np.float64) - np.asarray(x_hat, np.float64))
    return {"max_abs_err": float(d.max()), "mean_abs_err": float(d.mean()), "sqnr_db": sqnr_db(x, x_hat)}


def _summary(a: np.ndarray) -> str:
    a = np.asarray(a, dtype=np.float64)
    if a.min() == a.max():
        return f"{a.min():.4g}"
    return f"{a.min():.4g}..{a.max():.4g}"


# ---- inputs ----------------------------------------------------------------------
def make_layer(seed: int = 0, out_features: int = 64, in_features: int = 128, batch: int = 256,
               calibration_batches: int = 4):
    """Seeded W [out, in] with outliers, calibration batches and a held-out batch of X [batch, in]."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0 / np.sqrt(in_features), size=(out_features, in_features))
    idx = rng.choice(w.size, size=max(1, w.size // 2000), replace=False)
    w.flat[idx] *= 8.0  # a few outliers: per-tensor scales suffer, per-channel ones much less
    w = w.astype(np.float32)

    def acts(n):
        # heavy-tailed activations: Student-t with 4 degrees of freedom
        return rng.standard_t(4, size=(n, in_features)).astype(np.float32)

    calib = [acts(batch) for _ in range(calibration_batches)]
    return w, calib, acts(batch)


def weight_schemes(in_features: int = 128) -> list[tuple[str, dict]]:
    """(name, choose_qparams keywords + 'granularity') for the weight table."""
    block = 32 if in_features % 32 == 0 else in_features
    return [
        ("int8 per-tensor asymmetric", dict(dtype="int8", granularity="tensor")),
        ("int8 per-tensor symmetric", dict(dtype="int8", symmetric=True, granularity="tensor")),
        ("int8 per-channel symmetric", dict(dtype="int8", symmetric=True, granularity="channel")),
        ("int8 per-channel restricted", dict(dtype="int8", symmetric=True, restricted_range=True,
                                             granularity="channel")),
        ("uint8 per-channel reduce_range", dict(dtype="uint8", reduce_range=True, granularity="channel")),
        ("int4 per-channel symmetric", dict(dtype="int4", symmetric=True, granularity="channel")),
        (f"int4 block {block} symmetric", dict(dtype="int4", symmetric=True, granularity="block", block=block)),
        ("float8_e4m3fn per-tensor", dict(dtype="float8_e4m3fn", granularity="tensor")),
        ("float8_e4m3fn per-channel", dict(dtype="float8_e4m3fn", granularity="channel")),
        (f"float4_e2m1fn block {block}", dict(dtype="float4_e2m1fn", granularity="block", block=block)),
    ]


#: the dtypes and bit widths of the weight table (the choices of --dtype and --bits)
WEIGHT_DTYPES = tuple(dict.fromkeys(qdtype(spec["dtype"]).name for _, spec in weight_schemes()))
WEIGHT_BITS = tuple(sorted({qdtype(d).bits for d in WEIGHT_DTYPES}, reverse=True))


def weight_qparams(w: np.ndarray, spec: dict) -> QParams:
    """Min-max QParams of W for one scheme (weights are known: their exact range is used)."""
    spec = dict(spec)
    gran = spec.pop("granularity")
    block = spec.pop("block", None)
    if gran == "tensor":
        return choose_qparams(w.min(), w.max(), **spec)
    if gran == "channel":  # one scale per output row (axis 0)
        return choose_qparams(w.min(axis=1), w.max(axis=1), axis=0, **spec)
    blocks = w.reshape(w.shape[0], -1, block)  # blocks of `block` inputs along axis 1
    return choose_qparams(blocks.min(axis=2), blocks.max(axis=2), axis=1, block_size=block, **spec)


def observers(dtype: str) -> list[tuple[str, object]]:
    return [
        ("min-max", MinMaxObserver(dtype)),
        ("moving-average (c=0.01)", MovingAverageMinMaxObserver(dtype, averaging_constant=0.01)),
        ("percentile 99.99", PercentileObserver(dtype, percentile=99.99)),
        ("percentile 99.9", PercentileObserver(dtype, percentile=99.9)),
        ("MSE search", MSEObserver(dtype)),
        ("entropy (KL, TensorRT)", EntropyObserver(dtype)),
    ]


# ---- the three tables --------------------------------------------------------------
def weight_rows(w: np.ndarray, dtypes: list[str] | None = None, bits: list[int] | None = None) -> list[dict]:
    rows = []
    for name, spec in weight_schemes(w.shape[1]):
        dt = qdtype(spec["dtype"])
        if (dtypes and dt.name not in dtypes) or (bits and dt.bits not in bits):
            continue
        qp = weight_qparams(w, spec)
        qt = QTensor.quantize(w, qp)
        rows.append({"scheme": name, "dtype": qp.dtype.name, "granularity": qp.granularity,
                     "scale": _summary(qp.scale), "zero_point": _summary(qp.zero_point),
                     **_errors(w, qt.to_dense()), "bytes": qt.nbytes, "ratio": w.nbytes / qt.nbytes})
    return rows


def activation_rows(calib: list[np.ndarray], held_out: np.ndarray, dtype: str = "uint8") -> tuple[list[dict], dict]:
    """One row per observer, calibrated on ``calib``, measured on ``held_out``; also returns the QParams."""
    rows, chosen = [], {}
    for name, obs in observers(dtype):
        for batch in calib:
            obs.observe(batch)
        lo, hi = obs.range()
        qp = obs.qparams()
        x_hat = dequantize(quantize(held_out, qp), qp)
        rmin, rmax = qp.representable_range()
        clipped = float(np.mean((held_out < rmin) | (held_out > rmax)))
        rows.append({"observer": name, "range": f"{float(lo):.4g}..{float(hi):.4g}", "scale": _summary(qp.scale),
                     "zero_point": _summary(qp.zero_point), "clipped_pct": 100 * clipped,
                     **_errors(held_out, x_hat)})
        chosen[name] = qp
    return rows, chosen


def layer_rows(w: np.ndarray, x: np.ndarray, act_qparams: dict[str, QParams]) -> list[dict]:
    """W8A8 output error: integer MatMulInteger on the codes, one float rescale per output column.

    y[m, n] ≈ s_x · s_w[n] · Σ_k (Xq[m,k] - z_x)(Wq[n,k] - 0)      (docs/quantization.md eq. 19)
    """
    y_ref = x.astype(np.float64) @ w.astype(np.float64).T
    wq_p = weight_qparams(w, dict(dtype="int8", symmetric=True, granularity="channel"))
    wq = quantize(w, wq_p)
    w_hat = dequantize(wq, wq_p)
    rows = [{"activations": "float32 (weight-only int8)", **_errors(y_ref, x @ w_hat.T), "int_vs_fake_quant": 0.0}]
    for name, qp in act_qparams.items():
        xq = quantize(x, qp)
        acc = matmul_integer(xq, np.ascontiguousarray(wq.T), qp.zero_point, wq_p.zero_point)
        y_int = acc.astype(np.float64) * (float(qp.scale) * wq_p.scale.astype(np.float64))
        # the same product simulated in float (fake quantization of both operands)
        y_fq = dequantize(xq, qp).astype(np.float64) @ w_hat.astype(np.float64).T
        rows.append({"activations": f"{qp.dtype.name} {name}", **_errors(y_ref, y_int),
                     "int_vs_fake_quant": float(np.max(np.abs(y_int - y_fq)))})
    return rows


def run_demo(seed: int = 0, out_features: int = 64, in_features: int = 128, batch: int = 256,
             dtypes: list[str] | None = None, act_dtype: str = "uint8", bits: list[int] | None = None) -> dict:
    """All three tables as lists of row dicts, plus the configuration.

    dtypes / bits : keep only the weight schemes of these dtypes / bit widths (None: all).
    """
    dtypes = [qdtype(d, "--dtype").name for d in dtypes] if dtypes else None
    act_dtype = qdtype(act_dtype, "--act-dtype").name
    w, calib, held_out = make_layer(seed, out_features, in_features, batch)
    act, qps = activation_rows(calib, held_out, act_dtype)
    return {
        "config": {"seed": seed, "weight_shape": list(w.shape), "batch": batch, "calibration_batches": len(calib),
                   "act_dtype": act_dtype, "float32_weight_bytes": int(w.nbytes)},
        "weights": weight_rows(w, dtypes, bits),
        "activations": act,
        "layer": layer_rows(w, held_out, qps),
    }


# ---- printing ---------------------------------------------------------------------
def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format spec)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([format(r[k], f) if f else str(r[k]) for k, _, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(wd) if i == 0 else c.rjust(wd) for i, (c, wd) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def format_report(result: dict) -> str:
    cfg = result["config"]
    out = [
        f"refcomp demo: Linear layer W {cfg['weight_shape'][0]}x{cfg['weight_shape'][1]} (seed {cfg['seed']}), "
        f"float32 weight = {cfg['float32_weight_bytes']} bytes",
        "",
        "Weights (min-max range; SQNR = 10 log10(sum x^2 / sum err^2); bytes include scales and zero points):",
        _table(result["weights"], [("scheme", "scheme", ""), ("scale", "scale", ""), ("zero_point", "zero point", ""),
                                   ("max_abs_err", "max|err|", ".3g"), ("mean_abs_err", "mean|err|", ".3g"),
                                   ("sqnr_db", "SQNR dB", ".1f"), ("bytes", "bytes", "d"),
                                   ("ratio", "x smaller", ".2f")]),
        "",
        f"Activations ({cfg['act_dtype']} asymmetric, per-tensor; calibrated on {cfg['calibration_batches']} batches "
        f"of {cfg['batch']}, measured on a held-out batch):",
        _table(result["activations"], [("observer", "observer", ""), ("range", "range", ""), ("scale", "scale", ""),
                                       ("zero_point", "zero point", ""), ("clipped_pct", "clipped %", ".3f"),
                                       ("max_abs_err", "max|err|", ".3g"), ("mean_abs_err", "mean|err|", ".3g"),
                                       ("sqnr_db", "SQNR dB", ".1f")]),
        "",
        "Layer output y = x W^T, W8A8 (int8 per-channel symmetric weights; MatMulInteger + float rescale) "
        "vs float64:",
        _table(result["layer"], [("activations", "activations", ""), ("max_abs_err", "max|err|", ".3g"),
                                 ("mean_abs_err", "mean|err|", ".3g"), ("sqnr_db", "SQNR dB", ".1f"),
                                 ("int_vs_fake_quant", "|int - fake-quant|", ".2g")]),
        "",
        "int - fake-quant: the integer path and its float simulation agree up to float rounding.",
    ]
    return "\n".join(out)


# ---- CLI --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of the random layer and data (default 0)")
    # the choices are what the weight table holds: any other value would only print an empty table
    parser.add_argument("--dtype", action="append", choices=WEIGHT_DTYPES, metavar="DTYPE",
                        help=f"only weight schemes of this dtype (repeatable; {', '.join(WEIGHT_DTYPES)})")
    parser.add_argument("--bits", type=int, action="append", choices=WEIGHT_BITS, metavar="N",
                        help=f"only weight schemes of this bit width (repeatable; {', '.join(map(str, WEIGHT_BITS))})")
    parser.add_argument("--act-dtype", default="uint8", choices=("uint8", "int8"),
                        help="activation dtype for the observers and the W8A8 product (default uint8)")
    parser.add_argument("--out-features", type=int, default=64, help="rows of the weight (default 64)")
    parser.add_argument("--in-features", type=int, default=128, help="columns of the weight (default 128)")
    parser.add_argument("--batch", type=int, default=256, help="rows per activation batch")
    _common.add_json(parser)
    parser.add_argument("--layer-only", action="store_true",
                        help="only the single-layer part (skip training and compressing the digits MLP)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of the digits MLP (default 30)")


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise ValidationError("--seed", "an int >= 0", args.seed)
    if (args.dtype or args.bits) and not any(
            (not args.dtype or qdtype(spec["dtype"]).name in args.dtype)
            and (not args.bits or qdtype(spec["dtype"]).bits in args.bits) for _, spec in weight_schemes()):
        raise ValidationError("--dtype / --bits", "a combination some weight scheme has "
                              f"(dtype: bits {', '.join(f'{d}: {qdtype(d).bits}' for d in WEIGHT_DTYPES)})",
                              f"--dtype {args.dtype} --bits {args.bits}")
    for name in ("out_features", "in_features", "batch"):
        if getattr(args, name) < 1:
            raise ValidationError("--" + name.replace("_", "-"), "an int >= 1", getattr(args, name))
    if args.epochs < 1:
        raise ValidationError("--epochs", "an int >= 1", args.epochs)
    result = run_demo(args.seed, args.out_features, args.in_features, args.batch, args.dtype, args.act_dtype,
                      args.bits)
    if not args.json:
        print(format_report(result), flush=True)
    if not args.layer_only:
        result["model"] = run_model_demo(args.seed, args.epochs)
        if not args.json:
            print()
            print(format_model_report(result["model"]))
    if args.json:
        _common.emit_json(result)
    return 0
