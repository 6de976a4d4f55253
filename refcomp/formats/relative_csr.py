"""Deep Compression's sparse storage: CSR with fixed-width relative indices.

Han, Mao, Dally 2016 (arXiv:1510.00149) §2 and Fig. 2: a pruned layer is kept
in CSR form, but each stored entry records the *difference* from the previous
entry's position in a fixed number of bits (8 for conv, 5 for fc layers in the
paper) instead of an absolute column. A gap too large for the field is
bridged by a filler entry. Each entry also carries its weight: a b-bit
cluster index into the codebook (or a float when not clustered).

The encoding used here, per row (``layout="rows"``) or over the row-major
flattened weight (``layout="flat"``, one stream as in the paper's Fig. 2),
with E = 2^index_bits − 1 the largest field value and z the number of zeros
between the previous stored position (−1 at the start) and a kept weight:

    z = q·E + r, 0 ≤ r < E   →   q filler entries with field E, then the weight with field r   (D.21)

Decoding walks a cursor p (start −1): field E means p += E (a filler; its
weight field is stored, as the paper's filler zero, but ignored), field f < E
means p += f + 1 and the entry's weight goes to position p. Because fillers are
recognised by their field, the codebook needs no zero entry. (The paper's
filler instead sits at a position with value 0 and bridges 2^bits; this
variant bridges 2^bits − 1 and costs the same bits per entry.)

Sizes (bits, D.22): entries·(weight_bits + index_bits) + codebook + row pointers
(``layout="rows"`` only: rows + 1 pointers of ⌈log2(entries + 1)⌉ bits, the
fewest that address every entry). With Huffman coding (P+Q+H), the weight and
the index fields are each replaced by their canonical Huffman code
(refcomp.formats.huffman) plus its header (8 bits per code length) when that
is smaller, else kept fixed-width; one flag bit per field records the choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..checks import bool_mask, float_array, integer
from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from .base import WeightFormat, check_field_names
from .clustered import Clustered
from .huffman import HuffmanCode, decode, encode

__all__ = [
    "LAYOUTS",
    "RelativeIndexCSR",
    "code_field",
    "decode_field",
    "size_breakdown",
    "size_table",
    "size_table_markdown",
]

LAYOUTS = ("rows", "flat")


def _field_dtype(bits: int) -> type:
    """The dtype that holds fields (index fields, cluster indices) of ``bits`` <= 16 bits."""
    return np.uint8 if bits <= 8 else np.uint16


def _as_rows(shape: tuple[int, ...], layout: str) -> tuple[int, int]:
    # math.prod: Python ints, exact at any size (from_fields bounds a file's shape below 2^62)
    if layout == "flat":
        return 1, math.prod(shape)
    if len(shape) < 1:
        raise ShapeError("mask", "an array of >= 1 dims", "a scalar")
    rows = shape[0]
    return rows, math.prod(shape[1:])


@dataclass(eq=False)
class RelativeIndexCSR(WeightFormat):
    """One layer in Deep Compression storage (see the module docstring, D.21).

    shape : logical (dense) shape; layout : "rows" or "flat".
    index_bits : width of the relative-index field (1…16).
    row_ptr : int64 (rows + 1,), entries (fillers included) of row r are
        row_ptr[r]:row_ptr[r+1]; rows = shape[0] ("rows") or 1 ("flat").
    index_fields : relative-index field per entry, values in [0, 2^index_bits − 1].
    values : per entry: cluster index (uint8, when ``codebook`` is given) or
        the float weight; 0 for fillers.
    codebook : float array or None.  weight_bits : bits per stored weight field
        (the cluster-index width b, or the float's width).
    """

    shape: tuple[int, ...]
    layout: str
    index_bits: int
    row_ptr: np.ndarray
    index_fields: np.ndarray
    values: np.ndarray
    codebook: np.ndarray | None
    weight_bits: int

    #: a stored (pruned and shared) weight is frozen; layers propagate dL/dx through it
    trainable = False

    # ---------------------------------------------------------------- build
    @classmethod
    def encode(cls, mask, values, *, index_bits: int, layout: str = "rows", codebook=None,
               weight_bits: int | None = None) -> RelativeIndexCSR:
        """Store the kept positions of ``mask`` with their ``values`` (D.21).

        mask : bool array, True = kept (stored even if its value is 0).
        values : array of the mask's shape: float weights, or integer cluster
            indices into ``codebook`` when one is given.
        weight_bits : width of the weight field; default: the fewest bits that
            address the codebook, or the float's width.
        """
        if layout not in LAYOUTS:
            raise ValidationError("layout", f"one of {LAYOUTS}", repr(layout))
        b = integer(index_bits, "index_bits", minimum=1, maximum=16)
        v = np.asarray(values)
        m = bool_mask(mask, v.shape, "mask")
        if codebook is not None:
            cb = float_array(codebook, "codebook", allow_empty=False)
            if cb.ndim != 1:
                raise ShapeError("codebook", "a 1-D array", f"shape {cb.shape}")
            if not np.issubdtype(v.dtype, np.integer):
                raise DTypeError("values", "integer cluster indices when a codebook is given", f"dtype {v.dtype}")
            if v.size and (v[m].min(initial=0) < 0 or v[m].max(initial=0) >= cb.size):
                raise ValidationError("values", f"cluster indices in [0, {cb.size - 1}]",
                                      f"range [{v[m].min()}, {v[m].max()}]")
            need = max(1, (cb.size - 1).bit_length())
            wb = need if weight_bits is None else integer(weight_bits, "weight_bits", minimum=need, maximum=16)
            v = v.astype(_field_dtype(wb))
        else:
            cb = None
            v = float_array(v, "values")
            wb = 8 * v.dtype.itemsize if weight_bits is None else integer(weight_bits, "weight_bits", minimum=1)
        shape = tuple(v.shape)
        rows, cols = _as_rows(shape, layout)
        m2 = m.reshape(rows, cols)
        v2 = v.reshape(rows, cols)
        r_idx, c_idx = np.nonzero(m2)  # row-major order
        escape = (1 << b) - 1
        prev = np.empty_like(c_idx)
        if c_idx.size:
            prev[1:] = c_idx[:-1]
            new_row = np.ones(c_idx.size, dtype=bool)  # the first kept weight starts a row: prev = -1
            new_row[1:] = r_idx[1:] != r_idx[:-1]
            prev[new_row] = -1
        zeros = c_idx - prev - 1
        n_fill, rest = np.divmod(zeros, escape)
        per_kept = n_fill + 1
        real_at = np.cumsum(per_kept) - 1  # position of each kept weight among all entries
        n_entries = int(per_kept.sum())
        fields = np.full(n_entries, escape, dtype=_field_dtype(b))
        fields[real_at] = rest
        stored = np.zeros(n_entries, dtype=v.dtype)
        stored[real_at] = v2[r_idx, c_idx]
        per_row = np.bincount(r_idx, weights=per_kept, minlength=rows)  # float64 counts, exact below 2^53
        row_ptr = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
        return cls(shape, layout, b, row_ptr, fields, stored, cb, wb)

    @classmethod
    def from_dense(cls, weight, *, index_bits: int, layout: str = "rows", mask=None) -> RelativeIndexCSR:
        """Float weights stored directly; kept = ``mask`` if given, else weight != 0."""
        w = float_array(weight, "weight")
        m = (w != 0) if mask is None else bool_mask(mask, w.shape)
        return cls.encode(m, w, index_bits=index_bits, layout=layout)

    @classmethod
    def from_clustered(cls, clustered, *, index_bits: int, layout: str = "rows") -> RelativeIndexCSR:
        """A :class:`refcomp.formats.clustered.Clustered` weight: cluster indices + codebook.

        Positions outside its mask are not stored (all stored if it has no mask).
        """
        if not isinstance(clustered, Clustered):
            raise ValidationError("clustered", "a refcomp.formats.Clustered", type(clustered).__name__)
        m = clustered.mask if clustered.mask is not None else np.ones(clustered.shape, dtype=bool)
        return cls.encode(m, clustered.indices, index_bits=index_bits, layout=layout,
                          codebook=clustered.codebook, weight_bits=clustered.bits)

    # --------------------------------------------------------------- decode
    def _positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column, entry) of every real (non-filler) entry, validated."""
        rows, cols = _as_rows(self.shape, self.layout)
        rp = np.asarray(self.row_ptr, dtype=np.int64)
        f = np.asarray(self.index_fields).astype(np.int64)
        if rp.shape != (rows + 1,) or rp[0] != 0 or rp[-1] != f.size or np.any(np.diff(rp) < 0):
            raise FileFormatError(f"relative-index CSR: row_ptr inconsistent with {f.size} entries and {rows} rows")
        if np.asarray(self.values).shape != f.shape:
            raise FileFormatError("relative-index CSR: values and index fields differ in length")
        escape = (1 << self.index_bits) - 1
        if f.size and f.max() > escape:
            raise FileFormatError(f"relative-index CSR: field value {f.max()} exceeds {self.index_bits} bits")
        step = np.where(f == escape, escape, f + 1)
        cum = np.cumsum(step)
        row_of = np.repeat(np.arange(rows), np.diff(rp))
        base = np.concatenate([[0], cum])[rp[:-1]]  # cursor sum before each row's first entry
        col = cum - base[row_of] - 1
        real = f != escape
        if np.any(col[real] >= cols):
            raise FileFormatError(f"relative-index CSR: a position runs past the {cols} columns of a row")
        entry = np.flatnonzero(real)
        return row_of[real], col[real], entry

    def to_csr_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plain CSR of the (rows, cols) view, fillers dropped: (indptr, indices, data).

        Absolute column indices (int64) and decoded float values, row-major, as
        scipy.sparse.csr_matrix and refcomp's CSR kernels hold them; rows/cols
        are shape[0] and the product of the other dims ("rows" layout), or
        (1, size) ("flat").
        """
        rows, _ = _as_rows(self.shape, self.layout)
        r, c, e = self._positions()
        vals = np.asarray(self.values)[e]
        if self.codebook is not None:
            vals = self.codebook[vals]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=rows))]).astype(np.int64)
        return indptr, c.astype(np.int64), vals

    def to_mask(self) -> np.ndarray:
        rows, cols = _as_rows(self.shape, self.layout)
        r, c, _ = self._positions()
        m = np.zeros((rows, cols), dtype=bool)
        m[r, c] = True
        return m.reshape(self.shape)

    def to_dense(self) -> np.ndarray:
        """The dense weight: stored values (codebook-decoded) at their positions, 0 elsewhere."""
        rows, cols = _as_rows(self.shape, self.layout)
        r, c, e = self._positions()
        vals = np.asarray(self.values)[e]
        if self.codebook is not None:
            if vals.size and vals.max() >= self.codebook.size:
                raise FileFormatError("relative-index CSR: a cluster index exceeds the codebook")
            vals = self.codebook[vals]
            dtype = self.codebook.dtype
        else:
            dtype = np.asarray(self.values).dtype
        out = np.zeros((rows, cols), dtype=dtype)
        out[r, c] = vals
        return out.reshape(self.shape)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """``x @ W.T`` of the decoded weight, viewed (out, in·kh·kw) (WeightFormat contract)."""
        return x @ self.to_dense().reshape(self.shape[0], -1).T

    @property
    def nbytes(self) -> int:
        """The stored size with Huffman coding where it pays (P+Q+H, D.22), in whole bytes."""
        return size_breakdown(self)["pqh_bytes"]

    # ----------------------------------------------------------- file fields
    def fields(self) -> dict[str, np.ndarray]:
        """The coded layer, what a model file stores (the bits the size table counts, D.22).

        ``header`` int64: [layout (0 rows, 1 flat), index_bits, weight_bits,
        entries, bits of the weight stream, bits of the index stream, *shape];
        ``index_lengths`` / ``index_stream``: the relative-index field, Huffman-
        coded (its code lengths, 1 byte per symbol, then the MSB-first stream)
        when that is smaller, else packed at ``index_bits`` (no lengths); the
        same for ``weight_lengths`` / ``weight_stream`` with a codebook, or the
        float ``values`` without one; ``codebook``; ``row_ptr`` (uint32, layout
        "rows" only).
        """
        out = {}
        ilen, istream, ibits = code_field(np.asarray(self.index_fields).astype(np.int64), self.index_bits)
        out["index_lengths"], out["index_stream"] = ilen, istream
        wbits = 0
        if self.codebook is not None:
            wlen, wstream, wbits = code_field(np.asarray(self.values).astype(np.int64), self.weight_bits)
            out["weight_lengths"], out["weight_stream"] = wlen, wstream
            out["codebook"] = np.ascontiguousarray(self.codebook)
        else:
            out["values"] = np.ascontiguousarray(self.values)
        if self.layout == "rows":
            out["row_ptr"] = np.asarray(self.row_ptr).astype(np.uint32)
        out["header"] = np.array([LAYOUTS.index(self.layout), self.index_bits, self.weight_bits, self.n_entries,
                                  wbits, ibits, *self.shape], np.int64)
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, np.ndarray]) -> "RelativeIndexCSR":
        """Decode :meth:`fields`; every count, code and position is checked (FileFormatError)."""
        if not isinstance(fields, dict) or "header" not in fields:
            raise FileFormatError("fields: expected a dict with a 'header' entry")
        h = np.asarray(fields["header"])
        if h.dtype != np.int64 or h.ndim != 1 or h.size < 7:
            raise FileFormatError(f"fields['header']: expected >= 7 int64 values, got {h.dtype} {h.shape}")
        layout_id, ib, wb, n, wbits, ibits = (int(v) for v in h[:6])
        shape = tuple(int(d) for d in h[6:])
        if not (0 <= layout_id < len(LAYOUTS)) or not (1 <= ib <= 16) or not (1 <= wb <= 64) or n < 0 \
                or min(shape) < 0 or math.prod(shape) >= 2 ** 62:  # the size must not overflow int64 below
            raise FileFormatError(f"fields['header']: invalid layout, field widths, count or shape {h.tolist()}")
        layout = LAYOUTS[layout_id]
        clustered = "codebook" in fields
        want = {"header", "index_lengths", "index_stream"} | ({"row_ptr"} if layout == "rows" else set()) \
            | ({"codebook", "weight_lengths", "weight_stream"} if clustered else {"values"})
        check_field_names(fields, want)
        index_fields = decode_field(fields["index_lengths"], fields["index_stream"], ibits, ib, n, "index")
        if clustered:
            if wb > 16:  # encode stores cluster indices of up to 16 bits (uint16)
                raise FileFormatError(f"fields['header']: weight fields of {wb} bits (at most 16 with a codebook)")
            cb = np.asarray(fields["codebook"])
            if cb.dtype not in (np.float32, np.float64) or cb.ndim != 1 or cb.size > (1 << wb) \
                    or not np.all(np.isfinite(cb)):
                raise FileFormatError(f"fields['codebook']: expected at most {1 << wb} finite floats, "
                                      f"got {cb.dtype} {cb.shape}")
            values = decode_field(fields["weight_lengths"], fields["weight_stream"], wbits, wb, n, "weight")
            if values.size and values.max() >= cb.size:
                raise FileFormatError("fields: a cluster index beyond the codebook")
            values = values.astype(_field_dtype(wb))  # as encode stores them
        else:
            cb = None
            values = np.asarray(fields["values"])
            if values.dtype not in (np.float32, np.float64) or values.shape != (n,):
                raise FileFormatError(f"fields['values']: expected {n} floats, got {values.dtype} {values.shape}")
        if layout == "rows":
            rp = np.asarray(fields["row_ptr"])
            if rp.dtype != np.uint32 or rp.ndim != 1:
                raise FileFormatError(f"fields['row_ptr']: expected uint32, got {rp.dtype} {rp.shape}")
            row_ptr = rp.astype(np.int64)
        else:
            row_ptr = np.array([0, n], np.int64)
        layer = cls(shape, layout, ib, row_ptr, index_fields.astype(_field_dtype(ib)), values,
                    cb, wb)
        # validates the row pointers and every position (FileFormatError) without building the
        # (rows, cols) mask, so a file declaring a huge shape costs no memory before it is refused
        layer._positions()
        return layer

    # ---------------------------------------------------------------- sizes
    @property
    def n_entries(self) -> int:
        return int(np.asarray(self.index_fields).size)

    @property
    def n_fillers(self) -> int:
        return int(np.count_nonzero(np.asarray(self.index_fields) == (1 << self.index_bits) - 1))

    @property
    def n_kept(self) -> int:
        return self.n_entries - self.n_fillers

    def weight_code(self) -> HuffmanCode:
        """Huffman code fitted to the weight fields (cluster indices); needs a codebook."""
        if self.codebook is None:
            raise ValidationError("self", "a clustered layer (codebook) for Huffman coding of weights",
                                  "float values")
        return HuffmanCode.from_symbols(self.values, 1 << self.weight_bits)

    def index_code(self) -> HuffmanCode:
        """Huffman code fitted to the relative-index fields."""
        return HuffmanCode.from_symbols(self.index_fields, 1 << self.index_bits)


def code_field(symbols: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One field, coded: (code lengths uint8, MSB-first stream uint8, number of valid bits).

    Huffman when that beats ``width`` bits per symbol, its code lengths
    included (D.22); else the fixed-width code (every length = width, i.e.
    plain b-bit binary) and no lengths (an empty array).
    """
    n_sym = 1 << width
    code, lengths = HuffmanCode(np.full(n_sym, width, dtype=np.uint8)), np.zeros(0, np.uint8)
    if symbols.size:
        huff = HuffmanCode.from_symbols(symbols, n_sym)
        if huff.encoded_bits(symbols) + huff.header_bits() < symbols.size * width:
            code, lengths = huff, huff.lengths  # code_lengths returns uint8 lengths
    data, nbits = encode(symbols, code)
    return lengths, np.frombuffer(data, np.uint8).copy(), nbits


def decode_field(lengths, stream, nbits: int, width: int, count: int, what: str) -> np.ndarray:
    """Inverse of :func:`code_field`: ``count`` symbols (uint16, int64 above 16 bits); FileFormatError on anything inconsistent."""
    lengths, stream = np.asarray(lengths), np.asarray(stream)
    if lengths.dtype != np.uint8 or stream.dtype != np.uint8 or lengths.ndim != 1 or stream.ndim != 1:
        raise FileFormatError(f"fields: the {what} code lengths and stream must be 1-D uint8")
    n_sym = 1 << width
    if lengths.size == 0:
        code = HuffmanCode(np.full(n_sym, width, dtype=np.uint8))
    elif lengths.size == n_sym:
        try:
            code = HuffmanCode.from_header({"format": "refcomp.huffman", "version": 1,
                                            "code_lengths": [int(v) for v in lengths]})
        except (FileFormatError, ValidationError) as exc:
            raise FileFormatError(f"fields: {what} code: {exc}") from None
    else:
        raise FileFormatError(f"fields: {lengths.size} {what} code lengths, expected {n_sym} (or 0: fixed width)")
    if not 0 <= nbits <= 8 * stream.size:
        raise FileFormatError(f"fields: {nbits} bits of {what} stream in {stream.size} bytes")
    # uint16: every symbol of a field of at most 16 bits fits, at a quarter of int64's memory
    return decode(stream.tobytes(), nbits, code, count=count, dtype=np.uint16 if width <= 16 else np.int64)


def size_breakdown(layer: RelativeIndexCSR, *, dense_bits_per_weight: int = 32) -> dict:
    """Bits of one stored layer, without (P+Q) and with (P+Q+H) Huffman coding  (D.22).

    Keys: weights, kept, kept_pct, entries, fillers, weight_bits, index_bits,
    huffman_weight_bits, huffman_index_bits (average bits per entry after coding),
    codebook_bits, row_pointer_bits, dense_bits, pq_bits, pqh_bits, pq_bytes,
    pqh_bytes, pq_ratio, pqh_ratio (dense / compressed).
    Huffman applies to the weight field only when the layer is clustered.
    """
    if not isinstance(layer, RelativeIndexCSR):
        raise ValidationError("layer", "a RelativeIndexCSR", type(layer).__name__)
    n = math.prod(layer.shape)
    entries = layer.n_entries
    codebook_bits = 0 if layer.codebook is None else int(layer.codebook.size * 8 * layer.codebook.itemsize)
    row_ptr_bits = layer.row_ptr.size * max(1, entries.bit_length()) if layer.layout == "rows" else 0
    weight_field = entries * layer.weight_bits
    index_field = entries * layer.index_bits
    pq = weight_field + index_field + codebook_bits + row_ptr_bits
    # Huffman replaces a field only where it pays for its header; +1 flag bit per field
    h_weight = weight_field
    if layer.codebook is not None and entries:
        wcode = layer.weight_code()
        h_weight = min(weight_field, wcode.encoded_bits(layer.values) + wcode.header_bits())
    h_index = index_field
    if entries:
        icode = layer.index_code()
        h_index = min(index_field, icode.encoded_bits(layer.index_fields) + icode.header_bits())
    pqh = h_weight + h_index + 2 + codebook_bits + row_ptr_bits
    dense = n * dense_bits_per_weight
    return {
        "weights": n,
        "kept": layer.n_kept,
        "kept_pct": 100.0 * layer.n_kept / n if n else 0.0,
        "entries": entries,
        "fillers": layer.n_fillers,
        "weight_bits": layer.weight_bits,
        "index_bits": layer.index_bits,
        "huffman_weight_bits": h_weight / entries if entries else 0.0,
        "huffman_index_bits": h_index / entries if entries else 0.0,
        "codebook_bits": codebook_bits,
        "row_pointer_bits": row_ptr_bits,
        "dense_bits": dense,
        "pq_bits": pq,
        "pqh_bits": pqh,
        "pq_bytes": math.ceil(pq / 8),
        "pqh_bytes": math.ceil(pqh / 8),
        "pq_ratio": dense / pq if pq else math.inf,
        "pqh_ratio": dense / pqh,  # pqh >= 2: the two flag bits
    }


def size_table(layers: Mapping[str, RelativeIndexCSR], *, dense_bits_per_weight: int = 32) -> list[dict]:
    """Per-layer rows of :func:`size_breakdown` (with a "layer" key) and a final "total" row.

    Totals add counts and bits; the per-entry averages of the total row are
    weighted by entries, like the paper's Table 2/3 totals.
    """
    if not isinstance(layers, Mapping) or not layers:
        raise ValidationError("layers", "a non-empty mapping name -> RelativeIndexCSR", type(layers).__name__)
    rows = []
    for name, layer in layers.items():
        if not isinstance(layer, RelativeIndexCSR):
            raise ValidationError(f"layers[{name!r}]", "a RelativeIndexCSR", type(layer).__name__)
        rows.append({"layer": str(name), **size_breakdown(layer, dense_bits_per_weight=dense_bits_per_weight)})
    total = {"layer": "total"}
    for key in ("weights", "kept", "entries", "fillers", "codebook_bits", "row_pointer_bits",
                "dense_bits", "pq_bits", "pqh_bits"):
        total[key] = sum(r[key] for r in rows)
    e = total["entries"]
    total["kept_pct"] = 100.0 * total["kept"] / total["weights"] if total["weights"] else 0.0
    for key in ("weight_bits", "index_bits", "huffman_weight_bits", "huffman_index_bits"):
        total[key] = sum(r[key] * r["entries"] for r in rows) / e if e else 0.0
    total["pq_bytes"] = math.ceil(total["pq_bits"] / 8)
    total["pqh_bytes"] = math.ceil(total["pqh_bits"] / 8)
    total["pq_ratio"] = total["dense_bits"] / total["pq_bits"] if total["pq_bits"] else math.inf
    total["pqh_ratio"] = total["dense_bits"] / total["pqh_bits"]  # >= 2 flag bits per layer
    rows.append(total)
    return rows


def _bits(v) -> str:
    return f"{v:g}" if isinstance(v, int) or float(v).is_integer() else f"{v:.1f}"


def size_table_markdown(rows: list[dict]) -> str:
    """Render :func:`size_table` rows as a Markdown table shaped like Deep Compression Table 2/3.

    P = pruning, Q = quantization (weight sharing), H = Huffman coding;
    "Compressed" = compressed size / dense float32 size, as the paper reports it.
    """
    if not isinstance(rows, list) or not rows:
        raise ValidationError("rows", "the non-empty list returned by size_table", type(rows).__name__)
    header = ("| Layer | #Weights | Weights % (P) | Weight bits (P+Q) | Weight bits (P+Q+H) "
              "| Index bits (P+Q) | Index bits (P+Q+H) | Bytes (P+Q) | Bytes (P+Q+H) "
              "| Compressed (P+Q) | Compressed (P+Q+H) |")
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        name = f"**{r['layer']}**" if r["layer"] == "total" else r["layer"]
        lines.append(
            f"| {name} | {r['weights']:,} | {r['kept_pct']:.1f}% | {_bits(r['weight_bits'])} "
            f"| {r['huffman_weight_bits']:.1f} | {_bits(r['index_bits'])} | {r['huffman_index_bits']:.1f} "
            f"| {r['pq_bytes']:,} | {r['pqh_bytes']:,} "
            f"| {100.0 / r['pq_ratio']:.1f}% ({r['pq_ratio']:.0f}×) "
            f"| {100.0 / r['pqh_ratio']:.1f}% ({r['pqh_ratio']:.0f}×) |"
        )
    return "\n".join(lines) + "\n"
