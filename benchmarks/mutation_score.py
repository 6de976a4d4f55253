"""Mutation score of the algorithm modules: how many planted bugs their tests catch.

    python benchmarks/mutation_score.py                       # every module of MODULES (hours)
    python benchmarks/mutation_score.py refcomp/compress/prune/sparsegpt.py   # one (minutes)
    python benchmarks/mutation_score.py --all                 # every algorithm module (a day)

For each module, mutmut (https://github.com/boxed/mutmut, ``pip install mutmut``)
plants one small change at a time — an operator, a constant, a call argument,
a returned value — and runs the module's mirror tests against it (the test files
named in MODULES, else ``tests/<package>/test_<module>.py``, else the mirroring
test folder). A mutant the tests fail on is *killed*; one they pass is
*survived*. Two kinds of survivor are counted apart:

- *message*: the only change is inside the text or the argument name of an
  error (a ``raise ...Error(...)`` statement, one or several lines, or an
  argument check such as ``real(x, "name", ...)``): it changes what a user
  reads, not what the algorithm computes (the tests that assert each error's
  argument name kill most of those anyway);
- *equivalent*: a change NumPy or Python makes a no-op, detected by rule:
  ``.astype(np.float64)`` → ``.astype(None)`` (None *is* NumPy's default
  float64) and ``float("nan")`` → ``float("NAN")``.

The score is

    killed / (killed + survived)       (survived: neither message nor equivalent)

— the share of behaviour-changing mutants the tests catch; the target is
≥ 90 % per module. The run happens in a temporary copy of the repository
(mutmut rewrites the sources it mutates), one module at a time, with the
interpreter running this script (its environment must have refcomp's test
dependencies and mutmut). A benchmark, not a test: it takes minutes per
module and is never run in CI.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: module -> its mirror tests (the files that state the module's algorithm)
MODULES = {
    "refcomp/compress/prune/sparsegpt.py": ["tests/compress/prune/test_sparsegpt.py"],
    "refcomp/compress/prune/masks.py": ["tests/compress/prune/test_masks.py"],
    "refcomp/compress/prune/schedules.py": ["tests/compress/prune/test_schedules.py"],
    "refcomp/compress/quantize/gptq.py": ["tests/compress/quantize/test_gptq.py"],
    "refcomp/compress/quantize/rtn.py": ["tests/compress/quantize/test_rtn.py"],
    "refcomp/compress/quantize/lowbit.py": ["tests/compress/quantize/test_lowbit.py"],
    "refcomp/compress/lowrank/factorize.py": ["tests/compress/lowrank/test_factorize.py"],
    "refcomp/compress/share/cluster.py": ["tests/compress/share/test_cluster.py"],
    # the fast tests only: the others train or load a digits model first
    "refcomp/compress/precision/model.py": ["tests/compress/precision/test_model_by_hand.py",
                                            "tests/compress/precision/test_mixed_bits.py",
                                            "tests/compress/precision/test_model.py::"
                                            "test_loss_scaling_never_applies_nonfinite_updates"],
    # the fast tests only: the others train a digits model first (minutes per mutant on a loaded machine)
    "refcomp/compress/lowrank/model.py": ["tests/compress/lowrank/test_model_factors.py"] + [
        f"tests/compress/lowrank/test_model.py::test_{t}" for t in (
            "full_rank_factorizations_equal_the_conv", "truncated_factorizations_store_fewer_weights",
            "factorize_model_on_a_graph_by_dotted_names", "factorize_model_with_calibration_whitens_each_layer_in_order")],
    "refcomp/compress/distill/loss.py": ["tests/compress/distill/test_loss.py"],
    "refcomp/compress/precision/casts.py": ["tests/compress/precision/test_casts.py"],
    "refcomp/ops/requantize.py": ["tests/ops/test_requantize.py", "tests/kernels/test_requantize.py"],
    "refcomp/ops/quantize_linear.py": ["tests/ops/test_quantize_linear.py", "tests/ops/test_vs_onnx_reference.py",
                                       "tests/ops/test_bad_input.py"],
    "refcomp/ops/dynamic_quantize_linear.py": ["tests/ops/test_dynamic_quantize_linear.py",
                                               "tests/ops/test_vs_onnxruntime.py", "tests/ops/test_onnx_conformance.py"],
    "refcomp/ops/dequantize_linear.py": ["tests/ops/test_dequantize_linear.py", "tests/ops/test_vs_onnx_reference.py",
                                         "tests/ops/test_vs_onnxruntime.py", "tests/ops/test_onnx_conformance.py"],
    "refcomp/quant/qparams.py": ["tests/quant"],
    # the shared base of the histogram observers: stated through the three that derive from it
    "refcomp/quant/observers/_histogram_observer.py": ["tests/quant/observers/test_base.py",
                                                       "tests/quant/observers/test_percentile.py",
                                                       "tests/quant/observers/test_mse.py",
                                                       "tests/quant/observers/test_entropy.py"],
    "refcomp/formats/huffman.py": ["tests/formats/test_huffman.py"],
    "refcomp/formats/csr.py": ["tests/formats/test_csr.py", "tests/formats/test_csr_compositions.py"],
    "refcomp/nn/optim.py": ["tests/nn/test_optim.py"],
    "refcomp/nn/losses.py": ["tests/nn/test_losses.py"],
    "refcomp/nn/init.py": ["tests/nn/test_init.py"],
    "refcomp/nn/blocks.py": ["tests/nn/test_blocks.py"],
    "refcomp/nn/layers/flatten.py": ["tests/nn/layers/test_flatten.py"],
    "refcomp/nn/layers/dropout.py": ["tests/nn/layers/test_dropout.py"],
    "refcomp/nn/layers/constant.py": ["tests/nn/layers/test_constant.py"],
    "refcomp/nn/layers/matmul.py": ["tests/nn/layers/test_matmul.py"],
    "refcomp/nn/layers/softmax.py": ["tests/nn/layers/test_softmax.py"],
    "refcomp/nn/layers/shape.py": ["tests/nn/layers/test_shape.py"],
    "refcomp/nn/layers/arithmetic.py": ["tests/nn/layers/test_arithmetic.py"],
    # the loop is stated by the fast tests; the accuracy runs (30 epochs of digits, LeNet-300-100 on
    # MNIST) would cost each mutant half a minute and state nothing those do not
    "refcomp/nn/train.py": ["tests/nn/test_train.py",
                            "--deselect", "tests/nn/test_train.py::test_digits_mlp_reaches_96_percent",
                            "--deselect", "tests/nn/test_train.py::test_lenet_300_100_short_run_on_mnist"],
    "refcomp/compress/quantize/simulate.py": ["tests/compress/quantize/test_simulate.py"],
    # the retraining test (a minute of training) is left to the suite: the layer and byte-count tests state it
    "refcomp/compress/quantize/lowbit_model.py": [f"tests/compress/quantize/test_lowbit_model.py::{t}" for t in (
        "test_binary_layer_forward_and_gradient_are_xnor_nets_written_out",
        "test_binary_conv_weight_is_alpha_times_sign_per_output_channel_in_float32",
        "test_ternary_layer_forward_and_gradient_are_twn_written_out",
        "test_lowbit_bytes_counts_packed_codes_alphas_and_float32_biases",
        "test_lowbit_bytes_and_prepare_lowbit_refuse_what_they_do_not_know")],
    # the hypothesis sweeps and the MNIST LeNet-5 runs (seconds to minutes) are left to the suite
    "refcomp/compress/quantize/integer_model.py": [f"tests/compress/quantize/test_integer_model.py::{t}" for t in (
        "test_weights_on_grid_and_fused_relu_clamps", "test_integer_model_close_to_float",
        "test_batchnorm_is_folded_first", "test_bad_arguments", "test_per_layer_islands_on_a_residual_graph",
        "test_per_layer_islands_accept_layers_without_an_integer_stage",
        "test_quantized_models_save_and_load_bit_for_bit", "test_integer_model_builders_name_what_is_missing",
        "test_mlp_integer_equals_the_formulas_written_out", "test_cnn_integer_equals_the_formulas_written_out",
        "test_integer_model_from_hand_made_tables_equals_the_formulas_written_out",
        "test_integer_model_names_the_missing_table", "test_qdq_model_wraps_only_the_named_layers_and_refuses_the_root",
        "test_integer_bytes_counts_codes_int32_biases_and_the_requantization",
        "test_output_codes_reads_the_one_dequantize_input_of_a_float64_batch_too",
        "test_output_codes_quantize_a_float64_or_integer_batch_as_float32")],
    # the digits MLPs trained for seconds are left to the suite
    "refcomp/compress/quantize/shift_model.py": [f"tests/compress/quantize/test_shift_model.py::{t}" for t in (
        "test_cnn_integer_path_equals_direct_convolution_simulation", "test_weights_are_signed_powers_of_two_and_bytes",
        "test_bad_arguments", "test_power_of_two_weight_forward_and_saturating_gradient_written_out",
        "test_activation_exponents_ranges_and_integer_biases_written_out",
        "test_defaults_zero_calibration_and_a_relu_on_its_own",
        "test_bias_bytes_int64_when_the_accumulator_scale_is_tiny_and_grouped_convs_refused",
        "test_conv_geometry_equals_the_direct_convolution", "test_bias_free_layers_bias_widths_and_sparse_weights",
        "test_bits_and_act_bits_bounds", "test_latent_weights_and_integer_calibration")],
    # the fast statements of the fully binary model (its training test takes minutes; the accelerated
    # backends compute the same bit counts, checked by the fast-backend test outside this selection)
    "refcomp/compress/quantize/binary_model.py": [
        "tests/compress/quantize/test_binary_model.py::" + t for t in (
            "test_xnor_layer_forward_and_gradient", "test_structure_first_and_last_float",
            "test_packed_path_equals_float_simulation", "test_refuses_what_it_cannot_binarize",
            "test_xnor_layer_without_bias_and_with_one_output_channel",
            "test_xnor_layer_keeps_float32_and_skips_the_input_gradient",
            "test_xnor_layer_leaves_the_wrapped_layer_alone_and_needs_a_forward",
            "test_bytes_of_a_bias_free_one_row_hidden_layer",
            "test_packed_model_runs_the_hidden_layers_on_bit_counts_with_its_backend",
            "test_packed_model_is_a_snapshot_of_the_model", "test_nested_layer_names_are_flattened_with_underscores")],
    # the fast statements of static PTQ (the digits accuracy tests train a model for minutes)
    "refcomp/compress/quantize/ptq.py": [
        "tests/compress/quantize/test_ptq.py::" + t for t in (
            "test_static_ptq_conv_weights_per_channel", "test_requantize_float_is_onnx_float32_requantization",
            "test_integer_bytes_count_what_each_requantization_stores",
            "test_calibrate_sees_every_batch_min_max_written_out", "test_calibrate_passes_observer_kwargs_and_kind",
            "test_weight_codes_written_out", "test_weight_codes_are_of_the_float32_weight",
            "test_calibration_batches_partition_the_data", "test_static_ptq_options_are_checked_by_name",
            "test_static_ptq_int8_activations_and_per_tensor_low_bit_weights", "test_bias_correction_written_out",
            "test_equalize_balances_the_ranges_of_a_pair", "test_per_layer_ptq_observes_each_layers_input_and_output",
            "test_two_bit_weights_and_bias_correction_batches")],
    # the loop is stated by the fast tests (master weights, eq. 12's float32 SGD, loss-scale growth, backoff
    # and skips written out); the digits runs (seconds to half a minute) are left to the suite
    "refcomp/compress/precision/training.py": [
        "tests/compress/precision/test_training.py", "--deselect",
        "tests/compress/precision/test_training.py::test_16_bit_training_tracks_float32_on_digits", "--deselect",
        "tests/compress/precision/test_training.py::test_loss_scaling_rescues_gradients_that_underflow_float16"],
    # the fast statements of QAT (the digits tests train a model for minutes)
    "refcomp/compress/quantize/qat.py": [
        "tests/compress/quantize/test_qat.py::" + t for t in (
            "test_qat_layer_gradients_by_finite_differences", "test_lsq_step_gradient_where_defined",
            "test_bad_qat_inputs_are_named", "test_prepared_model_computes_with_the_int8_grid_written_out",
            "test_observer_fake_quant_moving_average_only_while_training_and_not_frozen",
            "test_lsq_initial_step_forward_and_gradients_written_out",
            "test_fake_quantized_weight_accumulates_its_gradient_and_reports_its_step",
            "test_prepare_qat_places_a_quantizer_after_each_stage", "test_train_qat_freezes_observers_from_the_given_epoch",
            "test_to_integer_exports_the_trained_scales", "test_prepare_qat_first_batch_default_and_observer_switch",
            "test_only_prepared_models_are_trained_or_exported", "test_train_qat_defaults")],
}

#: the packages whose modules hold algorithms (what ``--all`` mutates)
ALGORITHM_PACKAGES = ["refcomp/quant", "refcomp/ops", "refcomp/formats", "refcomp/compress", "refcomp/nn",
                      "refcomp/numerics"]

#: calls whose string arguments are only argument names or messages: a mutant that changes nothing
#: but those strings changes what a user reads, not what the algorithm computes
_MESSAGE_CALLS = {"real", "integer", "float_array", "bool_mask", "one_of", "ratio", "numeric_array",
                  "normalize_axis", "qdtype", "check_shape", "per_axis", "integer_in_range", "_check_names",
                  "dtype_in", "scale", "same_shape", "expand", "finite"}
_RAISE = re.compile(r"raise \w*Error\(")
_ARGUMENT_DEFAULT = re.compile(r"\bargument: str = ")
#: mutations NumPy makes no-ops: astype(None) *is* astype(float64) (None means the default float
#: dtype), and float() parses "nan" / "inf" in any case
_EQUIVALENT = [(re.compile(r"\.astype\(np\.float64\)"), ".astype(None)"),
               (re.compile(r'float\("(nan|inf)"\)'), None)]
#: survivors read and shown to be equivalent, by module: (old line, new line, why). Lines compare
#: without their comments, so a renumbered mutant still matches.
EQUIVALENT_BY_HAND = {
    "refcomp/compress/prune/neurons.py": [
        # float_array reads allow_empty by truth value: None refuses an empty array as False does
        ('a = float_array(activations, "activations", allow_empty=False)', 'a = float_array(activations, "activations", allow_empty=None)', "None is falsy"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("mean_a = np.mean(a.reshape(-1, v.shape[1]), axis=0, dtype=np.float64)",
         "mean_a = np.mean(a.reshape(-2, v.shape[1]), axis=0, dtype=np.float64)", "-2 is unknown as -1"),
        ("norms = np.sqrt(np.sum(np.square(g.reshape(g.shape[0], -1)), axis=1))",
         "norms = np.sqrt(np.sum(np.square(g.reshape(g.shape[0], -2)), axis=1))", "-2 is unknown as -1"),
    ],
    "refcomp/compress/prune/criteria.py": [
        # float_array reads allow_empty by truth value: None refuses an empty array as False does
        ('x = float_array(inputs, "inputs", allow_empty=False)', 'x = float_array(inputs, "inputs", allow_empty=None)', "None is falsy"),
        # np.empty's default dtype is float64; np.concatenate's default axis is 0
        *[("out = np.empty((c, kh, kw), dtype=np.float64)", new, "float64 is the default")
          for new in ("out = np.empty((c, kh, kw), dtype=None)", "out = np.empty((c, kh, kw), )")],
        ("inputs = np.concatenate(batches, axis=0)", "inputs = np.concatenate(batches, )", "axis 0 is the default"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("mean_abs = np.mean(np.abs(x.reshape(-1, w.shape[1])), axis=0, dtype=np.float64)",
         "mean_abs = np.mean(np.abs(x.reshape(-2, w.shape[1])), axis=0, dtype=np.float64)", "-2 is unknown as -1"),
        # the per-structure Taylor sum runs over w.astype(float64) * g: float64 already
        *[("return np.sum(v, axis=axes, dtype=np.float64)", new, "v is float64")
          for new in ("return np.sum(v, axis=axes, dtype=None)", "return np.sum(v, axis=axes, )")],
        # grasp_keep_scores: the fallback shift is used only when no tensor has an element, so top - v is
        # empty whatever the shift
        ("top = max(float(np.max(v)) for v in s.values() if v.size) if any(v.size for v in s.values()) else 0.0",
         "top = max(float(np.max(v)) for v in s.values() if v.size) if any(v.size for v in s.values()) else 1.0",
         "every tensor is empty"),
    ],
    "refcomp/ops/dequantize_linear.py": [
        # the call only validates the backend's name: DequantizeLinear has no fast kernel under any op name
        *[('_backend.implementation("dequantize_linear", backend)', f"_backend.implementation({op}, backend)",
           "no kernel either way") for op in ("None", '"XXdequantize_linearXX"', '"DEQUANTIZE_LINEAR"')],
        # x - x_zero_point: integers below 2^33 in magnitude are exact in float64 as in int64, and the
        # cast to float32 that follows rounds either to nearest even
        ("d = x.astype(np.int64)", "d = x.astype(None)", "exact in float64, then the same float32 rounding"),
        ("d = d - z.astype(np.int64)", "d = d - z.astype(None)", "exact in float64, then the same float32 rounding"),
    ],
    "refcomp/ops/dynamic_quantize_linear.py": [
        # eq. DQ2: 0 - r_min / y_scale lies in [0, 255 (1 + 2^-22)] (r_min <= 0 <= r_max, y_scale the
        # float32 (r_max - r_min) / 255), so neither clip binds after rint: 0 and 255 either way
        *[("zp = np.rint(np.clip(f32(0) - f32(r_min / scale), f32(0), f32(255)))", new,
           "-r_min / y_scale is in [0, 255.5)") for new in (
            "zp = np.rint(np.clip(f32(0) - f32(r_min / scale), None, f32(255)))",
            "zp = np.rint(np.clip(f32(0) - f32(r_min / scale), f32(0), None))",
            "zp = np.rint(np.clip(f32(0) - f32(r_min / scale), f32(0), f32(256)))")],
        # eq. DQ3's lower clip: x >= r_min, and rint(r_min / y_scale) + rint(-r_min / y_scale) = 0
        # (rint is odd), so y >= 0 before the clip (the upper one binds: 127.5 + 127.5 rounds to 256)
        ("np.clip(y, 0, 255, out=y)", "np.clip(y, None, 255, out=y)", "y >= 0 before the clip"),
        # scale is a float32 scalar: np.array keeps its dtype; float32 / float32 is float32
        *[(old.format(d="np.float32"), old.format(d=new), "scale is a float32 scalar") for old in (
            "return fast(x, scale, zp), np.array(scale, {d}), np.array(zp, np.uint8)",
            "return y.astype(np.uint8), np.array(scale, {d}), np.array(zp, np.uint8)") for new in ("None", "")],
        *[("y = np.divide(x, scale, dtype=np.float32)", new, "float32 / float32 is float32")
          for new in ("y = np.divide(x, scale, dtype=None)", "y = np.divide(x, scale, )")],
        # dynamic_quantize_rows: K >= 1, so each row's max / min has an element without the initial
        *[(f"{lhs} = np.{f}(f32(0), x.{r}(axis=1, initial={i}))", f"{lhs} = np.{f}(f32(0), x.{r}(axis=1, {new}))",
           "K >= 1: the initial never decides") for lhs, f, r, i in (("r_max", "maximum", "max", "-np.inf"),
                                                                      ("r_min", "minimum", "min", "np.inf"))
          for new in ("initial=None", "")],
        # the rows' zero point and lower clip of eq. DQ3: as above, row by row; r_min / scale is float32
        # already, and float64 holds it (and the integers made from it) exactly
        *[("zp = np.rint(np.clip(f32(0) - (r_min / scale).astype(f32), f32(0), f32(255)))", new,
           "-r_min / y_scale is in [0, 255.5); exact in float64") for new in (
            "zp = np.rint(np.clip(f32(0) - (r_min / scale).astype(f32), None, f32(255)))",
            "zp = np.rint(np.clip(f32(0) - (r_min / scale).astype(f32), f32(0), None))",
            "zp = np.rint(np.clip(f32(0) - (r_min / scale).astype(f32), f32(0), f32(256)))",
            "zp = np.rint(np.clip(f32(0) - (r_min / scale).astype(None), f32(0), f32(255)))")],
        ("y = np.clip(np.rint(x / scale[:, None]) + zp[:, None], 0, 255)",
         "y = np.clip(np.rint(x / scale[:, None]) + zp[:, None], None, 255)", "y >= 0 before the clip"),
        # r_max - r_min is float32 already; its float64 quotient by 255 rounded to float32 is the float32
        # quotient (53 >= 2·24 + 2 bits: double rounding of a division is innocuous, Figueroa 1995)
        ("span = np.where(r_max == r_min, f32(1), (r_max - r_min).astype(f32))",
         "span = np.where(r_max == r_min, f32(1), (r_max - r_min).astype(None))", "innocuous double rounding"),
    ],
    "refcomp/ops/quantize_linear.py": [
        # the call only validates the backend's name: QuantizeLinear has no fast kernel under any op name
        *[('_backend.implementation("quantize_linear", backend)', f"_backend.implementation({op}, backend)",
           "no kernel either way") for op in ("None", '"XXquantize_linearXX"', '"QUANTIZE_LINEAR"')],
        # exact widenings: a NaN or a zero stays one in float64, the float path's zero point is 0,
        # a P-precision ratio widened to float64 rounds to the same float8, and y holds integers
        ("if q.is_float and np.any(zp.astype(np.float32) != 0):", "if q.is_float and np.any(zp.astype(None) != 0):",
         "zero in either"),
        ('ratio = ratio + _broadcast.expand(zp, "y_zero_point", x.shape, axis, block_size).astype(ratio.dtype)',
         'ratio = ratio + _broadcast.expand(zp, "y_zero_point", x.shape, axis, block_size).astype(None)',
         "adding a zero"),
        ("if np.isnan(x.astype(np.float32)).any():", "if np.isnan(x.astype(None)).any():", "NaN in either"),
        ("return y.astype(np.int64).astype(q.np_dtype)", "return y.astype(None).astype(q.np_dtype)", "integers"),
        ("ratio = np.clip(ratio.astype(np.float32), q.qmin, q.qmax)", "ratio = np.clip(ratio.astype(None), q.qmin, q.qmax)",
         "an exact widening"),
    ],
    "refcomp/compress/lowrank/factorize.py": [
        # the names in ``given`` only fill the error message (len(given) is what is tested)
        *[(line, line.replace(f'"{n}"', new), "message") for line in [
            'given = [name for name, v in (("rank", rank), ("energy", energy), ("max_params", max_params)) '
            'if v is not None]'] for n in ("rank", "energy", "max_params")
          for new in (f'"XX{n}XX"', f'"{n.upper()}"')],
        *[(line, line.replace(f'"{n}"', new), "message") for line in [
            'for name, r, bound in (("ranks[0]", r_out, min(out, n_in * kh * kw)),',
            '("ranks[1]", r_in, min(n_in, out * kh * kw))):'] for n in ("ranks[0]", "ranks[1]")
          for new in (f'"XX{n}XX"', f'"{n.upper()}"') if f'"{n}"' in line],
        # full_matrices=True (the default) only adds columns that [:, :r] / [:r] cut off again
        *[(f"{lhs} = np.linalg.svd({arg}, full_matrices=False)", f"{lhs} = np.linalg.svd({arg}, {new})",
           "the extra singular vectors are cut off")
          for lhs, arg in (("u, s, vt", "w"), ("u, s, vt", "w @ chol"), ("u, s, _", "unfolded"))
          for new in ("full_matrices=None", "", "full_matrices=True")],
        ('r = int(np.searchsorted(np.cumsum(s2), e * total * (1 - 1e-12), side="left")) + 1',
         "r = int(np.searchsorted(np.cumsum(s2), e * total * (1 - 1e-12), )) + 1", "left is the default"),
        ("return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)",
         "return dt if dt in (np.float32, np.float64) else np.dtype(None)", "np.dtype(None) is float64"),
        ("u_out = _leading_left_vectors(w.reshape(out, -1), r_out, energy)",
         "u_out = _leading_left_vectors(w.reshape(out, -2), r_out, energy)", "NumPy: any negative is -1"),
        ("u_in = _leading_left_vectors(w.transpose(1, 0, 2, 3).reshape(n_in, -1), r_in, energy)",
         "u_in = _leading_left_vectors(w.transpose(1, 0, 2, 3).reshape(n_in, -2), r_in, energy)",
         "NumPy: any negative is -1"),
        ('core = np.einsum("oikl,or,is->rskl", w, u_out, u_in)', 'core = np.einsum("OIKL,OR,IS->RSKL", w, u_out, u_in)',
         "the same subscripts in capitals"),
        ('return np.einsum("rskl,or,si->oikl", core, last[:, :, 0, 0], first[:, :, 0, 0])',
         'return np.einsum("RSKL,OR,SI->OIKL", core, last[:, :, 0, 0], first[:, :, 0, 0])',
         "the same subscripts in capitals"),
    ],
    "refcomp/compress/lowrank/pca.py": [
        # w only meets float64 arrays (p, vec, mu: x is float64): a float32 w widens exactly by promotion
        *[('w = float_array(w, "w", ndim=2, dtype=np.float64)', f'w = float_array(w, "w", ndim=2, {new})',
           "w's partners are float64: exact promotion") for new in ("dtype=None", "")],
        # LowRank's default shape is (left rows, right columns) = (out, in) = w.shape for a Linear
        *[("layer.weight = LowRank(rtn_quantize(left, bits=bits), rtn_quantize(right, bits=bits), shape=w.shape)",
           f"layer.weight = LowRank(rtn_quantize(left, bits=bits), rtn_quantize(right, bits=bits), {new})",
           "the default shape is w.shape") for new in ("shape=None", "")],
        # float_array tests ``not allow_empty``: None refuses an empty array as False does
        ('x_cal = float_array(calibration, "calibration", allow_empty=False)',
         'x_cal = float_array(calibration, "calibration", allow_empty=None)', "None is falsy"),
    ],
    "refcomp/compress/lowrank/tensor.py": [
        # einsum's optimize only picks the contraction order: the same sums, only the speed changes
        *[("return np.einsum(spec, np.asarray(weights), *factors, optimize=True)",
           f"return np.einsum(spec, np.asarray(weights), *factors, {new})", "the contraction order only")
          for new in ("optimize=None", "", "optimize=False")],
        # every factor has R columns (cp_als makes them (n_k, R)), and d >= 2: factors[1] exists
        ("r = factors[0].shape[1]", "r = factors[1].shape[1]", "every factor has R columns"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace("-1", "-2", 1), "NumPy: any negative is -1") for old in (
            "kr = (kr[:, None, :] * factors[m][None, :, :]).reshape(-1, r)",
            "return np.moveaxis(t, k, 0).reshape(t.shape[k], -1), kr",
            "u = np.linalg.svd(np.moveaxis(t, k, 0).reshape(n, -1), full_matrices=False)[0][:, :r]",
            "c = c.reshape(r_prev * dims[k], -1)",
            "full = tt_to_tensor([g.reshape(g.shape[0], -1, g.shape[3]) for g in cores])")],
        # float_array tests ``not allow_empty``: None refuses an empty array as False does
        ('t = float_array(tensor, "tensor", dtype=np.float64, allow_empty=False)',
         't = float_array(tensor, "tensor", dtype=np.float64, allow_empty=None)', "None is falsy"),
        ('a = float_array(tensor, "tensor", allow_empty=False)', 'a = float_array(tensor, "tensor", allow_empty=None)',
         "None is falsy"),
        # the first sweep (n_iter >= 1, d >= 2 modes) sets weights before anything reads them
        ("weights = np.ones(r)", "weights = None", "overwritten before it is read"),
        # the zero tensor: its ALS factors and weights are 0, so its error is 0 divided by 1 or by 2
        ("norm = np.linalg.norm(t) or 1.0", "norm = np.linalg.norm(t) or 2.0", "0 / 1 == 0 / 2"),
        # a column of weight 0 (its norm) is all zeros: divided by 1 or by 2 it stays zeros
        ("factors[k] = a / np.where(weights > 0, weights, 1.0)", "factors[k] = a / np.where(weights > 0, weights, 2.0)",
         "a zero column / 2 is zero"),
        # tt_svd keeps u[:, :r] and vt[:r] with r <= min(m, n): full_matrices only adds vectors cut off again
        *[("u, s, vt = np.linalg.svd(c, full_matrices=False)", f"u, s, vt = np.linalg.svd(c, {new})",
           "the extra singular vectors are cut off") for new in ("full_matrices=None", "", "full_matrices=True")],
        # i == s.size is in the range (s.size >= 1: the tensor is non-empty): the generator always
        # yields before it ends, so next's default is never used, and i = s.size + 1 never reached
        *[("r = next((i for i in range(1, s.size + 1) if i == s.size or tail[i] <= delta), s.size)", new,
           "the generator yields at i == s.size at the latest") for new in (
            "r = next((i for i in range(1, s.size + 1) if i == s.size or tail[i] <= delta), None)",
            "r = next((i for i in range(1, s.size + 1) if i == s.size or tail[i] <= delta), )",
            "r = next((i for i in range(1, s.size + 2) if i == s.size or tail[i] <= delta), s.size)")],
    ],
    "refcomp/compress/lowrank/search.py": [
        # r⁰ = ⌈out·in / (out + in)⌉ − 1 < min(out, in): out·in / (out + in) < min(out, in) (the max over
        # out + in is < 1), so its ceiling is at most min(out, in): neither cap ever binds
        *[("r = min(math.ceil(out * n_in / (out + n_in)) - 1, out, n_in)", new, "r⁰ < min(out, in) already")
          for new in ("r = min(math.ceil(out * n_in / (out + n_in)) - 1, n_in)",
                      "r = min(math.ceil(out * n_in / (out + n_in)) - 1, out, )")],
        # errors() tests its argument by truth value: None is falsy as the empty {} (the dense model)
        ("current = dense = errors(ranks)", "current = dense = errors(None)", "None is falsy as {}"),
    ],
    "refcomp/compress/lowrank/model.py": [
        # Linear / Conv2d read bias by truth value (None: no bias, as False); their dtype only types the weight
        # and bias they allocate, and both are replaced right after (the weight always, the bias whenever the
        # layer has one, and _conv's default bias is False): so is dt, which types nothing else
        ("dt = str(w.dtype)", "dt = None", "the allocated weight and bias are replaced"),
        *[("first = Linear(layer.in_features, r, bias=False, dtype=dt)", f"first = Linear(layer.in_features, r, {new}",
           "the allocated weight is replaced") for new in ("bias=None, dtype=dt)", "bias=False, dtype=None)",
                                                          "bias=False, )")],
        *[("second = Linear(r, layer.out_features, bias=layer.bias is not None, dtype=dt)",
           f"second = Linear(r, layer.out_features, {new}", "the allocated weight and bias are replaced")
          for new in ("bias=None, dtype=dt)", "bias=layer.bias is not None, dtype=None)",
                      "bias=layer.bias is not None, )")],
        *[("c = Conv2d(n_in, n_out, kernel, bias=bias, dtype=dtype, **geometry)", f"c = Conv2d(n_in, n_out, kernel, {new}",
           "the allocated weight and bias are replaced") for new in (
            "bias=None, dtype=dtype, **geometry)", "bias=bias, dtype=None, **geometry)", "bias=bias, **geometry)")],
        *[(old, old.replace("dtype=dt)", "dtype=None)"), "the allocated weight and bias are replaced") for old in (
            "first = _conv(layer.in_channels, r, layer.kernel_size, like=layer, weight=first_w, dtype=dt)",
            "second = _conv(r, layer.out_channels, 1, bias=layer.bias is not None, weight=second_w, dtype=dt)",
            "first = _conv(layer.in_channels, r_in, 1, weight=first_w, dtype=dt)",
            "core = _conv(r_in, r_out, layer.kernel_size, like=layer, weight=core_w, dtype=dt)",
            "last = _conv(r_out, layer.out_channels, 1, bias=layer.bias is not None, weight=last_w, dtype=dt)")],
        *[(old, old.replace("bias=layer.bias is not None, ", new), "no bias, or the bias is set after")
          for old in ("second = _conv(r, layer.out_channels, 1, bias=layer.bias is not None, weight=second_w, dtype=dt)",
                      "last = _conv(r_out, layer.out_channels, 1, bias=layer.bias is not None, weight=last_w, dtype=dt)")
          for new in ("bias=None, ", "")],
        # tucker2 takes a list of ranks as the tuple (it unpacks either), and tuple() of a tuple is the tuple
        *[("first_w, core_w, last_w = tucker2(w, ranks=tuple(ranks) if isinstance(ranks, list) else ranks)",
           f"first_w, core_w, last_w = tucker2(w, ranks=tuple(ranks) if {new} else ranks)", "a list or a tuple alike")
          for new in ("(isinstance(ranks, list)) and False", "(isinstance(ranks, list)) or True")],
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace("-1)", "-2)"), "NumPy: any negative is -1") for old in (
            "w2 = w.reshape(w.shape[0], -1).astype(np.float64)",
            "w_r = (left.weight.to_dense().reshape(w.shape[0], -1).astype(np.float64)",
            "@ right.weight.to_dense().reshape(right.weight.shape[0], -1).astype(np.float64))")],
    ],
    "refcomp/compress/precision/model.py": [
        # a budget below 1 byte is below every layer's narrowest bytes (> 0): the check that follows refuses
        # it with the same ValidationError naming budget_bytes
        *[('budget = integer(budget_bytes, "budget_bytes", minimum=1)', f'budget = integer(budget_bytes, "budget_bytes", {new}',
           "refused by the same name just after") for new in ("minimum=None)", ")", "minimum=2)")],
    ],
    "refcomp/compress/lowrank/tensor_model.py": [
        # a kernel of width 1 (vert) or of height 1 (horiz) has no gap to dilate along that axis
        ("groups=groups_mid, stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1))",
         "groups=groups_mid, stride=(sh, 1), padding=(ph, 0), dilation=(dh, 2))", "a kh×1 kernel: no w gaps"),
        ("groups=groups_mid, stride=(1, sw), padding=(0, pw), dilation=(1, dw))",
         "groups=groups_mid, stride=(1, sw), padding=(0, pw), dilation=(2, dw))", "a 1×kw kernel: no h gaps"),
        # Conv2d reads bias by truth value (None: no bias, as False), and the last one's is set after
        # whenever the layer has one; its dtype only types the weight and bias it allocates, both replaced
        # (the weight always, the bias whenever there is one)
        *[("c = Conv2d(n_in, n_out, kernel, bias=bias, groups=groups, dtype=dt, **geometry)", new,
           "the allocated weight and bias are replaced") for new in (
            "c = Conv2d(n_in, n_out, kernel, bias=None, groups=groups, dtype=dt, **geometry)",
            "c = Conv2d(n_in, n_out, kernel, bias=bias, groups=groups, dtype=None, **geometry)",
            "c = Conv2d(n_in, n_out, kernel, bias=bias, groups=groups, **geometry)")],
        *[("last = conv(w_last.shape[1], layer.out_channels, 1, w_last, bias=layer.bias is not None)",
           f"last = conv(w_last.shape[1], layer.out_channels, 1, w_last, {new})", "no bias; the bias is set after")
          for new in ("bias=None", "")],       # conv()'s default bias is False
        # TTLinear reads bias by truth value (None: no bias), and the layer's bias is set after
        ("tt = TTLinear(in_modes, out_modes, [g.shape[3] for g in cores[:-1]], bias=layer.bias is not None,",
         "tt = TTLinear(in_modes, out_modes, [g.shape[3] for g in cores[:-1]], bias=None,", "the bias is set after"),
        # an all-zero weight: its decompositions are zero, so the error is 0 divided by 1 or by 2
        ("err = np.linalg.norm(tt_to_tensor(cores).transpose(3, 0, 1, 2) - k) / (np.linalg.norm(k) or 1.0)",
         "err = np.linalg.norm(tt_to_tensor(cores).transpose(3, 0, 1, 2) - k) / (np.linalg.norm(k) or 2.0)", "0 / 1 == 0 / 2"),
        ("err = float(np.linalg.norm(new.to_dense() - w) / (np.linalg.norm(w) or 1.0))",
         "err = float(np.linalg.norm(new.to_dense() - w) / (np.linalg.norm(w) or 2.0))", "0 / 1 == 0 / 2"),
    ],
    "refcomp/compress/quantize/binary_model.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace("-1", "-2", 1) if i == 0 else new, "NumPy: any negative is -1") for i, old, new in (
            (0, "return (1, -1) if isinstance(layer, Linear) else (1, -1, 1, 1)", None),
            (1, "return (1, -1) if isinstance(layer, Linear) else (1, -1, 1, 1)",
             "return (1, -1) if isinstance(layer, Linear) else (1, -2, 1, 1)"),
            (0, "w.grad = w.grad + (s / n * d_alpha.reshape((-1,) + (1,) * (w.data.ndim - 1))).astype(w.grad.dtype)",
             None),
            (0, "packed = pack_signs(w.reshape(w.shape[0], -1))", None),
            (0, "s = d.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)", None))],
        # PackedBinaryModel: the flag is only read after ``binary_input or isinstance(...)``, a bool
        # from either start (None or b is b, as False or b)
        ("binary_input = False", "binary_input = None", "None or b is b"),
    ],
    "refcomp/compress/quantize/ptq.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("flat = w.reshape(w.shape[0], -1)", "flat = w.reshape(w.shape[0], -2)", "NumPy: any negative is -1"),
        ("w_hats = {name: codes.astype(np.float64) * scales.astype(np.float64).reshape((-1,) + (1,) * (codes.ndim - 1))",
         "w_hats = {name: codes.astype(np.float64) * scales.astype(np.float64).reshape((-2,) + (1,) * (codes.ndim - 1))",
         "NumPy: any negative is -1"),
        # choose_qparams' scale is float32 already (and 0-D per tensor: reshape(None) keeps its shape ());
        # np.full takes a float32 0-D fill's dtype
        *[(old.format("dtype=np.float32", "()", ", dtype=np.float32"), old.format(*args), "the scale is float32 already")
          for old in ["scales = np.full(w.shape[0], np.asarray(qp.scale, {}).reshape({}){})"]
          for args in (("dtype=np.float32", "()", ", dtype=None"), ("dtype=np.float32", "()", ", "),
                       ("dtype=np.float32", "None", ", dtype=np.float32"), ("dtype=None", "()", ", dtype=np.float32"),
                       ("", "()", ", dtype=np.float32"))],
        *[("scales = np.asarray(qp.scale, dtype=np.float32)", f"scales = np.asarray(qp.scale, {new})",
           "the scale is float32 already") for new in ("dtype=None", "")],
        # without bias correction, integer_model reads ``name in biases`` only if biases is not None:
        # no layer name is in "" either
        ("biases = None", 'biases = ""', "no name is in an empty string"),
        # integer_model stores each corrected bias as np.asarray(bias, dtype=np.float32) itself
        ("biases[s.name] = (b - shifts[s.name]).astype(np.float32)", "biases[s.name] = (b - shifts[s.name]).astype(None)",
         "integer_model casts to float32"),
    ],
    "refcomp/compress/quantize/qat.py": [
        # ObserverFakeQuant.forward sets fq.observer_enabled before every use; frozen is read by truth value
        *[("self.fq = FakeQuantize(obs, observer_enabled=True)", f"self.fq = FakeQuantize(obs, observer_enabled={v})",
           "forward() sets it before every use") for v in ("None", "False")],
        ("self.frozen = False", "self.frozen = None", "None is falsy"),
        # fake_quantize's result is a fresh array: whether astype copies it again is not observable
        *[("return self.fq.forward(x).astype(x.dtype, copy=False)", f"return self.fq.forward(x).astype(x.dtype, {v})",
           "the result is fresh") for v in ("copy=None", "copy=True")],
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace("-1", "-2", 1), "NumPy: any negative is -1") for old in (
            "return s.reshape((-1,) + (1,) * (v.ndim - 1)) if self.axis == 0 else s",
            "mean = a.reshape(a.shape[0], -1).mean(axis=1) if self.axis == 0 else a.mean()",
            "d_s = d_s.reshape(shape[0], -1).sum(axis=1)",
            "flat = w.reshape(w.shape[0], -1)",
            "r = w.astype(np.float64) / s.astype(np.float64).reshape((-1,) + (1,) * (w.ndim - 1))")],
        # the element count is a multiple of the number of steps: the true quotient is the same integer
        ("n_per_step = int(np.prod(shape)) // self.step.data.size",
         "n_per_step = int(np.prod(shape)) / self.step.data.size", "an exact quotient"),
    ],
    "refcomp/compress/prune/l0.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("shape = (-1,) + (1,) * (prev.weight.data.ndim - 1)", "shape = (-2,) + (1,) * (prev.weight.data.ndim - 1)",
         "NumPy: any negative is -1"),
    ],
    "refcomp/nn/layers/hard_concrete.py": [
        # at v = 0 both branches are 1 / (1 + 1) = e / (1 + e) = 0.5 (e = exp(0) = 1)
        ("return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))", "return np.where(v > 0, 1.0 / (1.0 + e), e / (1.0 + e))",
         "both branches are 0.5 at 0"),
        # 1.0 is Generator.uniform's default high; np.finfo(None) is float64's (NumPy reads None as float64)
        *[("u = self.rng.uniform(np.finfo(np.float64).tiny, 1.0, size=(n, self.num_features))", new, why) for new, why in (
            ("u = self.rng.uniform(np.finfo(np.float64).tiny, size=(n, self.num_features))", "high=1.0 is the default"),
            ("u = self.rng.uniform(np.finfo(None).tiny, 1.0, size=(n, self.num_features))", "None is float64"))],
        # the products are fresh temporaries: whether astype copies them again is not observable
        *[(f"return {expr}.astype({d}.dtype, copy=False)", f"return {expr}.astype({d}.dtype, {new})", "the product is fresh")
          for expr, d in (("(x * z.reshape(shape))", "x"), ("(dy * z)", "dy")) for new in ("copy=None", "", "copy=True")],
    ],
    "refcomp/compress/prune/gradflow.py": [
        # np.zeros' default dtype is float64
        *[("total = {n: np.zeros(l.weight.data.shape, dtype=np.float64) for n, l in layers.items()}",
           f"total = {{n: np.zeros(l.weight.data.shape, {new}) for n, l in layers.items()}}", "float64 is the default")
          for new in ("dtype=None", "")],
    ],
    "refcomp/compress/prune/sensitivity.py": [
        # _layer_curve's name comes from sensitivity's prunable_layers(model, layers): the same layer
        # object is found among all prunable layers
        *[("layer = prunable_layers(model, [name])[name]", f"layer = prunable_layers(model, {new})[name]",
           "the same layer either way") for new in ("None", "")],
        # matplotlib reads backend names and savefig formats case-blind
        *[('matplotlib.use("Agg")', f'matplotlib.use("{new}")', "case-blind backend name") for new in ("agg", "AGG")],
        ('fig.savefig(buf, format="png", dpi=100, metadata=png_metadata())',
         'fig.savefig(buf, format="PNG", dpi=100, metadata=png_metadata())', "case-blind format"),
        # plt.subplots made fig the current figure, and nothing changes it before the close
        ("plt.close(fig)", "plt.close(None)", "None closes the current figure: fig"),
    ],
    "refcomp/compress/prune/activation_l1.py": [
        # the zeros and the sizes are summed over the batches in eval mode (no batch statistics):
        # the batch size splits the same count differently
        ("def activation_sparsity(model, data, layers, *, batch_size: int = 256) -> dict:",
         "def activation_sparsity(model, data, layers, *, batch_size: int = 257) -> dict:", "counts add over batches"),
    ],
    "refcomp/nn/layers/activity_l1.py": [
        # the sum is a fresh temporary: whether astype copies it again is not observable
        *[("return (dy + (self.l1 / self._x.shape[0]) * np.sign(self._x)).astype(dy.dtype, copy=False)",
           f"return (dy + (self.l1 / self._x.shape[0]) * np.sign(self._x)).astype(dy.dtype, {new})",
           "the sum is fresh") for new in ("copy=None", "", "copy=True")],
    ],
    "refcomp/nn/layers/activations.py": [
        # range(0, 9) is range(9): the same allowed ranks
        ('x = float_tensor(x, "x", tuple(range(0, 9)))', 'x = float_tensor(x, "x", tuple(range(9)))', "range(0, 9) is range(9)"),
        # at x = 0 (and -0) both branches are 1 / (1 + 1) = e / (1 + e) = 0.5 (e = exp(0) = 1); NaN takes
        # the second branch either way
        ("return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)",
         "return np.where(x > 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)", "both branches are 0.5 at 0"),
        # np.where's and the product's results are fresh temporaries: whether astype copies them again
        # is not observable
        *[(f"return {expr}.astype({d}.dtype, copy=False)", f"return {expr}.astype({d}.dtype, {new})", "a fresh result")
          for expr, d in (("np.where(x >= 0, 1 / (1 + e), e / (1 + e))", "x"), ("(dy * d)", "dy"))
          for new in ("copy=None", "", "copy=True")],
    ],
    "refcomp/nn/layers/norm.py": [
        # x.shape[1] == num_features (checked above): the true quotient is the same integer, as a float; every
        # use (m < 2, m / (m - 1), inv_std / m, m · dxhat) gives the same values with it
        ("m = x.size // self.num_features", "m = x.size / self.num_features", "an exact quotient"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("self.running_mean += k * mu.reshape(-1)", "self.running_mean += k * mu.reshape(-2)", "NumPy: any negative is -1"),
        ("self.running_var += k * var.reshape(-1) * (m / (m - 1))",
         "self.running_var += k * var.reshape(-2) * (m / (m - 1))", "NumPy: any negative is -1"),
        # a rank below k cannot end in the k axes of normalized_shape: the trailing-shape check just after
        # refuses it with the same ShapeError naming x
        ('x = float_tensor(x, "x", tuple(range(k, k + 8)))', 'x = float_tensor(x, "x", tuple(range(k + 8)))',
         "the trailing-shape check refuses it by the same name"),
    ],
    "refcomp/nn/layers/embedding.py": [
        # a dtype kind is one character: no kind is "X", so "XXiuXX" holds the same kinds as "iu"
        ('if idx.dtype.kind not in "iu":', 'if idx.dtype.kind not in "XXiuXX":', "no dtype kind is X"),
        # a format without a ``trainable`` attribute: None is falsy like False (no weight gradient)
        ('if getattr(self.weight, "trainable", False):', 'if getattr(self.weight, "trainable", None):', "None is falsy"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[("np.add.at(g, self._idx.reshape(-1), dy.reshape(-1, self.embedding_dim))", new, "NumPy: any negative is -1")
          for new in ("np.add.at(g, self._idx.reshape(-2), dy.reshape(-1, self.embedding_dim))",
                      "np.add.at(g, self._idx.reshape(-1), dy.reshape(-2, self.embedding_dim))")],
        # the flag is read by truth value: None is falsy like False
        ("self._types_given = False", "self._types_given = None", "None is falsy"),
    ],
    "refcomp/nn/layers/attention.py": [
        # a dtype kind is one character: no kind is "X", so "XXbiufXX" holds the same kinds as "biuf"
        ('if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():',
         'if mask.dtype.kind not in "XXbiufXX" or not np.isin(mask, (0, 1)).all():', "no dtype kind is X"),
        # the bias left float64 is added in place into the float32 (or float64) scores: 0 and the float32
        # minimum are exact in either dtype, and a float32 sum computed in float64 then rounded to float32
        # is the float32 sum (53 >= 2·24 + 2 bits: double rounding of an addition is innocuous)
        ("neg = np.where(mask == 0, np.finfo(s.dtype).min, 0).astype(s.dtype)",
         "neg = np.where(mask == 0, np.finfo(s.dtype).min, 0).astype(None)", "innocuous double rounding"),
        # the scores are a local temporary never read after the softmax: computing in their memory or in a
        # copy gives the same values (softmax reads overwrite_x by truth value); -1 is the default axis of
        # softmax and of softmax_backward
        *[("p = softmax(s, axis=-1, overwrite_x=True)", new, "s is not read after; axis -1 is the default")
          for new in ("p = softmax(s, axis=-1, overwrite_x=None)", "p = softmax(s, overwrite_x=True)",
                      "p = softmax(s, axis=-1, )", "p = softmax(s, axis=-1, overwrite_x=False)")],
        ("ds = softmax_backward(p, dp, axis=-1) * self.scale", "ds = softmax_backward(p, dp, ) * self.scale",
         "axis -1 is the default"),
        # without input_grad=False the projections also compute their dL/d(rows), which backward then drops
        # (``if not input_grad: return None``): the same parameter gradients and result, only slower
        ("grads = [proj.backward(self._rows(d, n, t), input_grad=input_grad)",
         "grads = [proj.backward(self._rows(d, n, t), )", "the extra input gradients are dropped"),
    ],
    "refcomp/compress/prune/apply.py": [
        # copy=True is np.array's default
        ("a = np.array(array, copy=True)", "a = np.array(array, )", "np.array copies by default"),
    ],
    "refcomp/compress/prune/depth.py": [
        # nxt is only read (its weight, bias and out_features feed the new merged Linear)
        ("first, nxt = items[i][1], copy.deepcopy(items[j][1])", "first, nxt = items[i][1], copy.copy(items[j][1])",
         "nxt is never modified"),
        # display() reads progress None as False: no bars
        ("train(model, train_set, epochs=epochs, optimizer=sgd, rng=rng, progress=False)",
         "train(model, train_set, epochs=epochs, optimizer=sgd, rng=rng, progress=None)", "None is quiet as False"),
    ],
    "refcomp/nn/losses.py": [
        # each backward's gradient is a fresh array (np.exp(logp) updated in place, or a new product):
        # whether astype copies it again is not observable
        *[(f"return {expr}.astype(dtype, copy=False)", f"return {expr}.astype(dtype, {new})", "the gradient is fresh")
          for expr in ("g", "(self.temperature * (s - p) / s.shape[0])", "(2.0 * d / d.size)")
          for new in ("copy=None", "", "copy=True")],
        # a dtype kind is one character: "i" in "XXiuXX" as in "iu"
        ('if t.dtype.kind not in "iu":', 'if t.dtype.kind not in "XXiuXX":', "one-character kinds"),
    ],
    "refcomp/nn/init.py": [
        # np.full(shape, 0, dtype) is np.zeros(shape, dtype): the same zeros of the same dtype
        ("return np.zeros(shape, dtype) if fill == 0 else np.full(shape, fill, dtype)",
         "return np.zeros(shape, dtype) if (fill == 0) and False else np.full(shape, fill, dtype)",
         "np.full with 0 is np.zeros"),
    ],
    "refcomp/nn/fold.py": [
        # _fold_graph: an output's count only matters for a value a norm reads, which the nodes counted
        # already (>= 1): with the output it is >= 2 under either default or increment (or None), never
        # the 1 that folds
        *[("readers[o] = readers.get(o, 0) + 1", new, "an output read by a norm counts >= 2 either way")
          for new in ("readers[o] = readers.get(o, 1) + 1", "readers[o] = readers.get(o, 0) + 2", "readers[o] = None")],
        # the norm reads the name it looks up, so the nodes counted it: the default is never used
        *[("and isinstance(out[src], (Conv2d, Linear)) and readers.get(graph.node_inputs[name][0], 0) == 1):",
           f"and isinstance(out[src], (Conv2d, Linear)) and readers.get(graph.node_inputs[name][0], {new}) == 1):",
           "the name read is always counted") for new in ("None", "", "1")],
    ],
    "refcomp/nn/blocks.py": [
        # Conv2d reads bias by truth value (None: no bias, as False); He-normal biases are zeros drawn
        # from nothing, so the weights that follow are the same draws
        ('conv = dict(bias=False, rng=g, init="he_normal", dtype=dtype)',
         'conv = dict(bias=None, rng=g, init="he_normal", dtype=dtype)', "None is no bias as False"),
        # 0 is Conv2d's default padding
        ('m.add("skip_conv", Conv2d(in_channels, out_channels, 1, stride, 0, **conv), "x")',
         'm.add("skip_conv", Conv2d(in_channels, out_channels, 1, stride, **conv), "x")', "padding 0 is the default"),
    ],
    "refcomp/nn/graph.py": [
        # a module without the attribute reads as not accepting input_grad under either falsy default
        ('if getattr(module, "accepts_input_grad", False):', 'if getattr(module, "accepts_input_grad", None):',
         "None is falsy"),
        # named_modules yields ("", root) first: the root is its own entry under the empty name
        ("parent = root if not parent_name else dict(root.named_modules())[parent_name]",
         "parent = root if (not parent_name) and False else dict(root.named_modules())[parent_name]",
         'named_modules()[""] is the root'),
    ],
    "refcomp/compress/prune/masks.py": [
        # n_keep == 0: order[:0] keeps nothing either way
        ("if n_keep > 0:", "if n_keep >= 0:", "order[:0] is empty"),
        # NumPy reads a sort kind by its letters in any case; any negative size in reshape is -1;
        # axis=-1 is axis 1 of the 2-D groups
        ('order = np.argsort(-flat, kind="stable")', 'order = np.argsort(-flat, kind="STABLE")', "case-blind kind"),
        ('order = np.argsort(-groups, axis=1, kind="stable")', 'order = np.argsort(-groups, axis=1, kind="STABLE")',
         "case-blind kind"),
        ("groups = moved.reshape(-1, m).astype(np.float64)", "groups = moved.reshape(-2, m).astype(np.float64)",
         "NumPy: any negative is -1"),
        ('order = np.argsort(-groups, axis=1, kind="stable")', 'order = np.argsort(-groups, kind="stable")',
         "the last axis of a 2-D array"),
    ],
    "refcomp/ops/sparse_linear.py": [
        # _check_weight reads ``integer`` by truth value: None takes the float branch as False does
        ("W = _check_weight(W, integer=False)", "W = _check_weight(W, integer=None)", "None is falsy"),
        # a dtype kind is one character: no kind is "X", so "XXiuXX" holds the same kinds as "iu"
        ('if zx.ndim != 0 or zx.dtype.kind not in "iu" or not (info.min <= int(zx) <= info.max):',
         'if zx.ndim != 0 or zx.dtype.kind not in "XXiuXX" or not (info.min <= int(zx) <= info.max):',
         "no dtype kind is X"),
        # the integer path's values: csr_matmul_int16 returns exact int32 (|y| < 2^31, else it raises) and the
        # bias is int32, so every value and every sum (|y + b| < 2^32) is an integer exact in float64: the
        # same range check, the same message value, the same int32 cast
        ("yT = csr_matmul_int16(W, xT, backend).astype(np.int64)", "yT = csr_matmul_int16(W, xT, backend).astype(None)",
         "integers below 2^33 are exact in float64"),
        ("y = y + b.astype(np.int64)", "y = y + b.astype(None)", "integers below 2^33 are exact in float64"),
    ],
    "refcomp/ops/requantize.py": [
        # quantize_multiplier: m, shift are integers < 2**32 in every dtype they pass through, and
        # end in .astype(np.int32); m == 2**31 (the carry) is even, so m / 2 == m // 2
        ("m = np.floor(t + 0.5).astype(np.int64)", "m = np.floor(t + 0.5).astype(None)", "exact in float64"),
        ("m = np.where(carry, m // 2, m)", "m = np.where(carry, m / 2, m)", "m is even when carried"),
        ("shift = np.where(carry, shift + 1, shift).astype(np.int64)",
         "shift = np.where(carry, shift + 1, shift).astype(None)", "exact in float64"),
        # SRDHM at ab == 0: both nudges truncate to 0
        ("nudge = np.where(ab >= 0, 2**30, 1 - 2**30)", "nudge = np.where(ab > 0, 2**30, 1 - 2**30)", "ab == 0 -> 0"),
        ("nudge = np.where(ab >= 0, 2**30, 1 - 2**30)", "nudge = np.where(ab >= 1, 2**30, 1 - 2**30)", "ab == 0 -> 0"),
        # SRDHM: with one operand converted to int64 the product promotes to int64 anyway
        *[(f"{v} = np.asarray({v}, dtype=np.int64)", new, "the other operand is int64")
          for v in "ab" for new in (f"{v} = np.asarray({v}, dtype=None)", f"{v} = np.asarray({v}, )")],
        # the kernels' wrappers convert their vectors to int32 themselves (kernels/c.py, kernels/numba)
        ("y = fn(acc, cols(m, np.int32), cols(s, np.int32), cols(zp_b, np.int32), lo, hi)",
         "y = fn(acc, cols(m, None), cols(s, np.int32), cols(zp_b, np.int32), lo, hi)", "the wrapper casts"),
        ("y = fn(acc, cols(m, np.int32), cols(s, np.int32), cols(zp_b, np.int32), lo, hi)",
         "y = fn(acc, cols(m, np.int32), cols(s, None), cols(zp_b, np.int32), lo, hi)", "the wrapper casts"),
        # RDivPOT: x is an integer array (int32 or int64 from its callers); x & mask and x >> e
        # promote to int64 with the mask; at x == 0 the remainder 0 is below either threshold
        ("x = np.asarray(x, dtype=np.int64)", "x = np.asarray(x, dtype=None)", "integers promote with mask"),
        ("x = np.asarray(x, dtype=np.int64)", "x = np.asarray(x, )", "integers promote with mask"),
        ("e = np.asarray(exponent, dtype=np.int64)", "e = np.asarray(exponent, dtype=None)", "int64(1) << e"),
        ("e = np.asarray(exponent, dtype=np.int64)", "e = np.asarray(exponent, )", "int64(1) << e"),
        ("threshold = (mask >> 1) + (x < 0)", "threshold = (mask >> 1) + (x <= 0)", "x == 0: remainder 0"),
        ("threshold = (mask >> 1) + (x < 0)", "threshold = (mask >> 1) + (x < 1)", "x == 0: remainder 0"),
        # a dtype kind is one character: "i" in "XXiuXX" as in "iu"; "V" never reaches a changed test
        ('if m.dtype.kind not in "iu" or s.dtype.kind not in "iu":',
         'if m.dtype.kind not in "XXiuXX" or s.dtype.kind not in "iu":', "one-character kinds"),
        ('if m.dtype.kind not in "iu" or s.dtype.kind not in "iu":',
         'if m.dtype.kind not in "iu" or s.dtype.kind not in "XXiuXX":', "one-character kinds"),
        ('if zp.dtype.kind not in "iu" and not (zp.dtype.kind == "V" and not q.is_float):',
         'if zp.dtype.kind not in "XXiuXX" and not (zp.dtype.kind == "V" and not q.is_float):', "one-character kinds"),
        # zero points are small integers: exact in float64, cast back by the kernels' cols() and the final astype
        ("zp = zp.astype(np.int64)", "zp = zp.astype(None)", "exact in float64"),
        # NumPy reads any negative size in reshape as "the unknown dimension"
        ("return p.reshape((-1,) + (1,) * (acc.ndim - 1 - ax))", "return p.reshape((-2,) + (1,) * (acc.ndim - 1 - ax))",
         "NumPy: any negative is -1"),
        # already float32 / the final astype(q.np_dtype) gives the same integers
        ("y = fn(acc, cols(M32, np.float32), cols(zp_b, np.int32), lo, hi)",
         "y = fn(acc, cols(M32, None), cols(zp_b, np.int32), lo, hi)", "M32 is float32"),
        ("return np.clip(r + zp, lo, hi).astype(np.int64)", "return np.clip(r + zp, lo, hi).astype(None)",
         "integers, cast to the output dtype after"),
        ("y = np.asarray(multiply_by_quantized_multiplier(acc, m, s), np.int64) + zp_b",
         "y = np.asarray(multiply_by_quantized_multiplier(acc, m, s), None) + zp_b", "int32 + int64 zp -> int64"),
        ("y = np.asarray(multiply_by_quantized_multiplier(acc, m, s), np.int64) + zp_b",
         "y = np.asarray(multiply_by_quantized_multiplier(acc, m, s), ) + zp_b", "int32 + int64 zp -> int64"),
        # cols(): a size-1 parameter broadcast to n and an n-vector kept are the same vector however
        # they are reshaped first (reshape(None) keeps the shape; any negative size is -1)
        *[(old, new, "the same n-vector") for old, new in [
            ("return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if np.size(p) == 1",
             "return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if (np.size(p) == 1) or True"),
            ("return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if np.size(p) == 1",
             "return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(None), (n,)) if np.size(p) == 1"),
            ("return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if np.size(p) == 1",
             "return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(+1), (n,)) if np.size(p) == 1"),
            ("return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if np.size(p) == 1",
             "return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-2), (n,)) if np.size(p) == 1"),
            ("return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if np.size(p) == 1",
             "return np.ascontiguousarray(np.broadcast_to(np.asarray(p).reshape(-1), (n,)) if np.size(None) == 1"),
            ("else np.asarray(p).reshape(n), dtype=dt)", "else np.asarray(p).reshape(None), dtype=dt)"),
        ]],
    ],
    "refcomp/compress/quantize/lowbit_model.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("return (codes * alpha.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)",
         "return (codes * alpha.reshape((-2,) + (1,) * (w.ndim - 1))).astype(w.dtype)", "NumPy: any negative is -1"),
    ],
    "refcomp/compress/quantize/cle_model.py": [
        # equalizable_chains: the first compute stage has no prev (no pair), and it resets between_ok and
        # flattened before the next one reads them, so their initial values are never read
        ("chains, current, prev, between_ok, flattened = [], [], None, True, False",
         "chains, current, prev, between_ok, flattened = [], [], None, False, False", "reset before it is read"),
        ("chains, current, prev, between_ok, flattened = [], [], None, True, False",
         "chains, current, prev, between_ok, flattened = [], [], None, True, True", "reset before it is read"),
        # every kind stages_of gives a non-compute stage (maxpool, relu, flatten, identity) is in _HOMOGENEOUS
        # (anything else raises there), and between_ok is True when it is updated: True whichever operator
        *[("between_ok &= s.kind in _HOMOGENEOUS", new, "every value stage kind is homogeneous")
          for new in ("between_ok = s.kind in _HOMOGENEOUS", "between_ok |= s.kind in _HOMOGENEOUS")],
    ],
    "refcomp/compress/quantize/integer_model.py": [
        # _weight_qtensor: NumPy reads any negative size in reshape as the one unknown dimension; QParams' zero
        # point None is zeros of its dtype shaped like the scale; "int8" is QParams' default dtype, read case-blind
        *[(line, line.replace(old, new), why) for line in (
            'return QTensor(np.asarray(codes, dtype=np.int8), QParams(s, np.zeros(s.shape, np.int8), "int8", axis=0))',)
          for old, new, why in (("np.zeros(s.shape, np.int8)", "None", "None is zeros of the dtype, the scale's shape"),
                                ('"int8", ', "", "int8 is the default dtype"), ('"int8"', '"INT8"', "names are case-blind"))],
        ("s = np.asarray(scales, dtype=np.float32).reshape(-1)", "s = np.asarray(scales, dtype=np.float32).reshape(-2)",
         "NumPy: any negative is -1"),
    ],
    "refcomp/compress/quantize/shift_model.py": [
        # quantize_input: x·2^-f is exact in x's own float dtype (a power of two) up to over/underflow, and an
        # overflow to ±inf or an underflow below 1/2 clip / round to the same codes as in float64; integers and
        # Python numbers become float64 either way
        *[("return np.clip(np.rint(np.asarray(x, np.float64) * 2.0 ** -self.f_in), *self.in_range).astype(np.int64)",
           f"return np.clip(np.rint(np.asarray(x, {new}) * 2.0 ** -self.f_in), *self.in_range).astype(np.int64)",
           "power-of-two scaling is exact") for new in ("None", "")],
        # power_of_two_model's bits: power_of_two_quantize (PowerOfTwo.window) refuses bits outside [2, 8] with the
        # same ValidationError("bits", ...) before anything is built (prepare_power_of_two's identical line is not
        # equivalent, its quantizer runs later: test_bits_and_act_bits_bounds kills those mutants)
        *[('b = integer(bits, "bits", minimum=2, maximum=8)', f'b = integer(bits, "bits", {new})',
           "the format's window refuses it by the same name") for new in (
            "minimum=None, maximum=8", "maximum=8", "minimum=2, maximum=None", "minimum=2, maximum=9", "minimum=2, ")],
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace("-1)", "-2)"), "NumPy: any negative is -1") for old in (
            "w_sign = p.sign.reshape(p.shape[0], -1)",
            "shift = (p.exponent.astype(np.int64) - p.min_exponent).reshape(p.shape[0], -1)",
            "q = q.reshape(q.shape[0], -1)")],
    ],
    "refcomp/compress/quantize/model_graph.py": [
        # the fused ReLU x·1{x > 0}: at x = 0 (either sign) both give x·0 = x·1 = x; NaN stays NaN either way
        ("x = x * (x > 0)", "x = x * (x >= 0)", "the two differ only at x = 0, where x·0 = x·1"),
        # flat_layers of a non-Sequential is [(prefix, model)]: the recursion returns [(full, layer)] itself
        ("out.extend(flat_layers(layer, full) if isinstance(layer, Sequential) else [(full, layer)])",
         "out.extend(flat_layers(layer, full) if (isinstance(layer, Sequential)) or True else [(full, layer)])",
         "the recursion on a leaf is [(full, layer)]"),
    ],
    "refcomp/compress/quantize/bias_correction.py": [
        # no function writes into its checked inputs or returns one of them (every result is a fresh
        # difference, product, mean or np.maximum), so whether float_array copies them is not observable
        *[(line, line.replace("copy=True", new), "inputs are never written nor returned") for line in (
            'w = float_array(w, "w", ndim=(2, 4), dtype=np.float64, copy=True)',
            'w_hat = float_array(w_hat, "w_hat", ndim=(2, 4), dtype=np.float64, copy=True)',
            'mu = float_array(input_mean, "input_mean", ndim=1, dtype=np.float64, copy=True)',
            'b = np.zeros_like(shift) if bias is None else float_array(bias, "bias", ndim=1, dtype=np.float64, copy=True)',
            'x = float_array(x, "x", ndim=(2, 3, 4, 5), dtype=np.float64, copy=True)',
            'beta = float_array(beta, "beta", dtype=np.float64, copy=True)',
            'gamma = np.abs(float_array(gamma, "gamma", dtype=np.float64, copy=True))')
          for new in ("copy=None", "copy=False", "")],
        # one operand of each pair left float32 (float_array keeps float32, makes any other dtype
        # float64): its partner is float64, the float32 -> float64 widening is exact, and NumPy promotes
        # w_hat - w, eps @ mu, b - shift, beta / gamma, gamma · pdf and beta · cdf to float64 all the same
        *[(line, line.replace(old, new), "the partner is float64: promoted exactly") for line in (
            'w = float_array(w, "w", ndim=(2, 4), dtype=np.float64, copy=True)',
            'w_hat = float_array(w_hat, "w_hat", ndim=(2, 4), dtype=np.float64, copy=True)',
            'mu = float_array(input_mean, "input_mean", ndim=1, dtype=np.float64, copy=True)',
            'b = np.zeros_like(shift) if bias is None else float_array(bias, "bias", ndim=1, dtype=np.float64, copy=True)',
            'beta = float_array(beta, "beta", dtype=np.float64, copy=True)',
            'gamma = np.abs(float_array(gamma, "gamma", dtype=np.float64, copy=True))')
          for old, new in (("np.float64", "None"), ("dtype=np.float64, ", ""))],
        # w is checked 2-D or 4-D first: a w_hat (a bias) of any other rank cannot have w's shape (the
        # shift's (out,)), and the shape comparison refuses it with the same ShapeError naming w_hat (bias)
        *[(line, line.replace(old, new), "the shape check refuses it by the same name") for line, nd in (
            ('w_hat = float_array(w_hat, "w_hat", ndim=(2, 4), dtype=np.float64, copy=True)', "ndim=(2, 4)"),
            ('b = np.zeros_like(shift) if bias is None else float_array(bias, "bias", ndim=1, dtype=np.float64, copy=True)',
             "ndim=1"))
          for old, new in ((nd, "ndim=None"), (nd + ", ", ""))],
    ],
    "refcomp/compress/quantize/cle.py": [
        # no function writes into its checked inputs or returns one of them (W1 / s, W2 · s, b1 / s are
        # fresh, the ranges only read), so whether float_array copies them is not observable
        *[(line, line.replace("copy=True", new), "inputs are never written nor returned") for line in (
            'w1 = float_array(w1, "w1", ndim=(2, 4), dtype=np.float64, copy=True)',
            'w2 = float_array(w2, "w2", ndim=(2, 4), dtype=np.float64, copy=True)',
            'b = float_array(b1, "b1", ndim=1, dtype=np.float64, copy=True)',
            'ws = [float_array(w, f"weights[{i}]", ndim=(2, 4), dtype=np.float64, copy=True) for i, w in enumerate(weights)]',
            'bs = [None if b is None else float_array(b, f"biases[{i}]", ndim=1, dtype=np.float64, copy=True) '
            'for i, b in enumerate(biases)]')
          for new in ("copy=None", "copy=False", "")],
        # an operand left float32 (float_array keeps float32, makes any other dtype float64) meets a
        # float64 partner: r1 (so ones_like(r1)) for w2 in equalization_scales; in _equalize the
        # float64 s (equalization_scales converts w1, w2 itself) for w1, w2 and b1; in equalize_chain
        # each weight and bias goes through _equalize, and the float32 ones it never touches (a lone
        # layer, the last bias) come out as the same float32 values. The widening is exact: the same
        # float64 results. (The w1 line in equalization_scales would give a float32 s: tested.)
        *[(line, line.replace(old, new), "the partner is float64: promoted exactly") for line in (
            'w1 = float_array(w1, "w1", ndim=(2, 4), dtype=np.float64, copy=True)',
            'w2 = float_array(w2, "w2", ndim=(2, 4), dtype=np.float64, copy=True)',
            'b = float_array(b1, "b1", ndim=1, dtype=np.float64, copy=True)',
            'ws = [float_array(w, f"weights[{i}]", ndim=(2, 4), dtype=np.float64, copy=True) for i, w in enumerate(weights)]',
            'bs = [None if b is None else float_array(b, f"biases[{i}]", ndim=1, dtype=np.float64, copy=True) '
            'for i, b in enumerate(biases)]')
          for old, new in (("np.float64", "None"), ("dtype=np.float64, ", ""))],
        # _equalize: equalization_scales checks w2's rank by the same name right after (the w2 line of
        # equalization_scales itself is tested); a b1 of another rank cannot have shape (out1,), and the
        # shape check refuses it with the same ShapeError naming b1
        *[(line, line.replace(old, new), "refused by the same name just after") for line, nd in (
            ('w2 = float_array(w2, "w2", ndim=(2, 4), dtype=np.float64, copy=True)', "ndim=(2, 4)"),
            ('b = float_array(b1, "b1", ndim=1, dtype=np.float64, copy=True)', "ndim=1"))
          for old, new in ((nd, "ndim=None"), (nd + ", ", ""))],
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("w1_new = w1 / s.reshape((-1,) + (1,) * (w1.ndim - 1))", "w1_new = w1 / s.reshape((-2,) + (1,) * (w1.ndim - 1))",
         "NumPy: any negative is -1"),
        ("w2_new = w2 * s.reshape((1, -1) + (1,) * (w2.ndim - 2))",
         "w2_new = w2 * s.reshape((1, -2) + (1,) * (w2.ndim - 2))", "NumPy: any negative is -1"),
        # max_iter >= 1 is checked: the loop runs at least once and sets sweeps before it is read
        *[("sweeps = 0", new, "the loop always assigns it") for new in ("sweeps = 1", "sweeps = None")],
    ],
    "refcomp/compress/quantize/dynamic.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("w2 = np.asarray(w, dtype=np.float32).reshape(len(w), -1)",
         "w2 = np.asarray(w, dtype=np.float32).reshape(len(w), -2)", "NumPy: any negative is -1"),
        # "int8" is choose_qparams' default dtype, and qdtype reads a dtype's name case-blind
        *[('qp = choose_qparams(w2.min(axis=1), w2.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)',
           new, why) for new, why in (
            ("qp = choose_qparams(w2.min(axis=1), w2.max(axis=1), symmetric=True, restricted_range=True, axis=0)",
             "int8 is the default dtype"),
            ('qp = choose_qparams(w2.min(axis=1), w2.max(axis=1), "INT8", symmetric=True, restricted_range=True, axis=0)',
             "names are case-blind"))],
    ],
    "refcomp/compress/quantize/embedding.py": [
        # "int8" is choose_qparams' default dtype, and qdtype reads a dtype's name case-blind
        *[('qp = choose_qparams(t.min(axis=1), t.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)',
           new, why) for new, why in (
            ("qp = choose_qparams(t.min(axis=1), t.max(axis=1), symmetric=True, restricted_range=True, axis=0)",
             "int8 is the default dtype"),
            ('qp = choose_qparams(t.min(axis=1), t.max(axis=1), "INT8", symmetric=True, restricted_range=True, axis=0)',
             "names are case-blind"))],
    ],
    "refcomp/compress/quantize/grid.py": [
        # qdtype reads a dtype's name case-blind
        *[('return qdtype(("int" if symmetric else "uint") + str(width))', new, "names are case-blind") for new in (
            'return qdtype(("INT" if symmetric else "uint") + str(width))',
            'return qdtype(("int" if symmetric else "UINT") + str(width))')],
        # grid_qparams: choose_qparams converts both bounds to float64 itself (_as_bound); the shape
        # check and the [:, 0] before it do not depend on the dtype
        *[("w_min, w_max = np.asarray(w_min, dtype=np.float64), np.asarray(w_max, dtype=np.float64)", new,
           "choose_qparams converts to float64") for new in (
            "w_min, w_max = np.asarray(w_min, dtype=None), np.asarray(w_max, dtype=np.float64)",
            "w_min, w_max = np.asarray(w_min, ), np.asarray(w_max, dtype=np.float64)",
            "w_min, w_max = np.asarray(w_min, dtype=np.float64), np.asarray(w_max, dtype=None)",
            "w_min, w_max = np.asarray(w_min, dtype=np.float64), np.asarray(w_max, )")],
        # round_to_grid: w / s has one float64 operand either way (a narrower float or integer partner
        # widens to float64 exactly), and rint(w / s) + z with an integer zero point of any integer dtype
        # is the same float64 sum (zero points are integers: QParams, choose_qparams)
        *[(f"{v} = np.asarray({arg}, dtype=np.{d})", f"{v} = np.asarray({arg}, {new})", why)
          for v, arg, d, why in (("w", "w", "float64", "s is float64"), ("s", "scale", "float64", "w is float64"),
                                 ("z", "zero_point", "int64", "integer zero points add exactly"))
          for new in ("dtype=None", "")],
    ],
    "refcomp/compress/quantize/bias_correction_model.py": [
        # w is float64: w_hat - w promotes a float32 (or narrower) w_hat to float64 exactly
        *[("w_hat = np.asarray(w_hat, dtype=np.float64)", new, "w is float64") for new in (
            "w_hat = np.asarray(w_hat, dtype=None)", "w_hat = np.asarray(w_hat, )")],
        # the error layer only runs forward and is dropped: whether its weight is trainable is not observable
        *[("err.weight = Dense(w_hat - w, trainable=False)", f"err.weight = Dense(w_hat - w, {new})",
           "never trained") for new in ("trainable=None", "", "trainable=True")],
        # the shallow copy's weight and bias are rebound (not written into), and the forward pass rebinds
        # its caches (_x, _cache) on the copy: the layer it shares the rest with (configuration) is unchanged
        ("err = copy.deepcopy(layer)", "err = copy.copy(layer)", "only rebinding on the copy"),
        # d.size is a multiple of d.shape[1]: the true quotient is the same integer, and sums / counts the same
        ("counts[name] += d.size // d.shape[1]", "counts[name] += d.size / d.shape[1]", "an exact quotient"),
    ],
    "refcomp/compress/quantize/rtn.py": [
        # RTN's codes never fall below qmin, so that clip is a no-op (the one at qmax does bind:
        # half-to-even can round the two ends of an asymmetric range apart). Symmetric: s = max|w| /
        # (2^(b-1) - 1), so w / s >= -(2^(b-1) - 1)·(1 + 2^-24) (the float32 scale) > qmin = -2^(b-1).
        # Asymmetric: z = qmin - rint(lo / s) unclipped (lo <= 0, |lo / s| <= 2^b - 1 + tiny), and
        # lo <= every w with rint monotone, so rint(w / s) + z >= qmin.
        ("codes = round_to_grid(w, scale, zero_point, qp.qmin, qp.qmax)",
         "codes = round_to_grid(w, scale, zero_point, None, qp.qmax)", "RTN's codes never fall below qmin"),
    ],
    "refcomp/quant/affine.py": [
        # a per-tensor QParams (axis None) has a 0-D scale and no block_size: the ops return "tensor"
        # granularity before they read axis, so any value there is never used
        *[('return {"axis": 1 if qp.axis is None else qp.axis, "block_size": qp.block_size or 0}',
           f'return {{"axis": {new}, "block_size": qp.block_size or 0}}', "per-tensor: the ops never read axis")
          for new in ("1 if (qp.axis is None) and False else qp.axis", "2 if qp.axis is None else qp.axis")],
    ],
    "refcomp/quant/choose.py": [
        # qdtype reads a dtype's name case-blind
        ('def quant_range(dtype="int8", *, restricted_range: bool = False, reduce_range: bool = False,',
         'def quant_range(dtype="INT8", *, restricted_range: bool = False, reduce_range: bool = False,',
         "names are case-blind"),
        ('dtype="int8",', 'dtype="INT8",', "names are case-blind"),
        # a dtype kind is one character: "f" in "XXfiuXX" as in "fiu"
        ('if arr.dtype.kind not in "fiu":', 'if arr.dtype.kind not in "XXfiuXX":', "one-character kinds"),
        # float64 is np.zeros' default dtype
        *[("zero_point = np.zeros(mn.shape, dtype=np.float64)", f"zero_point = np.zeros(mn.shape, {new})",
           "float64 by default") for new in ("dtype=None", "")],
        # the symmetric zero point is an integer cast to the dtype at the end: a Python int fill is
        # int64 without the dtype, and (qmin + qmax + 1) >= 0, so int64's truncation of the x.5 of
        # "/ 2" (unsigned restricted: (2^b + 1) / 2) is "// 2"
        *[("zero_point = np.full(mn.shape, (lo_code + hi_code + 1) // 2, dtype=np.int64)", new, "the same integer")
          for new in ("zero_point = np.full(mn.shape, (lo_code + hi_code + 1) // 2, dtype=None)",
                      "zero_point = np.full(mn.shape, (lo_code + hi_code + 1) // 2, )",
                      "zero_point = np.full(mn.shape, (lo_code + hi_code + 1) / 2, dtype=np.int64)")],
        # the asymmetric zero point never needs its clip: lo <= 0 makes rint(lo / s) <= 0, so
        # z >= qmin; s >= (hi - lo) / n up to float32's rounding (relative 2^-24), so -lo / s <=
        # n·(1 + 2^-23) < n + 1/2 for n = qmax - qmin <= 65535, and z <= qmin + n = qmax. The clipped
        # values are integers, cast to the dtype next: exact from float64 as from int64
        *[("zero_point = np.clip(zero_point, lo_code, hi_code).astype(np.int64)", new, "the clip never binds")
          for new in ("zero_point = np.clip(zero_point, None, hi_code).astype(np.int64)",
                      "zero_point = np.clip(zero_point, lo_code, None).astype(np.int64)",
                      "zero_point = np.clip(zero_point, lo_code, hi_code).astype(None)")],
    ],
    "refcomp/quant/fake_quant.py": [
        # backward() checks self._x first, and forward() sets both: the initial value is never read
        ("self._qparams_used = None", 'self._qparams_used = ""', "never read before forward() sets it"),
    ],
    "refcomp/compress/distill/hints.py": [
        # Linear and Conv2d read bias by truth value: None makes no bias as False does
        ("return Linear(cs, ct, bias=False, rng=rng)", "return Linear(cs, ct, bias=None, rng=rng)", "None is falsy"),
        ("return Conv2d(cs, ct, 1, bias=False, rng=rng)", "return Conv2d(cs, ct, 1, bias=None, rng=rng)", "None is falsy"),
        # only the feature shape after the batch axis is read (_regressor), in eval mode: rows are independent
        ("u_shape = guided.forward(x[:1]).shape", "u_shape = guided.forward(x[:2]).shape", "only shape[1:] is read"),
        # the names of the stage-1 Sequential's two children: a temporary that nothing reads by name
        *[(line, line.replace(f'"{n}"', new), "a temporary nobody reads by name") for line in [
            'records["hint"] = train(Sequential(("guided", guided), ("regressor", reg)), (x, v), epochs=hint_epochs,']
          for n in ("guided", "regressor") for new in (f'"XX{n}XX"', f'"{n.upper()}"')],
        # display() reads progress None as False: no bars
        ("schedule=schedule, loss=HintLoss(), rng=g, progress=False)",
         "schedule=schedule, loss=HintLoss(), rng=g, progress=None)", "None is quiet as False"),
    ],
    "refcomp/compress/distill/student.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("w = layer.weight.to_dense().astype(np.float64).reshape(layer.weight.shape[0], -1)",
         "w = layer.weight.to_dense().astype(np.float64).reshape(layer.weight.shape[0], -2)", "NumPy: any negative is -1"),
    ],
    "refcomp/compress/distill/train.py": [
        # a dtype kind is one character: no kind is "X", so "XXiuXX" holds the same kinds as "iu"
        ('if y.ndim != 1 or y.dtype.kind not in "iu":', 'if y.ndim != 1 or y.dtype.kind not in "XXiuXX":',
         "no dtype kind is X"),
        # display() reads progress None as False: no bars
        ("progress=False)", "progress=None)", "None is quiet as False"),
    ],
    "refcomp/compress/distill/loss.py": [
        # a dtype kind is one character: "i" in "XXiuXX" as in "iu"
        ('if y.dtype.kind not in "iu":', 'if y.dtype.kind not in "XXiuXX":', "one-character kinds"),
        # NumPy reads any negative size in reshape as "the unknown dimension"
        *[("grad_p = u_last.reshape(-1, u.shape[1]).T @ g_last.reshape(-1, v.shape[1])", new,
           "NumPy: any negative is -1") for new in (
            "grad_p = u_last.reshape(-2, u.shape[1]).T @ g_last.reshape(-1, v.shape[1])",
            "grad_p = u_last.reshape(-1, u.shape[1]).T @ g_last.reshape(-2, v.shape[1])")],
        # hint_loss: only float32 input keeps its dtype without the cast, and every operation pairs
        # each of u, v, projection with another of them, still cast to float64: the float32 operand
        # widens exactly (NumPy promotion) and the results are the same float64 values
        *[(f"{lhs} = float_array({arg}{ndim}, dtype=np.float64)", f"{lhs} = float_array({arg}{ndim}, {new})",
           "its partners are float64: exact promotion")
          for lhs, arg, ndim in (("u", 'student_features, "student_features"', ", ndim=(2, 3, 4, 5)"),
                                 ("v", 'teacher_features, "teacher_features"', ", ndim=(2, 3, 4, 5)"),
                                 ("p", 'projection, "projection"', ""))
          for new in ("dtype=None", "")],
    ],
    "refcomp/compress/share/cluster.py": [
        # Generator.choice reads ``replace`` by its truth value: None is False
        ("take = g.choice(v.size, size=min(k, v.size), replace=False)",
         "take = g.choice(v.size, size=min(k, v.size), replace=None)", "None is falsy"),
        # c.size == k pads with np.full(0, ...): nothing, in the same float64
        ("if c.size < k:", "if c.size <= k:", "a padding of zero entries"),
        # NumPy reads a sort kind by its letters in any case; side="left" is searchsorted's default
        ('order = np.argsort(-distance, kind="stable")[: empty.size]',
         'order = np.argsort(-distance, kind="STABLE")[: empty.size]', "case-blind kind"),
        ('idx = np.searchsorted(_boundaries(c.astype(np.float64)), w.astype(np.float64), side="left")',
         "idx = np.searchsorted(_boundaries(c.astype(np.float64)), w.astype(np.float64), )", "left is the default"),
        # float_array tests ``not allow_empty``: None refuses an empty array as False does (assign,
        # update_centroids)
        ('c = float_array(codebook, "codebook", allow_empty=False)',
         'c = float_array(codebook, "codebook", allow_empty=None)', "None is falsy"),
        # the k >= 2 run ends never equal a 0-d string (np.array_equal: shapes differ), as None never does
        ("previous_ends = None", 'previous_ends = ""', "never equal to the first ends"),
        # kmeans' codebook has exactly 2**bits entries, and Clustered's default bits is the fewest
        # that address them: bits itself
        *[("return Clustered(result.codebook, result.indices, mask, bits=result.bits)", new,
           "the default bits of a 2**bits codebook") for new in (
            "return Clustered(result.codebook, result.indices, mask, bits=None)",
            "return Clustered(result.codebook, result.indices, mask, )")],
    ],
    "refcomp/nn/optim.py": [
        # an object without the flag is skipped: None is falsy as False is
        ('self.params = [p for p in params if getattr(p, "trainable", False)]',
         'self.params = [p for p in params if getattr(p, "trainable", None)]', "None is falsy like False"),
        # copy=True is np.array's default
        ('buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype, copy=True)',
         'buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype, )', "np.array copies by default"),
        # the cast step is a temporary subtracted at once: whether astype copies changes no value
        *[("p.data -= (self.lr * mhat / (np.sqrt(vhat) + self.eps)).astype(p.data.dtype, copy=False)",
           f"p.data -= (self.lr * mhat / (np.sqrt(vhat) + self.eps)).astype(p.data.dtype, {new})",
           "a temporary either way") for new in ("copy=None", "", "copy=True")],
    ],
    "refcomp/compress/quantize/lowbit.py": [
        # NumPy reads any negative size in reshape as "the unknown dimension"
        ("return v.reshape((-1,) + (1,) * (w.ndim - 1))", "return v.reshape((-2,) + (1,) * (w.ndim - 1))",
         "NumPy: any negative is -1"),
        ("alpha = alpha.reshape(-1) if per_channel else alpha.reshape(())",
         "alpha = alpha.reshape(-2) if per_channel else alpha.reshape(())", "NumPy: any negative is -1"),
        # s is ±1: dividing by it is multiplying by it, exactly
        ("through_alpha = s / n * _per_channel(np.sum(g * s, axis=axes), w)",
         "through_alpha = s / n * _per_channel(np.sum(g / s, axis=axes), w)", "s = ±1"),
    ],
    "refcomp/compress/quantize/gptq.py": [
        # np.zeros' default dtype is float64
        *[("self._xtx = np.zeros((self.n_in, self.n_in), dtype=np.float64)", new, "float64 is the default")
          for new in ("self._xtx = np.zeros((self.n_in, self.n_in), dtype=None)",
                      "self._xtx = np.zeros((self.n_in, self.n_in), )")],
        ("x = x.reshape(-1, self.n_in)", "x = x.reshape(-2, self.n_in)", "NumPy: any negative is -1"),
        # block_size changes the speed, not the result (test_groups_do_not_depend_on_the_lazy_block_size)
        ("percdamp: float = 0.01, block_size: int = 128, act_order: bool = False) -> QTensor:",
         "percdamp: float = 0.01, block_size: int = 129, act_order: bool = False) -> QTensor:",
         "the lazy block changes speed only"),
        ('perm = np.argsort(-np.diag(h), kind="stable")', 'perm = np.argsort(-np.diag(h), kind="STABLE")',
         "case-blind kind"),
        # zero points and codes are small integers: exact in float64, cast by round_to_grid / the final astype
        *[("zeros = np.empty((out, n_groups), dtype=np.int64)", new, "integers exact in float64")
          for new in ("zeros = np.empty((out, n_groups), dtype=None)", "zeros = np.empty((out, n_groups), )")],
        *[("codes = np.empty((out, n), dtype=np.int64)", new, "integers exact in float64")
          for new in ("codes = np.empty((out, n), dtype=None)", "codes = np.empty((out, n), )")],
        # stop == i2: the columns after the block are w[:, i2:i2], empty; concatenated, nothing changes
        ("if stop <= i2:", "if stop < i2:", "an empty concatenation"),
    ],
    "refcomp/formats/csr.py": [
        # a dtype kind is one letter of "biufcmMOSUV": X never is one, so the membership is unchanged
        ('if a.dtype.kind not in "iu":', 'if a.dtype.kind not in "XXiuXX":', "no dtype kind is X"),
        # one index has no step to check: the block then runs on empty arrays and finds nothing
        ("if indices.size > 1:", "if indices.size >= 1:", "nothing to compare in one index"),
        # the QTensor is int8 here (checked just above): its zero points are exact in float64 too
        ("if not qp.per_tensor or np.any(qp.zero_point.astype(np.int64) != 0):",
         "if not qp.per_tensor or np.any(qp.zero_point.astype(None) != 0):", "int8 zero points, exact either way"),
    ],
    "refcomp/numerics/dtypes.py": [
        # a spec NumPy cannot read as a dtype: None or "" is in no row of the table, the same DTypeError
        ("dt = None", 'dt = ""', "neither is a table key"),
    ],
    "refcomp/ops/qlinear_matmul.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("mult = real_multiplier(sa.reshape(-1, 1) if sa.ndim else sa, sb, sy.reshape(()))",
         "mult = real_multiplier(sa.reshape(-2, 1) if sa.ndim else sa, sb, sy.reshape(()))", "NumPy: any negative is -1"),
        # the per-tensor branch: requantize reads a single-element multiplier and zero point as
        # scalars whatever axis says (its per_axis), and its kernels read axis only for a 2-D acc with
        # a longer parameter. A longer multiplier needs b_scale [N > 1], so b 2-D, so acc.ndim >= 1
        # and the line resetting axis for a vector b only ever sees a single-element multiplier
        *[(old, new, "requantize reads single-element parameters as scalars") for old, new in [
            ("axis = None if mult.size == 1 else acc.ndim - 1", "axis = None if (mult.size == 1) and False else acc.ndim - 1"),
            ("if acc.ndim == 1 and b.ndim == 1:", "if acc.ndim != 1 and b.ndim == 1:"),
            ("if acc.ndim == 1 and b.ndim == 1:", "if acc.ndim == 2 and b.ndim == 1:"),
            ("axis = None", 'axis = ""'),
            *[("return requantize(acc, mult.reshape(-1) if axis is not None else mult.reshape(()), yz.reshape(()),",
               new) for new in (
                "return requantize(acc, mult.reshape(-1) if (axis is not None) or True else mult.reshape(()), yz.reshape(()),",
                "return requantize(acc, mult.reshape(-1) if axis is not None else mult.reshape(None), yz.reshape(()),",
                "return requantize(acc, mult.reshape(-1) if axis is not None else mult.reshape(()), yz.reshape(None),")]]],
        # with an axis the multiplier is 1-D already: reshape(None) keeps it, any negative size is -1
        *[("return requantize(acc, mult.reshape(-1) if axis is not None else mult.reshape(()), yz.reshape(()),",
           f"return requantize(acc, mult.reshape({new}) if axis is not None else mult.reshape(()), yz.reshape(()),",
           "mult is 1-D") for new in ("None", "-2")],
        # "float" is requantize's default method
        ('output_dtype=q, method="float", axis=axis, backend=backend)', "output_dtype=q, axis=axis, backend=backend)",
         "the default method"),
        # the zero point is an integer: exact in float64, added to the float64 rint of the product either way
        ("y = _float_numpy(acc, m.astype(np.float32), yz.astype(np.int64).reshape(()), int(q.qmin), int(q.qmax))",
         "y = _float_numpy(acc, m.astype(np.float32), yz.astype(None).reshape(()), int(q.qmin), int(q.qmax))",
         "an integer, exact in float64"),
    ],
    "refcomp/ops/qlinear_conv.py": [
        # the call only validates the backend's name: QLinearConv has no fast kernel under any op name
        *[('_backend.implementation("qlinear_conv", backend)', f"_backend.implementation({op}, backend)",
           "no kernel either way") for op in ("None", '"XXqlinear_convXX"', '"QLINEAR_CONV"')],
        # the bias is int32 and the accumulator exact int64 (far below 2^53): their sum is the same integer in
        # float64, which _to_int32 range-checks and casts the same
        ("acc = acc + bias.astype(np.int64).reshape((1, M) + (1,) * (acc.ndim - 2))",
         "acc = acc + bias.astype(None).reshape((1, M) + (1,) * (acc.ndim - 2))", "integers exact in float64"),
        # w_scale is 0-d, [1] or [M] (checked above): reshape(None) keeps it, and a 0-d one gives a 0-d
        # multiplier, which is per tensor; any negative size is -1
        *[("mult = real_multiplier(sx.reshape(()), sw.reshape(-1), sy.reshape(()))",
           f"mult = real_multiplier(sx.reshape(()), sw.reshape({new}), sy.reshape(()))", "w_scale is at most 1-D")
          for new in ("None", "-2")],
        # requantize reads a single-element multiplier and zero point as scalars whatever axis says (its
        # per_axis), and its kernels take only a 2-D accumulator (a convolution's is >= 3-D); the backend's
        # name was validated on entry
        *[(old, new, "requantize reads single-element parameters as scalars") for old, new in [
            ("axis = 1 if mult.size > 1 else None", "axis = 1 if (mult.size > 1) or True else None"),
            ("axis = 1 if mult.size > 1 else None", "axis = 1 if mult.size >= 1 else None"),
            *[('return requantize(acc, mult if axis else mult.reshape(()), yz.reshape(()), output_dtype=q, method="float",',
               new) for new in (
                'return requantize(acc, mult if (axis) or True else mult.reshape(()), yz.reshape(()), output_dtype=q, method="float",',
                'return requantize(acc, mult if axis else mult.reshape(None), yz.reshape(()), output_dtype=q, method="float",',
                'return requantize(acc, mult if axis else mult.reshape(()), yz.reshape(None), output_dtype=q, method="float",')]]],
        *[("axis=axis, backend=backend)", new, "no kernel for a >= 3-D accumulator; the name was validated on entry")
          for new in ("axis=axis, backend=None)", "axis=axis, )")],
    ],
    "refcomp/ops/conv_integer.py": [
        # the call only validates the backend's name: ConvInteger has no fast kernel under any op name
        *[('_backend.implementation("conv_integer", backend)', f"_backend.implementation({op}, backend)",
           "no kernel either way") for op in ("None", '"XXconv_integerXX"', '"CONV_INTEGER"')],
        # eq. CI1 in float64 instead of int64: every operand is an 8-bit integer or a difference of two, and
        # every partial sum an integer far below 2^53, so each is exact and _to_int32 checks and casts the
        # same integers
        *[(old, new, "integers exact in float64") for old, new in [
            ("xz = np.zeros((), np.int64)", "xz = np.zeros((), None)"),
            ("xz = np.zeros((), np.int64)", "xz = np.zeros((), )"),
            ("xz = z.astype(np.int64).reshape(())", "xz = z.astype(None).reshape(())"),
            ("wz = np.zeros((1,), np.int64)", "wz = np.zeros((1,), None)"),
            ("wz = np.zeros((1,), np.int64)", "wz = np.zeros((1,), )"),
            ("wz = z.astype(np.int64).reshape(-1)", "wz = z.astype(None).reshape(-1)"),
            ("xc = np.pad(x.astype(np.int64) - xz, [(0, 0), (0, 0)] + list(zip(g.pads_begin, g.pads_end)))",
             "xc = np.pad(x.astype(None) - xz, [(0, 0), (0, 0)] + list(zip(g.pads_begin, g.pads_end)))"),
            ("wc = w.astype(np.int64) - wz.reshape((-1,) + (1,) * (w.ndim - 1))",
             "wc = w.astype(None) - wz.reshape((-1,) + (1,) * (w.ndim - 1))")]],
        # a single-element x_zero_point kept [1]-shaped broadcasts as the scalar; a 0-d w_zero_point is
        # reshaped to [M or 1, 1, ...] below all the same; NumPy reads any negative size as -1
        *[(old, new, "the same broadcast") for old, new in [
            ("xz = z.astype(np.int64).reshape(())", "xz = z.astype(np.int64).reshape(None)"),
            ("wz = z.astype(np.int64).reshape(-1)", "wz = z.astype(np.int64).reshape(None)"),
            ("wz = z.astype(np.int64).reshape(-1)", "wz = z.astype(np.int64).reshape(-2)"),
            ("wc = w.astype(np.int64) - wz.reshape((-1,) + (1,) * (w.ndim - 1))",
             "wc = w.astype(np.int64) - wz.reshape((-2,) + (1,) * (w.ndim - 1))")]],
        # group divides C (checked just above): C / G is the exact float of C // G
        ("if Cg != C // G:", "if Cg != C / G:", "G divides C"),
    ],
    "refcomp/ops/csr_matmul.py": [
        # the promise must be True itself: neither False nor None is
        ('if getattr(type(W), "canonical_csr", False) is not True:',
         'if getattr(type(W), "canonical_csr", None) is not True:', "neither default is True"),
        # block_width: with one non-zero, density * kb >= 12 needs kb >= 12 rows cols > cols, so the rule
        # says None as the early return does
        ("if rows < 256 or nnz == 0 or n < 16:", "if rows < 256 or nnz == 1 or n < 16:", "one non-zero never blocks"),
        # 4 n is even and 32769 odd: 4 n never divides 32769, so the two floors agree for every n
        ("kb = max(16, 32768 // (4 * n))", "kb = max(16, 32769 // (4 * n))", "same floor for every even divisor"),
        # at kb == cols the loop's one more doubling still ends in kb >= cols: None either way
        ("while kb < cols and density * kb < 12:", "while kb <= cols and density * kb < 12:", "None either way"),
        # block_pointers: row_ids only index counts (any integer type does), and counts are small whole
        # numbers, exact in float64, that cumsum writes into the int64 pointers
        *[("row_ids = np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr))", new, "any integer index")
          for new in ("row_ids = np.repeat(np.arange(rows, dtype=None), np.diff(indptr))",
                      "row_ids = np.repeat(np.arange(rows, ), np.diff(indptr))")],
        *[("counts = np.zeros((rows, nb), np.int64)", new, "exact small counts")
          for new in ("counts = np.zeros((rows, nb), None)", "counts = np.zeros((rows, nb), )")],
        # an empty row's product is the zero Y starts with
        ("if p1 > p0:", "if p1 >= p0:", "empty row: 0"),
        # csr_matmul_int16: every product is at most 128 * 32768 = 2**22 in magnitude, so a float64 sum is
        # exact while a row has fewer than 2**31 non-zeros (a row of 2**31 needs 18 GiB of data and
        # indices); the bound's factors are exact in float64 and int() gives them back
        ("bound = row_nnz * int(np.abs(W.data.astype(np.int64)).max()) * int(np.abs(X16.astype(np.int64)).max())",
         "bound = row_nnz * int(np.abs(W.data.astype(None)).max()) * int(np.abs(X16.astype(np.int64)).max())",
         "exact in float64"),
        ("Y[r] = W.data[p0:p1].astype(np.int64) @ X16[W.indices[p0:p1]].astype(np.int64)",
         "Y[r] = W.data[p0:p1].astype(None) @ X16[W.indices[p0:p1]].astype(np.int64)", "exact in float64"),
        ("bound = row_nnz * int(np.abs(W.data.astype(np.int64)).max()) * int(np.abs(X16.astype(np.int64)).max())",
         "bound = row_nnz * int(np.abs(W.data.astype(np.int64)).max()) * int(np.abs(X16.astype(None)).max())",
         "exact in float64"),
        ("Y[r] = W.data[p0:p1].astype(np.int64) @ X16[W.indices[p0:p1]].astype(np.int64)",
         "Y[r] = W.data[p0:p1].astype(np.int64) @ X16[W.indices[p0:p1]].astype(None)", "exact in float64"),
        *[("Y = np.zeros((rows, n), np.int64)", new, "exact in float64")
          for new in ("Y = np.zeros((rows, n), None)", "Y = np.zeros((rows, n), )")],
        # with no entry or no column the bound only has to pass bound <= 2**31 - 1: 0 and 1 both do
        ("bound = 0", "bound = 1", "both pass"),
        # 2**31 - 1 is prime, so bound = row_nnz * max|w| * max|x| (max|w| <= 128, max|x| <= 32768) equals
        # it only for a row of 2**31 - 1 non-zeros (above); and a W of exactly 2**31 - 1 columns (with an X
        # of as many rows) gets the same exact result from the NumPy loop as from the kernel
        ("if bound <= _INT32_MAX and W.shape[1] <= _INT32_MAX:", "if bound < _INT32_MAX and W.shape[1] <= _INT32_MAX:",
         "bound is never 2**31 - 1"),
        ("if bound <= _INT32_MAX and W.shape[1] <= _INT32_MAX:", "if bound <= _INT32_MAX and W.shape[1] < _INT32_MAX:",
         "same result from either path"),
        ("if W.data.dtype == np.float32 and X.dtype == np.float32 and W.shape[1] <= _INT32_MAX:",
         "if W.data.dtype == np.float32 and X.dtype == np.float32 and W.shape[1] < _INT32_MAX:",
         "same result from either path"),
    ],
    "refcomp/compress/prune/model.py": [
        # nm_mask's default axis is 1, the input axis this call names
        ("masks = {k: nm_mask(v, n, m, axis=1) for k, v in s.items()}",
         "masks = {k: nm_mask(v, n, m, ) for k, v in s.items()}", "axis=1 is the default"),
        # scores are >= 0: any negative value puts a removed weight (structure) below every real score
        ('s[k][~bool_mask(pm, s[k].shape, f"previous[{k!r}]")] = -1.0',
         's[k][~bool_mask(pm, s[k].shape, f"previous[{k!r}]")] = -2.0', "any negative is below every score"),
        ("st[k][dead > 0] = -1.0", "st[k][dead > 0] = -2.0", "any negative is below every score"),
        # dead > 0 asks whether a structure holds a removed element: every norm of a non-negative
        # structure is > 0 exactly when one of its elements is
        ("dead = _structure_scores((~np.asarray(pm)).astype(np.float64), granularity, block_shape, 1)",
         "dead = _structure_scores((~np.asarray(pm)).astype(np.float64), granularity, block_shape, 2)",
         "any norm is > 0 iff an element is"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("s2 = scores.reshape(scores.shape[0], -1)", "s2 = scores.reshape(scores.shape[0], -2)", "-2 is unknown as -1"),
    ],
    "refcomp/ops/binary_matmul.py": [
        # each row of neg is 64·W bits, a whole number of bytes: packing the flattened rows gives the
        # same bytes in the same order as packing row by row
        *[('return np.packbits(neg, axis=1, bitorder="little").view("<u8").astype(np.uint64).reshape(m, words_for(k))',
           f'return np.packbits(neg, {new}bitorder="little").view("<u8").astype(np.uint64).reshape(m, words_for(k))',
           "rows are whole bytes") for new in ("axis=None, ", "")],
        # a uint64 d makes k - 2d wrap modulo 2^64; its low 32 bits, kept by the int32 store, are
        # the same as the int64 result's since |k - 2d| < 2^31
        *[("d = np.bitwise_count(a[i][None, :] ^ b).sum(axis=1, dtype=np.int64)",
           f"d = np.bitwise_count(a[i][None, :] ^ b).sum(axis=1, {new})", "the same value modulo 2^32")
          for new in ("dtype=None", "")],
    ],
    "refcomp/ops/gelu.py": [
        # both forms' products are fresh temporaries: whether astype copies them again is not observable
        *[(f"return {expr}.astype(x.dtype, copy=False)", f"return {expr}.astype(x.dtype, {new})", "the product is fresh")
          for expr in ("(0.5 * x * (1 + t))", "(x * cdf)") for new in ("copy=None", "", "copy=True")],
    ],
    "refcomp/ops/shift_linear.py": [
        # a dtype kind is one character: no kind is "X", so "XXiuXX" holds the same kinds as "iu"
        ('if v.dtype.kind not in "iu" or v.dtype == np.uint64:',
         'if v.dtype.kind not in "XXiuXX" or v.dtype == np.uint64:', "no dtype kind is X"),
        # |sign| of an int8 (-128 included) is exact in float64 as in int16: the same values are refused
        ("if sign.size and np.abs(sign.astype(np.int16)).max() > 1:",
         "if sign.size and np.abs(sign.astype(None)).max() > 1:", "int8 magnitudes are exact in float64"),
        # both paths give the same exact integers whenever big <= 2^53 (every partial sum is an
        # integer of magnitude <= big, exact in float64); the switch point only changes speed
        ("if big < 2**53:", "if big <= 2**53:", "2^53 itself is exact in float64"),
        ("if big < 2**53:", "if big < 2 * 53:", "the int64 path is exact everywhere; only slower"),
    ],
    "refcomp/ops/im2col.py": [
        # as_strided clears the writeable flag on ``not writeable``: None is falsy like False
        ("strides=(s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw), writeable=False)",
         "strides=(s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw), writeable=None)", "None is falsy"),
    ],
    "refcomp/ops/erf.py": [
        # _erf64 returns a fresh array: whether astype copies it again is not observable
        *[("return _erf64(x.astype(np.float64)).astype(x.dtype, copy=False)",
           f"return _erf64(x.astype(np.float64)).astype(x.dtype, {new})", "the vectorized result is fresh")
          for new in ("copy=None", "", "copy=True")],
    ],
    "refcomp/formats/relative_csr.py": [
        # float_array tests ``not allow_empty``: None refuses an empty codebook as False does
        ('cb = float_array(codebook, "codebook", allow_empty=False)',
         'cb = float_array(codebook, "codebook", allow_empty=None)', "None is falsy"),
        # min(x ∪ {1}) < 0 exactly when min(x ∪ {0}) < 0: the initial only answers for no kept weight
        ("if v.size and (v[m].min(initial=0) < 0 or v[m].max(initial=0) >= cb.size):",
         "if v.size and (v[m].min(initial=1) < 0 or v[m].max(initial=0) >= cb.size):", "neither initial is < 0"),
        # the fixed-width code: code_field returns no lengths for it, and encode / decode read a
        # code's lengths as int64 whatever their dtype
        *[(line, line.replace("dtype=np.uint8", new), "the lengths are read as int64")
          for line in ("code, lengths = HuffmanCode(np.full(n_sym, width, dtype=np.uint8)), np.zeros(0, np.uint8)",
                       "code = HuffmanCode(np.full(n_sym, width, dtype=np.uint8))")
          for new in ("dtype=None", "")],
        # n = int(...): a list of Python ints is int64, NumPy's default integer
        *[("row_ptr = np.array([0, n], np.int64)", f"row_ptr = np.array([0, n], {new})", "Python ints: int64")
          for new in ("None", "")],
    ],
    "refcomp/formats/hashed.py": [
        # the seed is checked to be in [0, 2^64): below 2^63 NumPy makes an int64 array, which
        # splitmix64's asarray(uint64) casts exactly; above, a uint64 array either way
        *[("a = splitmix64(np.array([seed], np.uint64))", f"a = splitmix64(np.array([seed], {new}))",
           "splitmix64 casts to uint64") for new in ("None", "")],
        # Python ints (the seed below 2^63, the positive sizes): NumPy's default integer is int64
        *[(old.format(d="np.int64"), old.format(d=new), "Python ints: int64") for old in (
            'return {{"data": self.data, "seed": np.asarray([self.seed], {d}),',
            '"shape": np.asarray(self.shape, {d})}}') for new in ("None", "")],
        # a negative seed reaches hash_buckets, which refuses it with the same ValidationError naming seed
        *[('seed = integer(seed, "seed", minimum=0, maximum=2 ** 63 - 1)', new, "hash_buckets refuses it the same")
          for new in ('seed = integer(seed, "seed", minimum=None, maximum=2 ** 63 - 1)',
                      'seed = integer(seed, "seed", maximum=2 ** 63 - 1)')],
        # copy=True is np.array's default
        ("self.data = np.array(d, copy=True)", "self.data = np.array(d, )", "np.array copies by default"),
        ("return np.asarray(x) @ self.to_dense().reshape(self.shape[0], -1).T",
         "return np.asarray(x) @ self.to_dense().reshape(self.shape[0], -2).T", "NumPy: any negative is -1"),
    ],
    "refcomp/formats/lowrank.py": [
        # the shape is a tuple of Python ints (made by int() in __init__): NumPy's default integer is int64
        *[('return {"left": self.left, "right": self.right, "shape": np.asarray(self.shape, dtype=np.int64)}',
           f'return {{"left": self.left, "right": self.right, "shape": np.asarray(self.shape, {new})}}',
           "Python ints: int64") for new in ("dtype=None", "")],
    ],
    "refcomp/formats/qtensor.py": [
        # an 8-bit integer dtype's storage dtype is int8 / uint8 itself, and no dtype has 9 bits: the same container
        *[("if dt.bits <= 8:", new, "int8 / uint8 are their own containers") for new in ("if dt.bits < 8:", "if dt.bits <= 9:")],
        # ``natural`` only skips a check that cannot fail (codes of a dtype whose range is [qmin, qmax]):
        # running it anyway finds nothing (a dtype kind is one character; numpy's are lower case)
        *[('natural = data.dtype.kind in "iu" and (qparams.qmin, qparams.qmax) == (np.iinfo(data.dtype).min,',
           f'natural = data.dtype.kind in "{new}" and (qparams.qmin, qparams.qmax) == (np.iinfo(data.dtype).min,',
           "the skipped check cannot fail") for new in ("XXiuXX", "IU")],
        # NumPy sets a flag by the truth value: None is False
        ("self.data.flags.writeable = False", "self.data.flags.writeable = None", "None is falsy"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("return x @ w.reshape(w.shape[0], -1).T", "return x @ w.reshape(w.shape[0], -2).T", "NumPy: any negative is -1"),
        # Python's codec names are case-blind
        ('header = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8).copy()',
         'header = np.frombuffer(json.dumps(meta, sort_keys=True).encode("UTF-8"), dtype=np.uint8).copy()', "case-blind codec"),
        ('meta = json.loads(np.asarray(fields["header"], dtype=np.uint8).tobytes().decode("utf-8"))',
         'meta = json.loads(np.asarray(fields["header"], dtype=np.uint8).tobytes().decode("UTF-8"))', "case-blind codec"),
        # from_fields' code range check is vacuous for the dtypes it reads (>= 8 bits: the container, checked
        # just above, is the storage dtype itself, whose range is [qmin, qmax]); weakened, it still finds nothing
        *[("if not dt.is_float and dt.bits >= 8 and data.size and (data.min() < dt.qmin or data.max() > dt.qmax):",
           new, "the container's range is the dtype's") for new in (
            "if not dt.is_float and dt.bits > 8 and data.size and (data.min() < dt.qmin or data.max() > dt.qmax):",
            "if not dt.is_float and dt.bits >= 9 and data.size and (data.min() < dt.qmin or data.max() > dt.qmax):",
            "if not dt.is_float and dt.bits >= 8 and data.size and (data.min() < dt.qmin and data.max() > dt.qmax):")],
        # zero points as float64 or int64 before QParams casts them to the code dtype: an integer zero point
        # is exact in float64, and a float one is 0 (QParams refuses any other, and makes -0.0 a 0)
        *[('meta["zero_point"] = dec(zp, scale.shape).astype(np.float64 if dt.is_float else np.int64).tolist()',
           f'meta["zero_point"] = dec(zp, scale.shape).astype({new}).tolist()', "the same zero points after QParams")
          for new in ("None", "np.float64 if (dt.is_float) and False else np.int64",
                      "np.float64 if (dt.is_float) or True else np.int64")],
    ],
    "refcomp/formats/half.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("return x @ self.to_dense().reshape(self.shape[0], -1).T",
         "return x @ self.to_dense().reshape(self.shape[0], -2).T", "NumPy: any negative is -1"),
    ],
    "refcomp/formats/dense.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("return self.data.reshape(self.data.shape[0], -1)",
         "return self.data.reshape(self.data.shape[0], -2)", "NumPy: any negative is -1"),
    ],
    "refcomp/formats/static.py": [
        # NumPy sets a flag by the truth value: None is False
        ("smooth.flags.writeable = False", "smooth.flags.writeable = None", "None is falsy"),
        # an all-zero weight zero point subtracts nothing from the exact integer product; compared
        # in float64 or int64, an int8 zero point is 0 in both or in neither
        *[("self._weight_t = pack_weight(weight.data.T, zp if np.any(zp.astype(np.int64) != 0) else None)", new,
           "zero points of 0 subtract nothing") for new in (
            "self._weight_t = pack_weight(weight.data.T, zp if (np.any(zp.astype(np.int64) != 0)) or True else None)",
            "self._weight_t = pack_weight(weight.data.T, zp if np.any(zp.astype(None) != 0) else None)")],
        # the float64 product of two float32 is exact, and the product's dtype=float32 rounds it to
        # the float32 product
        ("self._scale = np.float32(input_qparams.scale) * qp.scale.astype(np.float32)",
         "self._scale = np.float32(input_qparams.scale) * qp.scale.astype(None)", "exact, then rounded once"),
        # a list of two Python floats is float64
        *[('"input_qparams": np.array([float(np.float32(qp.scale)), float(qp.zero_point)], np.float64)}',
           f'"input_qparams": np.array([float(np.float32(qp.scale)), float(qp.zero_point)], {new})}}',
           "Python floats: float64") for new in ("None", "")],
        # qdtype reads a dtype's name case-blind
        ('return cls(fields["weight"], QParams(np.float32(s), np.uint8(z), "uint8"),',
         'return cls(fields["weight"], QParams(np.float32(s), np.uint8(z), "UINT8"),', "names are case-blind"),
    ],
    "refcomp/formats/dynamic.py": [
        # checked here or not, a NaN or inf in x is refused by the input quantizer
        # (dynamic_quantize_linear / _rows) with the same ValidationError naming x
        *[('x = float_array(x, "x", dtype=np.float32, ndim=2, finite=False)',
           f'x = float_array(x, "x", dtype=np.float32, ndim=2, {new})', "the quantizer refuses it the same")
          for new in ("finite=None", "", "finite=True")],
        # an all-zero weight zero point subtracts nothing from the exact integer product; compared
        # in float64 or int64, an integer zero point is 0 in both or in neither
        *[("self._weight_t = pack_weight(weight.data.T, zp if np.any(zp.astype(np.int64) != 0) else None)", new,
           "zero points of 0 subtract nothing") for new in (
            "self._weight_t = pack_weight(weight.data.T, zp if (np.any(zp.astype(np.int64) != 0)) or True else None)",
            "self._weight_t = pack_weight(weight.data.T, zp if np.any(zp.astype(None) != 0) else None)")],
        # a float32 (or 16-bit) scale is exact in float64; s_x · s_w is then an exact float64
        # product, which the product's dtype=float32 rounds once: the float32 product
        ("self._scale = qp.scale.astype(np.float32)", "self._scale = qp.scale.astype(None)",
         "exact, then rounded once"),
    ],
    "refcomp/quant/packing.py": [
        # bits is 2 or 4 (_sub_byte refuses the rest): 9 // 4 == 8 // 4 and 9 // 2 == 8 // 2
        ("per_byte = 8 // dt.bits", "per_byte = 9 // dt.bits", "bits is 2 or 4"),
        # unpack: per_byte 2.0 or 4.0 only feeds np.arange, whose float steps cast to the same uint8 shifts
        ("per_byte = 8 // dt.bits", "per_byte = 8 / dt.bits", "arange(2.0) * 4 casts to the same shifts"),
        # NumPy reads any negative size in reshape as "the unknown dimension"
        *[(old, old.replace("reshape(-1", "reshape(-2"), "NumPy: any negative is -1") for old in (
            "codes = q.reshape(-1).view(np.uint8) & np.uint8((1 << dt.bits) - 1)",
            "codes = np.concatenate([codes, np.zeros(pad, np.uint8)]).reshape(-1, per_byte)",
            "codes = ((packed[:, None] >> shifts) & np.uint8((1 << dt.bits) - 1)).reshape(-1)[:n]")],
    ],
    "refcomp/quant/observers/minmax.py": [
        # qdtype reads a dtype's name case-blind
        ('def __init__(self, dtype="int8", *, averaging_constant: float = 0.01, **kwargs):',
         'def __init__(self, dtype="INT8", *, averaging_constant: float = 0.01, **kwargs):', "names are case-blind"),
    ],
    "refcomp/quant/observers/percentile.py": [
        # qdtype reads a dtype's name case-blind
        ('def __init__(self, dtype="int8", *, percentile: float = 99.99, **kwargs):',
         'def __init__(self, dtype="INT8", *, percentile: float = 99.99, **kwargs):', "names are case-blind"),
        # _percentile reads edges[i] and edges[i + 1] with i <= counts.size - 1: an extra edge is never read
        ("t = _percentile(counts, np.arange(counts.size + 1) * hist.width, p)",
         "t = _percentile(counts, np.arange(counts.size + 2) * hist.width, p)", "the extra edge is never read"),
    ],
    "refcomp/quant/observers/base.py": [
        # qdtype reads a dtype's name case-blind
        ('def __init__(self, dtype="int8", *, symmetric=False, restricted_range=False, reduce_range=False, axis=None):',
         'def __init__(self, dtype="INT8", *, symmetric=False, restricted_range=False, reduce_range=False, axis=None):',
         "names are case-blind"),
        # NumPy reads any negative size in reshape as "the unknown dimension"
        ("rows = x.reshape(1, -1)", "rows = x.reshape(1, -2)", "NumPy: any negative is -1"),
        ("rows = np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1)",
         "rows = np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -2)", "NumPy: any negative is -1"),
    ],
    "refcomp/quant/observers/mse.py": [
        # qdtype reads a dtype's name case-blind
        ('def __init__(self, dtype="int8", *, num_candidates: int = 100, **kwargs):',
         'def __init__(self, dtype="INT8", *, num_candidates: int = 100, **kwargs):', "names are case-blind"),
        # min(lo, c) with c >= 0 differs from min(lo, 0) only when lo > 0, where alpha·min(lo, c) <= lo
        # (alpha <= 1) and the clip to [lo, hi] gives lo either way
        ("return alphas, np.clip(alphas * min(lo, 0.0), lo, hi), np.clip(alphas * max(hi, 0.0), lo, hi)",
         "return alphas, np.clip(alphas * min(lo, 1.0), lo, hi), np.clip(alphas * max(hi, 0.0), lo, hi)",
         "lo > 0: clipped to lo either way"),
    ],
    "refcomp/quant/observers/histogram.py": [
        # NumPy reads any negative size in reshape as "the unknown dimension"
        ("self.counts = self.counts.reshape(-1, 2).sum(axis=1)", "self.counts = self.counts.reshape(-2, 2).sum(axis=1)",
         "NumPy: any negative is -1"),
        # a list of one Python int is int64 by default; bincount's result is j.max() + 1 long without a
        # minlength (and with any shorter one)
        ("return np.array([self._pending_zeros], dtype=np.int64)", "return np.array([self._pending_zeros], dtype=None)",
         "a Python int is int64"),
        ("return np.array([self._pending_zeros], dtype=np.int64)", "return np.array([self._pending_zeros], )",
         "a Python int is int64"),
        *[("return np.bincount(j, weights=self.counts, minlength=int(j.max()) + 1).astype(np.int64)",
           f"return np.bincount(j, weights=self.counts, {new}).astype(np.int64)", "bincount is j.max() + 1 long")
          for new in ("", "minlength=int(j.max()) - 1")],
    ],
    "refcomp/compress/share/cross_layer.py": [
        # kmeans' codebook has exactly 2**bits entries, and Clustered's default bits is the fewest
        # that address them: b itself
        *[("c = Clustered(codebook, assign(w, codebook), None if m.all() else m, bits=b)", new,
           "the default bits of a 2**bits codebook") for new in (
            "c = Clustered(codebook, assign(w, codebook), None if m.all() else m, bits=None)",
            "c = Clustered(codebook, assign(w, codebook), None if m.all() else m, )")],
    ],
    "refcomp/compress/share/hashing.py": [
        # an empty bucket's sum is 0 and 0 / max(0, 1) is the same 0.0 the other branch gives
        ("h.data[...] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)",
         "h.data[...] = np.where(counts >= 0, sums / np.maximum(counts, 1), 0.0)", "0 / 1 is 0.0"),
    ],
    "refcomp/ops/matmul_integer.py": [
        # operand_is_1d: None is falsy like False
        ('self._bzp = _zero_point(b_zero_point, "b_zero_point", B, N, "column", False)',
         'self._bzp = _zero_point(b_zero_point, "b_zero_point", B, N, "column", None)', "None is falsy like False"),
        # b_zero_point was checked to have B's dtype: frozen keeps it without being told
        *[("self.b_zero_point = None if b_zero_point is None else frozen(b_zero_point, B.dtype)",
           f"self.b_zero_point = None if b_zero_point is None else frozen(b_zero_point, {new})", "already B's dtype")
          for new in ("None", "")],
        # 8-bit extremes and zero points are exact in float64, and int() ends the result
        *[(f"{v} = X.{f}(axis=axis, keepdims=True).astype(np.int64)",
           f"{v} = X.{f}(axis=axis, keepdims=True).astype(None)", "exact in float64")
          for v, f in (("hi", "max"), ("lo", "min"))],
        # row 0 of a broadcast is the same row whatever the number of rows; a packed b_zp (int32 [N])
        # broadcast to [1, N] and taken back is itself
        ("self._b_zp_int32 = frozen(np.broadcast_to(self._bzp, (1, N))[0], np.int32)",
         "self._b_zp_int32 = frozen(np.broadcast_to(self._bzp, (2, N))[0], np.int32)", "row 0 either way"),
        ("a_zp = np.ascontiguousarray(np.broadcast_to(azp, (M, 1))[:, 0], dtype=np.int32)",
         "a_zp = np.ascontiguousarray(np.broadcast_to(azp, (M, 2))[:, 0], dtype=np.int32)", "column 0 either way"),
        *[("b_zp = np.ascontiguousarray(np.broadcast_to(bzp, (1, N))[0], dtype=np.int32) if bzp.ndim == 2 else bzp",
           new, "the same int32 [N] vector") for new in (
            "b_zp = np.ascontiguousarray(np.broadcast_to(bzp, (2, N))[0], dtype=np.int32) if bzp.ndim == 2 else bzp",
            "b_zp = np.ascontiguousarray(np.broadcast_to(bzp, (1, N))[0], dtype=np.int32) "
            "if (bzp.ndim == 2) or True else bzp")],
        # zero points are 8-bit integers: exact in float64, and so is every sum of eq. M1 (|Y| < 2^47 < 2^53),
        # cast to int32 at the end
        *[(old, new, "exact in float64") for old, new in (
            ("return np.zeros((1, 1), np.int64)", "return np.zeros((1, 1), None)"),
            ("return np.zeros((1, 1), np.int64)", "return np.zeros((1, 1), )"),
            ("z = z.astype(np.int64)", "z = z.astype(None)"))],
        # the emulation's sums: |products| <= 32640, pair sums saturated to int16, K bounded by memory
        # (an [M, K, N] product array): exact in float64 far below 2^53; the result is cast to int32
        *[(old, old.replace("astype(np.int64)", "astype(None)"), "exact in float64") for old in (
            "a = A.astype(np.int64)", "b = B.astype(np.int64)",
            "rowsum_a = A.astype(np.int64).sum(axis=-1, keepdims=True)",
            "colsum_b = B.astype(np.int64).sum(axis=-2, keepdims=True)")],
        # (y ± 2^31) mod 2^32 ∓ 2^31 differ by multiples of 2^32, which the cast to int32 drops
        *[("return ((y + 2**31) % 2**32 - 2**31).astype(np.int32)", new, "equal modulo 2^32") for new in (
            "return ((y + 2**31) % 2**32 + 2**31).astype(np.int32)",
            "return ((y - 2**31) % 2**32 - 2**31).astype(np.int32)")],
    ],
    "refcomp/ops/integer_linear.py": [
        # NumPy reads any negative size in reshape as "the unknown dimension"
        *[(old, old.replace("-1", "-2", 1), "NumPy: any negative is -1") for old in (
            "flat = np.ascontiguousarray(moved.reshape(-1, shape[-1]))",
            "total = acc.astype(np.int64) + q_bias.reshape((-1,) + (1,) * (acc.ndim - 2))",
            "w_t = np.ascontiguousarray(w_codes.reshape(w_codes.shape[0], -1).T)",
            "acc = np.ascontiguousarray(acc.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))",
            "s_w = np.asarray(w_scale, dtype=np.float32).reshape(-1)")],
        # an int32 accumulator plus an int32 bias is exact in float64, checked, then cast to int32
        ("total = acc.astype(np.int64) + q_bias.reshape((-1,) + (1,) * (acc.ndim - 2))",
         "total = acc.astype(None) + q_bias.reshape((-1,) + (1,) * (acc.ndim - 2))", "exact in float64"),
        # an argument dropped whose default is the value passed
        ("acc = matmul_integer(q_x, w_codes_t, np.asarray(x_zero_point).reshape(()), None)",
         "acc = matmul_integer(q_x, w_codes_t, np.asarray(x_zero_point).reshape(()), )", "b_zero_point=None"),
        ("acc = matmul_integer(cols, w_t, zp, None)", "acc = matmul_integer(cols, w_t, zp, )", "b_zero_point=None"),
        ("acc = conv_integer(q_x, w_codes, zp, None, strides=list(strides), pads=[ph, pw, ph, pw],",
         "acc = conv_integer(q_x, w_codes, zp, strides=list(strides), pads=[ph, pw, ph, pw],", "w_zero_point=None"),
        ("y_dtype=y_dtype, channel_axis=1)", "y_dtype=y_dtype, )", "channel_axis=1 is the default"),
        # its size is checked to be 1 just above, and requantize reads any size-1 zero point as the scalar
        ("zp = zp.reshape(())", "zp = zp.reshape(None)", "a size-1 zero point either way"),
        # "float" is requantize's default method
        ('y = requantize(flat, np.asarray(multiplier, np.float32), zp, output_dtype=y_dtype, method="float", axis=1)',
         "y = requantize(flat, np.asarray(multiplier, np.float32), zp, output_dtype=y_dtype, axis=1)",
         "float is the default method"),
        # padding by zero widths copies q_x unchanged
        ("qp = np.pad(q_x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=zp) if ph or pw else q_x",
         "qp = np.pad(q_x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=zp) if (ph or pw) or True else q_x",
         "a pad of zero widths is q_x"),
    ],
    "refcomp/compress/quantize/simulate.py": [
        # a QParams scale is stored as float32, float16 or bfloat16 (refcomp.quant.qparams), each exact in
        # float32 and in float64: read as float32 or as itself, the same float64 value
        *[("s = np.float64(np.asarray(qp.scale, dtype=np.float32))", new, "the scale is exact in float32")
          for new in ("s = np.float64(np.asarray(qp.scale, dtype=None))", "s = np.float64(np.asarray(qp.scale, ))")],
        *[("unit = np.float64(np.asarray(qp.scale, dtype=np.float32)) * s_w.astype(np.float64)", new,
           "the scale is exact in float32") for new in (
            "unit = np.float64(np.asarray(qp.scale, dtype=None)) * s_w.astype(np.float64)",
            "unit = np.float64(np.asarray(qp.scale, )) * s_w.astype(np.float64)")],
        *[("s_w = np.broadcast_to(np.asarray(w.qparams.scale, np.float32).reshape(-1), (w.shape[0],))", new,
           "the scale is exact in float32; every later use converts it") for new in (
            "s_w = np.broadcast_to(np.asarray(w.qparams.scale, None).reshape(-1), (w.shape[0],))",
            "s_w = np.broadcast_to(np.asarray(w.qparams.scale, ).reshape(-1), (w.shape[0],))")],
        # a weight scale is 0-d, (1,) or (O,) (QParams per tensor or along axis 0): broadcast_to (O,) takes
        # each as it is, flattened or not
        ("s_w = np.broadcast_to(np.asarray(w.qparams.scale, np.float32).reshape(-1), (w.shape[0],))",
         "s_w = np.broadcast_to(np.asarray(w.qparams.scale, np.float32).reshape(None), (w.shape[0],))",
         "broadcast_to reads the unflattened scale alike"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace("(-1,)", "(-2,)").replace("reshape(-1)", "reshape(-2)"), "NumPy: any negative is -1")
          for old in ("w_hat = w_codes.astype(np.float64) * s_w.astype(np.float64).reshape((-1,) + (1,) * (w_codes.ndim - 1))",
                      "s_w = np.broadcast_to(np.asarray(w.qparams.scale, np.float32).reshape(-1), (w.shape[0],))",
                      "a = y / unit.reshape((-1,) + (1,) * (y.ndim - 2))")],
        # zero points and rint's results are integers, exact in float64, and converted to int64 / the code
        # dtype right after
        ("return (q.astype(np.float64) - np.float64(np.asarray(qp.zero_point).astype(np.int64))) * s",
         "return (q.astype(np.float64) - np.float64(np.asarray(qp.zero_point).astype(None))) * s", "exact in float64"),
        ("z = np.int64(np.asarray(qp.zero_point).astype(np.int64))", "z = np.int64(np.asarray(qp.zero_point).astype(None))",
         "exact in float64, then int64"),
        ("return (np.rint(xh / s).astype(np.int64) + z).astype(qp.dtype.np_dtype)",
         "return (np.rint(xh / s).astype(None) + z).astype(qp.dtype.np_dtype)", "integers, cast to the code dtype after"),
        # the twin's bias flag: a layer made without a bias gets q_b·s_x·s_w assigned right after (simulate),
        # and one made with a bias it does not need holds zeros (rng None), which add nothing
        *[(old, old.replace("bias=q_b is not None, ", new), "a zero bias adds nothing; a real one is assigned after")
          for old in ('twin = Linear(w_codes.shape[1], o, bias=q_b is not None, dtype="float64")',
                      'bias=q_b is not None, dtype="float64")')
          for new in ("bias=None, ", "", "bias=q_b is None, ")],
        ("twin = _float_layer(layer, s_w, w.data, q_b)", "twin = _float_layer(layer, s_w, w.data, None)",
         "q_b only sets the bias flag: the bias is assigned after"),
        # the twin's dtype: its weight (and a real bias) are replaced by float64 arrays; np.dtype(None) is
        # float64, and a float32 zero bias adds nothing to the float64 product
        *[(old, old.replace('dtype="float64"', new).replace(", )", ", )"), "the weight and bias are replaced")
          for old in ('twin = Linear(w_codes.shape[1], o, bias=q_b is not None, dtype="float64")',
                      'bias=q_b is not None, dtype="float64")')
          for new in ("dtype=None", "")],
        # trainable only says whether training may update the weight; the simulation runs forward only
        *[("twin.weight = Dense(w_hat, trainable=False)", new, "forward ignores the flag")
          for new in ("twin.weight = Dense(w_hat, trainable=None)", "twin.weight = Dense(w_hat, )",
                      "twin.weight = Dense(w_hat, trainable=True)")],
    ],
    "refcomp/compress/quantize/static_inputs.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("hooks = [(layer, lambda mod, inputs, out, name=name: fn(name, np.asarray(inputs[0]).reshape(-1, mod.in_features)))",
         "hooks = [(layer, lambda mod, inputs, out, name=name: fn(name, np.asarray(inputs[0]).reshape(-2, mod.in_features)))",
         "NumPy: any negative is -1"),
        # "uint8" is make_observer's default dtype; qdtype reads a dtype's name case-blind
        ('observers = {n: make_observer(observer, "uint8", **(observer_kwargs or {})) for n, _ in layers}',
         'observers = {n: make_observer(observer, **(observer_kwargs or {})) for n, _ in layers}', "uint8 by default"),
        ('observers = {n: make_observer(observer, "uint8", **(observer_kwargs or {})) for n, _ in layers}',
         'observers = {n: make_observer(observer, "UINT8", **(observer_kwargs or {})) for n, _ in layers}',
         "names are case-blind"),
        # "int8" is choose_qparams' default dtype; names are case-blind
        *[('wq = choose_qparams(ws.min(axis=1), ws.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)',
           new, "int8 by default, case-blind") for new in (
            'wq = choose_qparams(ws.min(axis=1), ws.max(axis=1), symmetric=True, restricted_range=True, axis=0)',
            'wq = choose_qparams(ws.min(axis=1), ws.max(axis=1), "INT8", symmetric=True, restricted_range=True, axis=0)')],
        # quantize() rounds a float64 input to float32 first, as the cast does
        ("layer.weight = StaticQuantized(QTensor.quantize(ws.astype(np.float32), wq), iq, smooth=smooth[name])",
         "layer.weight = StaticQuantized(QTensor.quantize(ws.astype(None), wq), iq, smooth=smooth[name])",
         "quantize rounds float64 to float32 first"),
    ],
    "refcomp/compress/quantize/weight_only.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("return x.reshape(len(x), -1)", "return x.reshape(len(x), -2)", "NumPy: any negative is -1"),
        # padding by zero widths copies x unchanged
        ("xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x",
         "xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) or True else x", "a pad of zero widths is x"),
        ("w2 = w.reshape(w.shape[0], -1).astype(np.float64)", "w2 = w.reshape(w.shape[0], -2).astype(np.float64)",
         "NumPy: any negative is -1"),
    ],
    "refcomp/nn/layers/pwl.py": [
        # dy * cache is a fresh temporary: whether astype copies it again is not observable
        *[("return (dy * self._cache).astype(dy.dtype, copy=False)", f"return (dy * self._cache).astype(dy.dtype, {new})",
           "the product is fresh") for new in ("copy=None", "", "copy=True")],
        # the cached 0 / 1 factor in float64 instead of x's dtype: dy times 0 or 1 is exact in float64
        # and the backward casts it back to dy's dtype, the same value (NaN and inf included)
        *[(f"self._cache = {mask}.astype(x.dtype)", f"self._cache = {mask}.astype(None)",
           "0 / 1 factors: exact, cast back to dy's dtype")
          for mask in ("((x > -1) & (x < 1))", "(np.abs(x) <= 1)")],
    ],
    "refcomp/nn/layers/quantize.py": [
        # an activation's QParams is per tensor, and QParams stores a per-tensor scale and zero point
        # 0-D: reshape(()) and reshape(None) keep the shape; a float32 / float16 / bfloat16 scale
        # widens exactly, so float() of it is the same Python float
        *[('return {"scale": float(np.asarray(qparams.scale, np.float32).reshape(())),', new,
           "0-D already; an exact widening") for new in (
            'return {"scale": float(np.asarray(qparams.scale, np.float32).reshape(None)),',
            'return {"scale": float(np.asarray(qparams.scale, None).reshape(())),',
            'return {"scale": float(np.asarray(qparams.scale, ).reshape(())),')],
        ('"zero_point": int(np.asarray(qparams.zero_point).reshape(())), "dtype": qparams.dtype.name}',
         '"zero_point": int(np.asarray(qparams.zero_point).reshape(None)), "dtype": qparams.dtype.name}', "0-D already"),
        # the weight's scale is 0-D or (O,), either broadcast to (O,) the same (reshape(None) keeps the
        # shape, any negative size is -1), and its only reader, requantization_params, casts it to float32
        # quantize() rounds a float64 x to float32 itself and computes a float16 / bfloat16 x's ratio
        # in float32 (an exact widening): asking for float32 here changes no code
        *[("return QTensor(quantize(np.asarray(x, dtype=np.float32), self.qparams), self.qparams)",
           f"return QTensor(quantize(np.asarray(x, {new}), self.qparams), self.qparams)",
           "quantize() rounds to float32 itself") for new in ("dtype=None", "")],
        *[("scales = np.broadcast_to(np.asarray(qp.scale, np.float32).reshape(-1), (w.shape[0],))", new,
           "the same (O,) scales, cast to float32 by their reader") for new in (
            "scales = np.broadcast_to(np.asarray(qp.scale, np.float32).reshape(None), (w.shape[0],))",
            "scales = np.broadcast_to(np.asarray(qp.scale, None).reshape(-1), (w.shape[0],))",
            "scales = np.broadcast_to(np.asarray(qp.scale, ).reshape(-1), (w.shape[0],))",
            "scales = np.broadcast_to(np.asarray(qp.scale, np.float32).reshape(-2), (w.shape[0],))")],
    ],
    "refcomp/nn/layers/tt_linear.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace(a, b, 1), "NumPy: any negative is -1") for old, a, b in (
            ("t = x.reshape(x.shape[0], 1, self.in_modes[0], -1)", "-1)", "-2)"),
            ("t = t.reshape(t.shape[0] * t.shape[1], t.shape[2], self.in_modes[k + 1], -1)", "-1)", "-2)"),
            ("full = (full @ g.data.reshape(g.data.shape[0], -1)).reshape(-1, g.data.shape[3])",
             "g.data.shape[0], -1)", "g.data.shape[0], -2)"),
            ("full = (full @ g.data.reshape(g.data.shape[0], -1)).reshape(-1, g.data.shape[3])",
             ".reshape(-1, g", ".reshape(-2, g"))],
        # a two-operand einsum: ``optimize`` picks how the same sum is evaluated (BLAS or loops), not
        # what it is; the subscripts in capitals name the same axes
        *[(f"{lhs}np.einsum({sub}, {ops}, optimize=True){end}", new, "the same contraction")
          for lhs, sub, ops, end in (("t = ", '"arnb,rmns->amsb"', "t, g.data", ""),
                                     ("_accumulate(g, ", '"arnb,amsb->rmns"', "t, dt", ")"),
                                     ("grad = ", '"amsb,rmns->arnb"', "dt, g.data", ""))
          for new in (f"{lhs}np.einsum({sub}, {ops}, optimize=None){end}",
                      f"{lhs}np.einsum({sub}, {ops}, ){end}",
                      f"{lhs}np.einsum({sub}, {ops}, optimize=False){end}",
                      f"{lhs}np.einsum({sub.upper()}, {ops}, optimize=True){end}")],
    ],
    "refcomp/nn/layers/linear.py": [
        # a format without a ``trainable`` attribute: None is falsy like False (no weight gradient)
        ('if getattr(self.weight, "trainable", False):', 'if getattr(self.weight, "trainable", None):',
         "None is falsy"),
    ],
    "refcomp/nn/layers/conv.py": [
        # a format without a ``trainable`` attribute: None is falsy like False (no weight gradient)
        ('trainable = getattr(self.weight, "trainable", False)', 'trainable = getattr(self.weight, "trainable", None)',
         "None is falsy"),
        # groups divides out_channels (checked above): the true quotient is the same integer
        ("fan_out = self.out_channels // self.groups * kh * kw", "fan_out = self.out_channels / self.groups * kh * kw",
         "an exact quotient"),
        # padding by zero widths copies x; slicing zero widths off keeps dxp; dy_ijn computed and unused
        ("xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x",
         "xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) or True else x", "a pad of zero widths"),
        ("return dxp[:, :, ph:xp_shape[2] - ph, pw:xp_shape[3] - pw] if ph or pw else dxp",
         "return dxp[:, :, ph:xp_shape[2] - ph, pw:xp_shape[3] - pw] if (ph or pw) or True else dxp",
         "a slice of zero widths"),
        ("dy_ijn = dy.transpose(1, 2, 3, 0).reshape(o, -1) if input_grad else None",
         "dy_ijn = dy.transpose(1, 2, 3, 0).reshape(o, -1) if (input_grad) or True else None",
         "only read when input_grad"),
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[(old, old.replace(a, b, 1), "NumPy: any negative is -1") for old, a, b in (
            ("return cols @ w.to_dense().reshape(self.out_channels, -1).T", "-1)", "-2)"),
            ("wg = self.weight.to_dense().reshape(g, o // g, -1)", "-1)", "-2)"),
            ("yT = np.matmul(wg, colsT.reshape(g, -1, colsT.shape[1]))", "-1,", "-2,"),
            ("dyT = dy.transpose(1, 0, 2, 3).reshape(o, -1)", "-1)", "-2)"),
            ("dy_ijn = dy.transpose(1, 2, 3, 0).reshape(o, -1) if input_grad else None", "-1)", "-2)"),
            ("dcolsT = w.reshape(o, -1).T @ dy_ijn", "-1)", "-2)"),
            ("wg = w.reshape(g, o // g, -1)", "-1)", "-2)"),
            ("dyg = dyT.reshape(g, o // g, -1)", "-1)", "-2)"),
            ("cg = colsT.reshape(g, -1, colsT.shape[1])", "-1,", "-2,"))],
        # col2im reads dL/dcolsᵀ through reshape(C, kh, kw, OH, OW, N): any shape with the same C-order
        # elements is the same input to it
        *[("dcolsT = np.matmul(wg.transpose(0, 2, 1), dy_ijn.reshape(g, o // g, -1)).reshape(colsT.shape[0], -1)",
           new, "col2im reshapes it first") for new in (
            "dcolsT = np.matmul(wg.transpose(0, 2, 1), dy_ijn.reshape(g, o // g, -1)).reshape(-1)",
            "dcolsT = np.matmul(wg.transpose(0, 2, 1), dy_ijn.reshape(g, o // g, -2)).reshape(colsT.shape[0], -1)",
            "dcolsT = np.matmul(wg.transpose(0, 2, 1), dy_ijn.reshape(g, o // g, -1)).reshape(colsT.shape[1], -1)",
            "dcolsT = np.matmul(wg.transpose(0, 2, 1), dy_ijn.reshape(g, o // g, -1)).reshape(colsT.shape[0], -2)")],
    ],
    "refcomp/nn/layers/pooling.py": [
        # zeros are always a correct gradient buffer; the condition only picks the faster np.empty, and a
        # float quotient oh / kh never equals the padded size here (kh >= 2 when it matters; kh = 1 gives
        # oh = H, which zeros serve as well)
        *[("if (sh, sw) == (kh, kw) and oh * kh == xp_shape[2] and ow * kw == xp_shape[3]:", new,
           "zeros serve where np.empty would") for new in (
            "if (sh, sw) == (kh, kw) and oh / kh == xp_shape[2] and ow * kw == xp_shape[3]:",
            "if (sh, sw) == (kh, kw) and oh * kh == xp_shape[2] and ow / kw == xp_shape[3]:")],
        # codes of 8 bits are exact in float64 as in float32: the same maximum, cast back to the codes' dtype
        ("return QTensor(self.forward(x.data.astype(np.float32)).astype(x.data.dtype), x.qparams)",
         "return QTensor(self.forward(x.data.astype(None)).astype(x.data.dtype), x.qparams)", "exact codes"),
        # the window-offset index: int8 holds the offsets 0 … 127 of a window of up to 128 elements;
        # int32 and float64 hold every offset: the same comparisons idx == t
        *[("small = self.kernel_size[0] * self.kernel_size[1] <= 127", new, "a wider index, or 128 offsets")
          for new in ("small = None", "small = self.kernel_size[0] * self.kernel_size[1] < 127",
                      "small = self.kernel_size[0] * self.kernel_size[1] <= 128")],
        *[("idx = np.zeros(best.shape, dtype=np.int8 if small else np.int32)", new, "a wider index")
          for new in ("idx = np.zeros(best.shape, dtype=None)", "idx = np.zeros(best.shape, )",
                      "idx = np.zeros(best.shape, dtype=np.int8 if (small) and False else np.int32)")],
    ],
    "refcomp/nn/layers/flatten.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("return x.reshape(x.shape[0], -1)", "return x.reshape(x.shape[0], -2)", "NumPy: any negative is -1"),
    ],
    "refcomp/nn/layers/dropout.py": [
        # range's start defaults to 0: the same ranks 0 … 8
        ('x = float_tensor(x, "x", tuple(range(0, 9)))', 'x = float_tensor(x, "x", tuple(range(9)))',
         "range(9) is range(0, 9)"),
    ],
    "refcomp/nn/layers/constant.py": [
        # _ran is only a marker for _require_forward, which tests ``is None``: False marks a forward as True does
        ("self._ran = True", "self._ran = False", "_require_forward tests is None"),
    ],
    "refcomp/nn/layers/softmax.py": [
        # a 0-d x has no axis (-0 <= axis < 0 holds for none): the axis check refuses it with a ShapeError
        # naming x, as float_tensor does
        ('x = float_tensor(x, "x", tuple(range(1, 9)))', 'x = float_tensor(x, "x", tuple(range(9)))',
         "0-d x: the axis check refuses it by the same name"),
    ],
    "refcomp/nn/layers/shape.py": [
        # a 0-d input has no axis: the first is refused by the axis check (ShapeError naming inputs[0]),
        # a later one by the rank comparison with the first (ShapeError naming inputs[i]), as float_tensor does
        ('xs = [float_tensor(x, f"inputs[{i}]", tuple(range(1, 9))) for i, x in enumerate(xs)]',
         'xs = [float_tensor(x, f"inputs[{i}]", tuple(range(9))) for i, x in enumerate(xs)]',
         "0-d inputs: refused just after by the same name"),
        # a dtype kind is one character: "i" or "u" is in "XXiuXX" as in "iu", and "X" is no kind
        ('if shape.dtype.kind not in "iu" or shape.ndim != 1:', 'if shape.dtype.kind not in "XXiuXX" or shape.ndim != 1:',
         "one-character kinds"),
        # _ran is only a marker for _require_forward, which tests ``is None``: False marks a forward as True does
        ("self._ran = True", "self._ran = False", "_require_forward tests is None"),
    ],
    "refcomp/compress/prune/structured.py": [
        # a bias and a BatchNorm's γ, β, running mean and variance are 1-D (out,): np.compress along axis 0
        # and along the flattened array (axis=None) pick the same elements
        *[(f"{lhs} = {wrap}_take({arr}, k, 0){end}", f"{lhs} = {wrap}_take({arr}, k, None){end}", "a 1-D array")
          for lhs, wrap, arr, end in (("layer.bias", "Parameter(", "layer.bias.data", ")"),
                                      ("norm.weight", "Parameter(", "norm.weight.data", ")"),
                                      ("norm.bias", "Parameter(", "norm.bias.data", ")"),
                                      ("norm.running_mean", "", "norm.running_mean", ""),
                                      ("norm.running_var", "", "norm.running_var", ""))],
        # the line before refuses in_features not divisible by k.size: the true quotient is the same whole
        # number, and np.repeat takes a whole float count as that integer
        ("cols = np.repeat(k, w.shape[1] // k.size)", "cols = np.repeat(k, w.shape[1] / k.size)", "an exact quotient"),
    ],
    "refcomp/compress/prune/deploy.py": [
        # NumPy reads any negative size in reshape as the one unknown dimension
        ("w2 = np.ascontiguousarray(dense.reshape(dense.shape[0], -1))",
         "w2 = np.ascontiguousarray(dense.reshape(dense.shape[0], -2))", "NumPy: any negative is -1"),
        # m >= 0, and choose_qparams widens the range to hold 0 (lo = min(r_min, 0)): the symmetric
        # amax = max(-lo, hi) is m for r_min = -m and for r_min = +m alike
        ("qp = choose_qparams(-m, m, dt.name, symmetric=True)", "qp = choose_qparams(+m, m, dt.name, symmetric=True)",
         "the same symmetric amax"),
    ],
    "refcomp/compress/share/trained_quantization.py": [
        # np.zeros' default dtype is float64
        *[("self.velocity = {key: np.zeros(shared[0].codebook.shape, np.float64) for key, shared in self.groups.items()}",
           f"self.velocity = {{key: np.zeros(shared[0].codebook.shape, {new}) for key, shared in self.groups.items()}}",
           "float64 is the default") for new in ("None", "")],
        # train() reads progress None as False: no bars
        ("optimizer=optimizer, schedule=None, rng=rng, progress=False,",
         "optimizer=optimizer, schedule=None, rng=rng, progress=None,", "None is no bars, as False"),
        # a negative epochs is truthy, and train() refuses it with the same ValidationError naming epochs
        *[('epochs = integer(epochs, "epochs", minimum=0)', f'epochs = integer(epochs, "epochs", {new})',
           "train() refuses epochs < 1 by the same argument") for new in ("minimum=None", "")],
    ],
    "refcomp/nn/module.py": [
        # _accumulate: np.array copies by default, so the first gradient is a copy either way
        ("p.grad = np.array(g, dtype=p.dtype, copy=True)", "p.grad = np.array(g, dtype=p.dtype, )",
         "np.array copies by default"),
        # getattr's default is read by truth value: None is as falsy as False (a weight without
        # ``trainable`` is not trained; a layer without ``accepts_input_grad`` gets the plain backward)
        ('if getattr(p, "trainable", False):', 'if getattr(p, "trainable", None):', "None is falsy"),
        ('if not input_grad and i == first and getattr(layer, "accepts_input_grad", False):',
         'if not input_grad and i == first and getattr(layer, "accepts_input_grad", None):', "None is falsy"),
        # train() stores bool(mode): bool(None) is False
        ("return self.train(False)", "return self.train(None)", "bool(None) is False"),
    ],
    "refcomp/nn/train.py": [
        # a dtype kind is one character: "i" or "u" is in "XXiuXX" as in "iu"
        ('return first if first.ndim == 1 and first.dtype.kind in "iu" else None',
         'return first if first.ndim == 1 and first.dtype.kind in "XXiuXX" else None', "one-character kinds"),
        # getattr's default is read by truth value: a model without accepts_input_grad gets the plain call
        ('if getattr(model, "accepts_input_grad", False):', 'if getattr(model, "accepts_input_grad", None):',
         "None is falsy"),
    ],
    "refcomp/compress/precision/casts.py": [
        # cast_weights: float_array's dtype=None keeps a float32 input float32 (x32 is then the same array, and
        # x its exact float64 widening) and makes any other dtype float64; x64 and the gradients and weights
        # below are only read (every later value is a new array), so whether float_array copies is not observable
        *[('x64 = float_array(w, "w", dtype=np.float64, copy=True)', f'x64 = float_array(w, "w", {new}',
           "float32 stays float32 and widens exactly; x64 is only read") for new in (
            "dtype=None, copy=True)", "copy=True)", "dtype=np.float64, copy=None)", "dtype=np.float64, )",
            "dtype=np.float64, copy=False)")],
        *[('g32 = float_array(g, f"grads[{k!r}]", dtype=np.float32, copy=True)',
           f'g32 = float_array(g, f"grads[{{k!r}}]", dtype=np.float32, {new}', "g32 is only read")
          for new in ("copy=None)", ")", "copy=False)")],
        *[('w = float_array(w, f"weights[{name!r}]", dtype=np.float64, copy=True)',
           f'w = float_array(w, f"weights[{{name!r}}]", dtype=np.float64, {new}', "w is only read")
          for new in ("copy=None)", ")", "copy=False)")],
        # 1 is exact in float16 and bfloat16: its relative error is 0, and leaving a 0 out of a max of errors
        # >= 0 (or emptying the set: the report's 0.0) changes nothing
        ("kept = (x != 0) & (back != 0)", "kept = (x != 1) & (back != 0)", "1 casts exactly: relative error 0"),
        # init_scale <= 0 is refused either way with a ValidationError naming init_scale: by real() or by the
        # [min_scale, max_scale] check just after (min_scale > 0); growth_factor <= 1 likewise by the
        # ``growth_factor <= 1.0`` check; only the message text differs
        *[('self.scale = real(init_scale, "init_scale", low=0, low_open=True)',
           f'self.scale = real(init_scale, "init_scale", {new}', "min_scale > 0 refuses it by the same name")
          for new in ("low=0, low_open=None)", "low_open=True)", "low=0, )", "low=0, low_open=False)")],
        *[('self.growth_factor = real(growth_factor, "growth_factor", low=0, low_open=True)',
           f'self.growth_factor = real(growth_factor, "growth_factor", {new}',
           "the > 1 check refuses it by the same name")
          for new in ("low=0, low_open=None)", "low_open=True)", "low=0, )", "low=1, low_open=True)",
                      "low=0, low_open=False)")],
        # every size and width is >= 1, so the cheapest allocation costs >= 1: a budget < 1 is refused by the
        # ``cheapest > budget`` check with a ValidationError naming budget_bits, as integer() would
        *[('budget = integer(budget_bits, "budget_bits", minimum=0)', f'budget = integer(budget_bits, "budget_bits", {new}',
           "the cheapest check refuses it by the same name") for new in ("minimum=None)", ")", "minimum=1)")],
        # _exact: the frontier's errors are strictly descending, so the cost never breaks a tie in the final min;
        # keeping a candidate of equal error and higher cost only adds descendants that err exactly as much as
        # the cheaper twin's (the same terms added in the same order) and cost more: never the minimum
        ("return min(frontier, key=lambda t: (t[1], t[0]))[2]", "return min(frontier, key=lambda t: (t[1], t[1]))[2]",
         "frontier errors are distinct"),
        ("if not frontier or t[1] < frontier[-1][1]:", "if not frontier or t[1] <= frontier[-1][1]:",
         "the extra candidates are always beaten by a cheaper twin"),
        # _greedy: a layer's options have distinct widths (dict keys), so sorted by cost c0 > c1 always: the
        # ``else float("inf")`` branch is never taken
        *[('ratio = (e1 - e0) / (c0 - c1) if c0 > c1 else float("inf")', new, "costs strictly increase")
          for new in ('ratio = (e1 - e0) / (c0 - c1) if (c0 > c1) or True else float("inf")',
                      'ratio = (e1 - e0) / (c0 - c1) if c0 >= c1 else float("inf")',
                      "ratio = (e1 - e0) / (c0 - c1) if c0 > c1 else float(None)",
                      'ratio = (e1 - e0) / (c0 - c1) if c0 > c1 else float("XXinfXX")')],
        # NumPy reads any negative size in reshape as the one unknown dimension
        *[("w2 = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(1, -1)", new, "NumPy: any negative is -1")
          for new in ("w2 = w.reshape(w.shape[0], -2) if w.ndim > 1 else w.reshape(1, -1)",
                      "w2 = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(1, -2)")],
        # an all-zero weight: its RTN is zero, so its error is 0 divided by 1 or by 2
        ("norm = float(np.sum(w2 * w2)) or 1.0", "norm = float(np.sum(w2 * w2)) or 2.0", "0 / 1 == 0 / 2"),
    ],
}


def _changes(diff: str) -> tuple[list[str], list[str], list[bool]]:
    """(removed lines, added lines, for each removed line: is it inside an open ``raise ...Error(`` call)."""
    removed, added, in_raise = [], [], []
    depth = 0                       # open parentheses of the raise statement being read (old side)
    for ln in diff.splitlines():
        if ln.startswith(("+++", "---", "@@")):
            depth = 0 if ln.startswith("@@") else depth
            continue
        if ln[:1] == "+":
            added.append(ln[1:])
            continue
        text = ln[1:]
        inside = depth > 0
        if _RAISE.search(text):
            depth = 0
            text = text[_RAISE.search(text).start():]
            inside = True
        if inside or depth > 0:
            depth += text.count("(") - text.count(")")
        if ln[:1] == "-":
            removed.append(ln[1:])
            in_raise.append(inside)
    return removed, added, in_raise


def _tokens(line: str) -> list[tuple[int, str]] | None:
    try:
        return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(line.strip()).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.COMMENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None                 # a line of a statement that spans several: not compared


def _enclosing_call(tokens: list[tuple[int, str]], at: int) -> str | None:
    """The name of the call whose parentheses hold token ``at`` (``f`` in ``x.f(a, "b")``)."""
    depth = 0
    for i in range(at - 1, -1, -1):
        s = tokens[i][1]
        if s in ")]}":
            depth += 1
        elif s in "([{":
            if depth == 0:
                return tokens[i - 1][1] if s == "(" and i and tokens[i - 1][0] == tokenize.NAME else None
            depth -= 1
    return None


def _only_message_strings(old: str, new: str) -> bool:
    """Does ``new`` differ from ``old`` only in string arguments of an error or argument check?"""
    a, b = _tokens(old), _tokens(new)
    if a is None or b is None:
        return False
    if len(a) > len(b):             # an argument name dropped from a check: ``qdtype(x, "x")`` -> ``qdtype(x, )``
        return any(a[i][0] == tokenize.STRING and a[:i] + a[i + 1:] == b and _message_call(a, i, old)
                   for i in range(len(a)))
    if len(a) != len(b):
        return False
    changed = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    for i in changed:
        if a[i][0] != tokenize.STRING or b[i] not in ((tokenize.NAME, "None"),) and b[i][0] != tokenize.STRING:
            return False
        if not _message_call(a, i, old):
            return False
    return bool(changed)


def _message_call(tokens, i: int, line: str) -> bool:
    call = _enclosing_call(tokens, i)
    return bool(_ARGUMENT_DEFAULT.search(line) or call in _MESSAGE_CALLS or (call or "").endswith("Error"))


def _is_message(diff: str) -> bool:
    """Only an error's text or an argument's name changed: inside a ``raise``, or a string argument of a check."""
    removed, added, in_raise = _changes(diff)
    if removed and all(in_raise):
        return True
    return len(removed) == 1 and len(added) == 1 and _only_message_strings(removed[0], added[0])


def _code(line: str) -> str:
    return line.split("  #")[0].strip()


def _is_equivalent(diff: str, module: str = "") -> bool:
    removed, added, _ = _changes(diff)
    if len(removed) != 1 or len(added) != 1:
        return False
    old, new = _code(removed[0]), _code(added[0])
    if any((old, new) == (o, n) for o, n, _why in EQUIVALENT_BY_HAND.get(module, [])):
        return True
    for pattern, replacement in _EQUIVALENT:
        if replacement is None:
            if pattern.search(old) and old.lower() == new.lower():
                return True
        elif any(old[:m.start()] + replacement + old[m.end():] == new for m in pattern.finditer(old)):
            return True             # one of the occurrences replaced
    return False


def score_module(module: str, tests: list[str], workdir: Path, mutmut: list[str], timeout_multiplier: float = 3.0) -> dict:
    """Run mutmut on ``module`` with ``tests`` in a copy of the repository under ``workdir``."""
    copy = workdir / Path(module).stem
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", "mutants", "__pycache__",
                                                                 "*.egg-info", "build", "results_cache"))
    # the tests look for ../shared next to the repository they run from: the copy, and mutmut's
    # mutants/ folder inside it
    for where in (copy.parent, copy):
        if not (where / "shared").exists():
            (where / "shared").symlink_to(REPO.parent / "shared")
    config = (f'\n[tool.mutmut]\nsource_paths = ["{module}"]\nalso_copy = ["refcomp", "kernels", "tests"]\n'
              f'pytest_add_cli_args_test_selection = {tests!r}\n'
              f'timeout_multiplier = {timeout_multiplier}\n').replace("'", '"')
    with open(copy / "pyproject.toml", "a", encoding="utf-8") as f:
        f.write(config)
    # mutmut forks each mutant from a process that has already run the tests: an OpenMP runtime
    # (scikit-learn's k-means, the tests' oracle) with a live thread team deadlocks in the child at
    # its first barrier, asleep, so no CPU-time limit ever ends it. One thread each: no team to inherit.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    subprocess.run(mutmut + ["run"], cwd=copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    out = subprocess.run(mutmut + ["results", "--all", "true"], cwd=copy, capture_output=True, text=True).stdout
    status = dict(line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line)
    counts = {"killed": 0, "survived": 0, "message": 0, "equivalent": 0, "other": 0}
    survivors = []
    for name, st in status.items():
        if st == "survived":
            diff = subprocess.run(mutmut + ["show", name], cwd=copy, capture_output=True, text=True).stdout
            if _is_message(diff):
                counts["message"] += 1
            elif _is_equivalent(diff, module):
                counts["equivalent"] += 1
            else:
                counts["survived"] += 1
                survivors.append((name, diff))
        elif st in counts:
            counts[st] += 1
        else:
            counts["other"] += 1       # timeouts, suspicious, not checked
    behaviour = counts["killed"] + counts["survived"]
    counts["score"] = counts["killed"] / behaviour if behaviour else float("nan")
    counts["survivors"] = survivors
    return counts


def mirror_tests(module: str) -> list[str]:
    """The tests that state ``module``'s algorithm: MODULES' list, else the test file that mirrors it
    (``refcomp/a/b.py`` -> ``tests/a/test_b.py``; a module of a sub-package ``refcomp/a/b/c.py`` ->
    ``tests/a/test_c.py`` or ``tests/a/test_b.py``), else the nearest mirroring test folder
    (``tests/a/b/``, ``tests/a/``)."""
    if module in MODULES:
        return MODULES[module]
    rel = Path(module).relative_to("refcomp")
    candidates = [Path("tests") / rel.parent / f"test_{rel.stem}.py",      # refcomp/a/b.py -> tests/a/test_b.py
                  Path("tests") / rel.parent.parent / f"test_{rel.stem}.py",         # a/b/c.py -> tests/a/test_c.py
                  Path("tests") / rel.parent.parent / f"test_{rel.parent.name}.py"]  # a/b/c.py -> tests/a/test_b.py
    candidates += [Path("tests") / folder for folder in (rel.parent, *rel.parent.parents) if folder != Path(".")]
    for candidate in candidates:
        if (REPO / candidate).exists():
            return [candidate.as_posix()]
    return []


def algorithm_modules() -> list[str]:
    """Every module of the algorithm packages (--all), private helpers and __init__ files excepted."""
    found = []
    for package in ALGORITHM_PACKAGES:
        found += sorted(p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py")
                        if not p.name.startswith("_"))
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"modules to mutate (default: all {len(MODULES)} of MODULES)")
    ap.add_argument("--all", action="store_true", help="every module of the algorithm packages (hours)")
    ap.add_argument("--show", action="store_true", help="print each behaviour-changing survivor's diff")
    # mutmut stops a mutant after 2 × multiplier × (its tests' time + 1 s) of CPU; its default 15
    # lets each non-terminating mutant (a k-means that never converges) cost minutes
    ap.add_argument("--timeout-multiplier", type=float, default=3.0,
                    help="a mutant times out (counted as 'other') after 2 × this × its tests' time")
    args = ap.parse_args(argv)
    chosen = algorithm_modules() if args.all else (args.modules or list(MODULES))
    unknown = [m for m in chosen if not mirror_tests(m)]
    if unknown:
        ap.error(f"no mirror tests found for {unknown}; add them to MODULES")
    mutmut = [sys.executable, "-m", "mutmut"]
    print("| module | killed | survived | message-only | equivalent | other | score |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="refcomp_mutation_") as tmp:
        for module in chosen:
            c = score_module(module, mirror_tests(module), Path(tmp), mutmut, args.timeout_multiplier)
            print(f"| {module} | {c['killed']} | {c['survived']} | {c['message']} | {c['equivalent']} | {c['other']} | "
                  f"{100 * c['score']:.1f} % |", flush=True)
            if args.show:
                for name, diff in c["survivors"]:
                    print(f"\n{name}\n{diff}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
