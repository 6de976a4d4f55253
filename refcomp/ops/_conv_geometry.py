"""Convolution geometry shared by ConvInteger and QLinearConv (ONNX Conv-11 attribute rules).

For each spatial dimension i, with input size D, kernel size k, dilation d,
stride s and pads (b = pads[i], e = pads[i + n])::

    k_eff = (k - 1) * d + 1                              (dilated kernel extent)
    O     = floor((D + b + e - k_eff) / s) + 1           (eq. C1)

auto_pad decides the pads:

- NOTSET:      the ``pads`` attribute (default all 0);
- VALID:       no padding, O = floor((D - k_eff) / s) + 1;
- SAME_UPPER / SAME_LOWER: O = ceil(D / s), total padding
  P = max(0, (O - 1) * s + k_eff - D), split b = floor(P / 2), e = P - b
  (SAME_UPPER puts the extra pixel at the end) or b = P - floor(P / 2),
  e = floor(P / 2) (SAME_LOWER puts it at the beginning).

Source: ONNX operator spec Conv-11, attributes auto_pad / pads / strides / dilations.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ShapeError, ValidationError

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple  # k per spatial dim
    strides: tuple
    dilations: tuple
    pads_begin: tuple
    pads_end: tuple
    out: tuple  # O per spatial dim (eq. C1)


def _int_list(v, name, n, default):
    if v is None:
        return (default,) * n
    try:
        vals = tuple(int(t) for t in v)
    except (TypeError, ValueError):
        raise ValidationError(name, f"a list of {n} ints", repr(v)) from None
    if any(isinstance(t, bool) for t in v) or any(float(t) != int(t) for t in v):
        raise ValidationError(name, f"a list of {n} ints", repr(v))
    if len(vals) != n:
        raise ValidationError(name, f"a list of {n} ints (one per spatial dimension)", repr(list(v)))
    return vals


def geometry(x_shape, w_shape, *, auto_pad="NOTSET", dilations=None, kernel_shape=None, pads=None,
             strides=None) -> ConvGeometry:
    """Validate the attributes against x [N, C, D1..Dn] and w [M, C/group, k1..kn]; return the geometry."""
    n = len(x_shape) - 2
    kernel = tuple(int(k) for k in w_shape[2:])
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in AUTO_PADS:
        raise ValidationError("auto_pad", f"one of {AUTO_PADS}", repr(auto_pad))
    if kernel_shape is not None and _int_list(kernel_shape, "kernel_shape", n, 1) != kernel:
        raise ShapeError("kernel_shape", f"w.shape[2:] = {list(kernel)}", repr(list(kernel_shape)))
    strides = _int_list(strides, "strides", n, 1)
    dilations = _int_list(dilations, "dilations", n, 1)
    if any(s < 1 for s in strides):
        raise ValidationError("strides", "ints >= 1", repr(list(strides)))
    if any(d < 1 for d in dilations):
        raise ValidationError("dilations", "ints >= 1", repr(list(dilations)))
    if any(k < 1 for k in kernel):
        raise ShapeError("w", "kernel sizes >= 1", f"shape {tuple(w_shape)}")
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    D = tuple(int(t) for t in x_shape[2:])

    if auto_pad == "NOTSET":
        p = _int_list(pads, "pads", 2 * n, 0)
        if any(t < 0 for t in p):
            raise ValidationError("pads", "ints >= 0", repr(list(p)))
        begin, end = p[:n], p[n:]
    elif auto_pad == "VALID":
        begin = end = (0,) * n
    else:
        out = tuple(-(-d // s) for d, s in zip(D, strides))
        total = tuple(max(0, (o - 1) * s + ke - d) for o, s, ke, d in zip(out, strides, k_eff, D))
        if auto_pad == "SAME_UPPER":
            begin = tuple(t // 2 for t in total)
        else:
            begin = tuple(t - t // 2 for t in total)
        end = tuple(t - b for t, b in zip(total, begin))

    out = tuple((d + b + e - ke) // s + 1 for d, b, e, ke, s in zip(D, begin, end, k_eff, strides))
    if any(o < 1 for o in out):
        raise ShapeError("x", f"spatial size + pads >= dilated kernel size {list(k_eff)}",
                         f"spatial shape {list(D)} with pads {list(begin) + list(end)}")
    return ConvGeometry(kernel, strides, dilations, begin, end, out)
