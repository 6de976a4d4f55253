"""Canonical Huffman coding of small-integer symbols (cluster indices, index gaps).

Deep Compression §4 (Han, Mao, Dally 2016): the cluster indices and the
relative sparse indices are far from uniform, so a Huffman code saves a
further 20–30 % of the storage.

The steps, each a function here:

1. ``code_lengths(counts)`` — optimal prefix-code lengths from symbol counts
   (Huffman 1952: repeatedly merge the two lightest subtrees). Ties are broken
   deterministically: a min-heap ordered by (weight, id), leaves having id =
   symbol and merged nodes new ids in creation order. With ``max_length``
   the lengths are limited by package-merge (Larmore & Hirschberg 1990), the
   optimal code under that limit.
2. ``canonical_codes(lengths)`` — the canonical code for those lengths
   (as DEFLATE, RFC 1951 §3.2.2): symbols sorted by (length, symbol) get
   consecutive code values, shifted left when the length grows. Only the
   lengths need to be stored: they are the serialisable header.
3. ``encode`` packs the codes MSB-first into bytes (plus the exact bit count);
   ``decode`` reverses it exactly and rejects streams that are not valid.

Average code length L̄ = Σ p_s·l_s satisfies H ≤ L̄ < H + 1 with
H = −Σ p_s log2 p_s the entropy (D.18, D.19 in docs/deep_compression.md).
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass

import numpy as np

from ..checks import integer
from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError

__all__ = [
    "HEADER_VERSION",
    "HuffmanCode",
    "code_lengths",
    "canonical_codes",
    "entropy_bits",
    "encode",
    "decode",
]

HEADER_VERSION = 1
_MAX_LENGTH = 63  # codes are held in uint64 while packing


def _counts_array(counts) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0:
        raise ShapeError("counts", "a non-empty 1-D array of counts per symbol", f"shape {c.shape}")
    if not np.issubdtype(c.dtype, np.integer):
        raise DTypeError("counts", "an integer array", f"dtype {c.dtype}")
    if np.any(c < 0):
        raise ValidationError("counts", "counts >= 0", f"min {c.min()}")
    return c.astype(np.int64)


def _huffman_lengths(counts: np.ndarray) -> np.ndarray:
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    if used.size == 1:
        lengths[used[0]] = 1  # one symbol still needs one bit per occurrence
        return lengths
    # heap of (weight, id); children[id] = (left, right) for merged nodes
    heap = [(int(counts[s]), int(s)) for s in used]
    heapq.heapify(heap)
    children = {}
    next_id = counts.size
    while len(heap) > 1:
        w1, a = heapq.heappop(heap)
        w2, b = heapq.heappop(heap)
        children[next_id] = (a, b)
        heapq.heappush(heap, (w1 + w2, next_id))
        next_id += 1
    stack = [(heap[0][1], 0)]
    while stack:
        node, depth = stack.pop()
        if node in children:
            stack.extend((child, depth + 1) for child in children[node])
        else:
            lengths[node] = depth
    return lengths


def _package_merge_lengths(counts: np.ndarray, max_length: int) -> np.ndarray:
    """Optimal lengths with l_s <= max_length (package-merge, Larmore & Hirschberg 1990).

    Each leaf list holds the used symbols sorted by (count, symbol). ``max_length``
    times: pair up the previous list's items into packages and merge them with a
    fresh copy of the leaves. The first 2(n − 1) items of the last list are
    chosen; a symbol's length is the number of chosen items containing it.
    """
    used = sorted(np.flatnonzero(counts), key=lambda s: (int(counts[s]), int(s)))
    n = len(used)
    leaves = [(int(counts[s]), (int(s),)) for s in used]
    current = list(leaves)
    for _ in range(max_length - 1):
        packages = [(current[i][0] + current[i + 1][0], current[i][1] + current[i + 1][1])
                    for i in range(0, len(current) - 1, 2)]
        # stable merge: leaves before packages of equal weight
        current = sorted(leaves + packages, key=lambda item: item[0])
    lengths = np.zeros(counts.size, dtype=np.int64)
    for _, symbols in current[: 2 * (n - 1)]:
        for s in symbols:
            lengths[s] += 1
    return lengths


def code_lengths(counts, *, max_length: int | None = None) -> np.ndarray:
    """Huffman code length of every symbol from its count (0 for unused symbols).

    counts : 1-D ints >= 0, counts[s] = occurrences of symbol s.
    max_length : optional limit on any code length (1…63); must allow the used
    symbols, i.e. 2^max_length >= number of used symbols.
    Returns uint8 lengths.
    """
    c = _counts_array(counts)
    used = int(np.count_nonzero(c))
    if used == 0:
        return np.zeros(c.size, dtype=np.uint8)
    lengths = _huffman_lengths(c)
    if max_length is not None:
        limit = integer(max_length, "max_length", minimum=1, maximum=_MAX_LENGTH)
        if used > (1 << limit):
            raise ValidationError("max_length", f"2**max_length >= {used} used symbols", limit)
        if lengths.max() > limit:
            lengths = _package_merge_lengths(c, limit)
    elif lengths.max() > _MAX_LENGTH:
        lengths = _package_merge_lengths(c, _MAX_LENGTH)
    return lengths.astype(np.uint8)


def _check_lengths(lengths) -> np.ndarray:
    ln = np.asarray(lengths)
    if ln.ndim != 1 or ln.size == 0 or not np.issubdtype(ln.dtype, np.integer):
        raise ValidationError("lengths", "a non-empty 1-D integer array of code lengths", f"{ln.dtype} {ln.shape}")
    if np.any(ln < 0) or np.any(ln > _MAX_LENGTH):
        raise ValidationError("lengths", f"code lengths in [0, {_MAX_LENGTH}]", f"range [{ln.min()}, {ln.max()}]")
    ln = ln.astype(np.int64)
    # Kraft inequality Σ 2^−l <= 1: otherwise no prefix code has these lengths
    used = ln[ln > 0]
    if used.size and sum(1 << (_MAX_LENGTH - int(v)) for v in used) > (1 << _MAX_LENGTH):
        raise ValidationError("lengths", "lengths satisfying Kraft's inequality Σ 2^-l <= 1", "Σ 2^-l > 1")
    return ln


def canonical_codes(lengths) -> np.ndarray:
    """Canonical code value of every symbol (uint64; meaningful for length > 0)  (D.20).

    Symbols ordered by (length, symbol); code(first) = 0; code(next) =
    (code(prev) + 1) << (len(next) − len(prev)). Codes are read MSB-first.
    """
    ln = _check_lengths(lengths)
    codes = np.zeros(ln.size, dtype=np.uint64)
    order = sorted(np.flatnonzero(ln), key=lambda s: (int(ln[s]), int(s)))
    code, prev_len = 0, None          # the first code is 0, of its own length
    for s in order:
        length = int(ln[s])
        if prev_len is not None:
            code = (code + 1) << (length - prev_len)
        codes[s] = code
        prev_len = length
    return codes


def entropy_bits(counts) -> float:
    """Shannon entropy H = −Σ p_s log2 p_s of the empirical distribution, in bits/symbol (D.18)."""
    c = _counts_array(counts)
    total = c.sum()
    if total == 0:
        return 0.0
    p = c[c > 0] / total
    return float(-np.sum(p * np.log2(p)))


@dataclass(frozen=True, eq=False)
class HuffmanCode:
    """A canonical Huffman code over symbols 0…n−1, defined by its code lengths.

    lengths : uint8 (n,), 0 = symbol has no code.  The header stored with an
    encoded stream is just these lengths (``to_header`` / ``from_header``, JSON).
    """

    lengths: np.ndarray

    def __eq__(self, other) -> bool:
        return isinstance(other, HuffmanCode) and np.array_equal(self.lengths, other.lengths)

    __hash__ = None

    @classmethod
    def from_counts(cls, counts, *, max_length: int | None = None) -> HuffmanCode:
        return cls(code_lengths(counts, max_length=max_length))

    @classmethod
    def from_symbols(cls, symbols, n_symbols: int, *, max_length: int | None = None) -> HuffmanCode:
        """Code fitted to the symbol frequencies of ``symbols`` (ints in [0, n_symbols))."""
        s = _symbols_array(symbols, integer(n_symbols, "n_symbols", minimum=1))
        return cls.from_counts(np.bincount(s, minlength=n_symbols), max_length=max_length)

    @property
    def n_symbols(self) -> int:
        return int(np.asarray(self.lengths).size)

    def codes(self) -> np.ndarray:
        return canonical_codes(self.lengths)

    def encoded_bits(self, symbols) -> int:
        """Bit length of ``encode(symbols, self)`` without encoding."""
        s = _symbols_array(symbols, self.n_symbols)
        return int(np.sum(np.asarray(self.lengths, dtype=np.int64)[s]))

    def header_bits(self) -> int:
        """Size of the header as stored in a binary file: 8 bits per code length."""
        return 8 * self.n_symbols

    def to_header(self) -> dict:
        return {"format": "refcomp.huffman", "version": HEADER_VERSION,
                "code_lengths": [int(v) for v in np.asarray(self.lengths)]}

    def to_json(self) -> str:
        return json.dumps(self.to_header(), separators=(",", ":"))

    @classmethod
    def from_header(cls, header) -> HuffmanCode:
        if isinstance(header, (str, bytes)):
            try:
                header = json.loads(header)
            except ValueError as exc:
                raise FileFormatError(f"huffman header: not valid JSON ({exc})") from None
        if not isinstance(header, dict) or header.get("format") != "refcomp.huffman":
            raise FileFormatError("huffman header: expected a dict with format 'refcomp.huffman'")
        if header.get("version") != HEADER_VERSION:
            raise FileFormatError(f"huffman header: unknown version {header.get('version')!r} "
                                  f"(this refcomp reads version {HEADER_VERSION})")
        raw = header.get("code_lengths")
        if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            raise FileFormatError("huffman header: code_lengths must be a list of ints")
        try:
            ln = _check_lengths(np.array(raw, dtype=np.int64))
        except ValidationError as exc:
            raise FileFormatError(f"huffman header: {exc}") from None
        return cls(ln.astype(np.uint8))


def _symbols_array(symbols, n_symbols: int) -> np.ndarray:
    s = np.asarray(symbols)
    if not (np.issubdtype(s.dtype, np.integer) or (s.size == 0 and s.dtype == np.float64)):
        raise DTypeError("symbols", "an integer array", f"dtype {s.dtype}")
    s = s.ravel().astype(np.int64)
    if s.size and (s.min() < 0 or s.max() >= n_symbols):
        raise ValidationError("symbols", f"values in [0, {n_symbols - 1}]", f"range [{s.min()}, {s.max()}]")
    return s


def encode(symbols, code: HuffmanCode) -> tuple[bytes, int]:
    """Pack the codes of ``symbols`` MSB-first: returns (bytes, number of valid bits).

    The last byte is zero-padded. Every symbol must have a code (length > 0).
    """
    if not isinstance(code, HuffmanCode):
        raise ValidationError("code", "a HuffmanCode", type(code).__name__)
    s = _symbols_array(symbols, code.n_symbols)
    ln = np.asarray(code.lengths, dtype=np.int64)
    if s.size and np.any(ln[s] == 0):
        missing = np.unique(s[ln[s] == 0])[:5].tolist()
        raise ValidationError("symbols", "only symbols that have a code (length > 0)", f"uncoded {missing}")
    if s.size == 0:
        return b"", 0
    codes = canonical_codes(ln)
    sym_len = ln[s]
    sym_code = codes[s]
    start = np.cumsum(sym_len) - sym_len  # first bit of each symbol's code in the stream
    stream = np.zeros(int(sym_len.sum()), dtype=np.uint8)
    # bit j of a code of length l (MSB first) is (code >> (l − 1 − j)) & 1, for j < l
    for j in range(int(sym_len.max())):
        has = sym_len > j
        shift = (sym_len[has] - 1 - j).astype(np.uint64)
        stream[start[has] + j] = (sym_code[has] >> shift) & np.uint64(1)
    return np.packbits(stream).tobytes(), int(stream.size)


_TABLE_BITS = 20  # decode by table lookup when every code fits in this many bits
_CHUNK = 1 << 15  # bits decoded per step: bounds the working arrays whatever the stream length
_STRIDE_BITS = 7  # code boundaries found 128 at a time (see _decode_table)


def decode(data: bytes, nbits: int, code: HuffmanCode, *, count: int | None = None, dtype=np.int64) -> np.ndarray:
    """Decode ``nbits`` bits of ``data`` back to the symbols (an array of ``dtype``, int64 by default).

    count : optional number of symbols expected; a mismatch is an error. With
        it, the stream length is checked against ``count`` × the shortest and
        longest code length *before* anything is decoded, and decoding stops
        after ``count`` symbols: a stream that cannot hold ``count`` symbols
        costs nothing, and no stream costs more than ``count`` symbols.
    dtype : the integer dtype of the result (a reader holding symbols < 2^16
        passes uint16 so the result takes 2 bytes per symbol, not 8).
    Raises FileFormatError on a stream that is not a concatenation of codes
    (invalid bit pattern, truncated last code, wrong count).

    Memory: the bits (1 byte each), the result and O(2^min(max length, 20) +
    _CHUNK) working space; time proportional to ``nbits``.
    """
    if not isinstance(code, HuffmanCode):
        raise ValidationError("code", "a HuffmanCode", type(code).__name__)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DTypeError("data", "bytes", type(data).__name__)
    nbits = integer(nbits, "nbits", minimum=0)
    if nbits > 8 * len(data):
        raise FileFormatError(f"huffman stream: nbits={nbits} but only {8 * len(data)} bits of data")
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise DTypeError("dtype", "an integer dtype", str(dtype))
    ln = np.asarray(code.lengths, dtype=np.int64)
    used = np.flatnonzero(ln)
    if nbits and used.size == 0:
        raise FileFormatError("huffman stream: bits present but the code has no symbols")
    if used.size and int(used[-1]) > np.iinfo(dtype).max:
        raise DTypeError("dtype", f"an integer dtype holding symbol {int(used[-1])}", str(dtype))
    if count is not None:
        count = integer(count, "count", minimum=0)
        shortest, longest = (int(ln[used].min()), int(ln[used].max())) if used.size else (0, 0)
        # every symbol takes between the shortest and the longest code: check before decoding anything
        if not count * shortest <= nbits <= count * longest:
            raise FileFormatError(f"huffman stream: {nbits} bits cannot hold {count} symbols of "
                                  f"{shortest}…{longest} bits each")
    if nbits == 0:
        result = np.zeros(0, dtype=dtype)
    else:
        raw = np.frombuffer(data, dtype=np.uint8)
        width = int(ln.max())
        if int(ln[used].min()) == width:
            result = _decode_fixed(np.unpackbits(raw, count=nbits), used, width, dtype)
        elif width <= _TABLE_BITS:
            result = _decode_table(raw, nbits, ln, canonical_codes(ln), used, width, count, dtype)
        else:
            result = _decode_bitwise(np.unpackbits(raw, count=nbits), ln, canonical_codes(ln), used, count, dtype)
    if count is not None and result.size != count:
        raise FileFormatError(f"huffman stream: expected {count} symbols, decoded {result.size}")
    return result


def _decode_fixed(bits: np.ndarray, used: np.ndarray, width: int, dtype) -> np.ndarray:
    """Every code has the same length: the canonical code of the k-th used symbol is k in binary (vectorised)."""
    if bits.size % width:
        raise FileFormatError(f"huffman stream: last code truncated ({bits.size} bits, codes of {width})")
    groups = bits.reshape(-1, width)
    value = np.zeros(groups.shape[0], dtype=np.uint64)
    for j in range(width):
        value = (value << np.uint64(1)) | groups[:, j]
    bad = np.flatnonzero(value >= used.size)
    if bad.size:
        raise FileFormatError(f"huffman stream: invalid code at bit {int(bad[0]) * width}")
    return used[value.astype(np.int64)].astype(dtype)


def _decode_table(raw: np.ndarray, n: int, ln, codes, used, width: int, count, dtype) -> np.ndarray:
    """Table decoding, vectorised: the next ``width`` bits (zero-padded) index a 2^width table giving
    (symbol, length) at *every* bit position of a chunk of _CHUNK bits; the code boundaries are then
    the chain p -> p + length(p) from the chunk's first boundary, found by pointer doubling (the jump
    table raised to the powers 2^k, k <= _STRIDE_BITS) instead of a Python loop over symbols.
    Working memory is O(_CHUNK · _STRIDE_BITS) whatever the stream length; time O(bits · _STRIDE_BITS)
    in NumPy plus one Python step per 128 symbols."""
    table_sym = np.full(1 << width, -1, dtype=np.int32)
    table_len = np.zeros(1 << width, dtype=np.int32)
    for s in used:
        length = int(ln[s])
        first = int(codes[s]) << (width - length)
        table_sym[first: first + (1 << (width - length))] = s
        table_len[first: first + (1 << (width - length))] = length
    # with a count, the result is filled in place (no list of parts to concatenate at the end)
    out = np.empty(count, dtype=dtype) if count is not None else None
    parts, total, pos = [], 0, 0
    for start in range(0, n, _CHUNK):
        size = min(_CHUNK, n - start)
        if pos >= start + size:                # a code longer than the rest of this chunk: none starts here
            continue
        # window[p] = the width bits starting at bit start + p, MSB first, read from the bytes: the
        # big-endian 32-bit word at byte (start + p) // 8, shifted by the bit offset (width <= 20 < 25)
        b0 = start // 8                        # _CHUNK is a multiple of 8: every chunk starts on a byte
        nb = (size + 7) // 8 + 4
        seg = raw[b0: b0 + nb].astype(np.uint64)
        if seg.size < nb:                      # zero-pad past the end of the stream
            seg = np.concatenate([seg, np.zeros(nb - seg.size, dtype=np.uint64)])
        words = (seg[:-3] << np.uint64(24)) | (seg[1:-2] << np.uint64(16)) | (seg[2:-1] << np.uint64(8)) | seg[3:]
        local = np.arange(size, dtype=np.uint64)
        window = ((words[local >> np.uint64(3)] << (local & np.uint64(7))) & np.uint64(0xFFFFFFFF)) \
            >> np.uint64(32 - width)
        del seg, words, local
        sym_at = table_sym[window]
        # next boundary after a code starting at p; an invalid code (-1) and every code running past
        # the chunk jump to the sentinel ``size`` (which jumps to itself)
        nxt = np.arange(size, dtype=np.int32) + table_len[window]
        jump = np.append(np.where((sym_at >= 0) & (nxt < size), nxt, size), size).astype(np.intp)
        lifts = [jump]                         # lifts[k] = jump^(2^k), k = 0 … _STRIDE_BITS
        for _ in range(_STRIDE_BITS):
            lifts.append(lifts[-1][lifts[-1]])
        # every 2^_STRIDE_BITS-th boundary, in Python (a few hundred per chunk at most), then the rest
        # of the jumps inside the chunk by binary descent
        first = pos - start
        marks, p, stride = [first], first, lifts[_STRIDE_BITS]
        while (q := int(stride[p])) < size:
            marks.append(q)
            p = q
        steps = (len(marks) - 1) << _STRIDE_BITS
        for k in range(_STRIDE_BITS - 1, -1, -1):
            q = int(lifts[k][p])
            if q < size:
                p, steps = q, steps + (1 << k)
        # row i = the 2^_STRIDE_BITS boundaries from marks[i], by doubling: jump^j(marks[i]), j < 2^_STRIDE_BITS
        rows = np.array(marks, dtype=np.intp)[:, None]
        for k in range(_STRIDE_BITS):
            rows = np.concatenate([rows, lifts[k][rows]], axis=1)
        chain = rows.ravel()[:steps + 1]
        del lifts, rows
        syms = sym_at[chain]
        bad = np.flatnonzero(syms < 0)
        if bad.size:
            raise FileFormatError(f"huffman stream: invalid code at bit {start + int(chain[bad[0]])}")
        pos = start + int(chain[-1]) + int(table_len[window[chain[-1]]])
        if count is not None and total + syms.size > count:
            raise FileFormatError(f"huffman stream: more than the expected {count} symbols")
        if out is not None:
            out[total: total + syms.size] = syms
        else:
            parts.append(syms.astype(dtype))
        total += syms.size
    if pos != n:
        raise FileFormatError(f"huffman stream: last code truncated (ends at bit {pos}, stream has {n})")
    if out is not None:
        return out[:total]     # fewer than count: decode() reports the mismatch
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _decode_bitwise(bits: np.ndarray, ln, codes, used, count, dtype) -> np.ndarray:
    """Bit-by-bit canonical decoding, for codes longer than the table allows."""
    lookup = {(int(ln[s]), int(codes[s])): int(s) for s in used}
    max_len = int(ln.max())
    out, value, length = [], 0, 0
    for pos, bit in enumerate(bits.tolist()):
        value = (value << 1) | bit
        length += 1
        s = lookup.get((length, value))
        if s is not None:
            out.append(s)
            value, length = 0, 0
            if count is not None and len(out) > count:
                raise FileFormatError(f"huffman stream: more than the expected {count} symbols")
        elif length >= max_len:
            raise FileFormatError(f"huffman stream: invalid code ending at bit {pos}")
    if length:
        raise FileFormatError("huffman stream: last code truncated")
    return np.array(out, dtype=dtype)
