"""Canonical Huffman coding: exact round trip, optimality bounds, length limits, headers."""

import heapq
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.formats.huffman import (
    HuffmanCode,
    canonical_codes,
    code_lengths,
    decode,
    encode,
    entropy_bits,
)
from refcomp.errors import FileFormatError, ValidationError

symbol_lists = st.integers(1, 40).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1), min_size=0, max_size=400)))


def _skewed(seed, n_symbols, size):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(n_symbols, 0.3))
    return rng.choice(n_symbols, size=size, p=p)


@settings(max_examples=80)
@given(symbol_lists)
def test_decode_encode_is_identity(case):
    n, symbols = case
    x = np.array(symbols, dtype=np.int64)
    code = HuffmanCode.from_symbols(x, n)
    data, nbits = encode(x, code)
    assert nbits == code.encoded_bits(x) and len(data) == (nbits + 7) // 8
    np.testing.assert_array_equal(decode(data, nbits, code, count=x.size), x)


@settings(max_examples=60)
@given(st.integers(1, 64), st.integers(1, 3000), st.integers(0, 2**32 - 1))
def test_average_length_within_one_bit_of_entropy(n_symbols, size, seed):
    x = _skewed(seed, n_symbols, size)
    counts = np.bincount(x, minlength=n_symbols)
    code = HuffmanCode.from_counts(counts)
    average = code.encoded_bits(x) / size
    h = entropy_bits(counts)
    assert h - 1e-9 <= average <= h + 1  # H ≤ L̄ < H + 1 (= H + 1 only for a single symbol: 1 bit vs 0)
    if np.count_nonzero(counts) > 1:
        assert average < h + 1


def _reference_huffman_cost(counts):
    # total bits of an optimal prefix code = sum of the weights of all merged nodes
    heap = [int(c) for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


@settings(max_examples=60)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=50).filter(lambda c: sum(c) > 0))
def test_lengths_are_optimal_and_complete(counts):
    ln = code_lengths(np.array(counts)).astype(np.int64)
    c = np.array(counts)
    assert int(np.sum(ln * c)) == _reference_huffman_cost(c)
    assert np.all((ln > 0) == (c > 0))
    used = ln[ln > 0]
    if used.size > 1:
        assert sum(2.0 ** -used) == 1.0  # Kraft equality: a full binary tree


@settings(max_examples=60)
@given(st.lists(st.integers(0, 10**6), min_size=2, max_size=40).filter(lambda c: sum(x > 0 for x in c) >= 2),
       st.integers(0, 10))
def test_length_limit_is_respected_and_optimal_when_loose(counts, extra):
    c = np.array(counts)
    used = int(np.count_nonzero(c))
    limit = max(1, int(np.ceil(np.log2(used)))) + extra
    ln = code_lengths(c, max_length=limit).astype(np.int64)
    assert ln.max() <= limit
    assert sum(2.0 ** -ln[ln > 0]) <= 1.0
    unlimited = code_lengths(c).astype(np.int64)
    assert np.sum(ln * c) >= np.sum(unlimited * c)
    if unlimited.max() <= limit:
        assert np.sum(ln * c) == np.sum(unlimited * c)
    code = HuffmanCode(ln.astype(np.uint8))
    x = np.repeat(np.arange(c.size), np.minimum(c, 3))
    data, nbits = encode(x, code)
    np.testing.assert_array_equal(decode(data, nbits, code), x)


@settings(max_examples=40)
@given(st.lists(st.integers(1, 50), min_size=2, max_size=5), st.integers(1, 4))
def test_length_limited_code_is_optimal_by_brute_force(counts, limit):
    c = np.array(counts)
    if 2 ** limit < c.size:
        return
    best = min(
        int(np.dot(ln, c))
        for ln in itertools.product(range(1, limit + 1), repeat=c.size)
        if sum(2.0 ** -v for v in ln) <= 1.0
    )
    ln = code_lengths(c, max_length=limit).astype(np.int64)
    assert ln.max() <= limit and sum(2.0 ** -ln) <= 1.0
    assert int(np.dot(ln, c)) == best


def test_package_merge_known_case():
    c = np.array([1, 1, 2, 4, 8])
    np.testing.assert_array_equal(code_lengths(c), [4, 4, 3, 2, 1])
    np.testing.assert_array_equal(code_lengths(c, max_length=3), [3, 3, 3, 3, 1])  # 32 bits, the optimum


def test_canonical_codes_deflate_example():
    # RFC 1951 §3.2.2: lengths (3,3,3,3,3,2,4,4) for A..H -> codes 010,011,100,101,110,00,1110,1111
    codes = canonical_codes(np.array([3, 3, 3, 3, 3, 2, 4, 4]))
    assert codes.tolist() == [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111]


def test_long_codes_use_the_bitwise_decoder():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(fib)
    code = HuffmanCode.from_counts(counts)
    assert code.lengths.max() > 20
    x = np.concatenate([np.arange(30), np.arange(30)[::-1], [0, 29, 5]])
    data, nbits = encode(x, code)
    np.testing.assert_array_equal(decode(data, nbits, code), x)


def test_single_symbol_costs_one_bit():
    code = HuffmanCode.from_symbols(np.zeros(10, dtype=int), 4)
    assert code.lengths.tolist() == [1, 0, 0, 0]
    data, nbits = encode(np.zeros(10, dtype=int), code)
    assert nbits == 10 and decode(data, nbits, code).tolist() == [0] * 10


def test_header_round_trip_and_rejects_garbage():
    code = HuffmanCode.from_counts(np.array([5, 0, 3, 1]))
    assert HuffmanCode.from_header(code.to_json()) == code
    assert HuffmanCode.from_header(code.to_header()) == code
    with pytest.raises(FileFormatError, match="version"):
        HuffmanCode.from_header({**code.to_header(), "version": 99})
    with pytest.raises(FileFormatError, match="Kraft"):
        HuffmanCode.from_header({**code.to_header(), "code_lengths": [1, 1, 1]})
    with pytest.raises(FileFormatError):
        HuffmanCode.from_header("{not json")


def test_corrupt_streams_are_rejected():
    code = HuffmanCode(np.array([1, 0, 0, 0], dtype=np.uint8))  # only "0" is a code
    with pytest.raises(FileFormatError, match="invalid code"):
        decode(b"\x80", 1, code)
    code = HuffmanCode.from_counts(np.array([1, 1, 2]))  # lengths 2, 2, 1
    data, nbits = encode(np.array([0, 1]), code)
    with pytest.raises(FileFormatError, match="truncated"):
        decode(data, nbits - 1, code)
    with pytest.raises(FileFormatError, match="expected 3 symbols"):
        decode(data, nbits, code, count=3)
    with pytest.raises(FileFormatError, match="nbits"):
        decode(data, 100, code)


def test_encode_validation():
    code = HuffmanCode.from_counts(np.array([3, 0, 1]))
    with pytest.raises(ValidationError, match="symbols"):
        encode(np.array([1]), code)  # symbol without a code
    with pytest.raises(ValidationError, match="symbols"):
        encode(np.array([3]), code)
    with pytest.raises(ValidationError, match="counts"):
        code_lengths(np.array([1, -1]))
    with pytest.raises(ValidationError, match="max_length"):
        code_lengths(np.array([1, 1, 1, 1, 1]), max_length=2)


def test_a_stream_too_long_for_its_count_is_refused_before_decoding():
    """The audit's case: 4 MiB of stream whose header says 2,376 symbols cost 9 s and 1.6 GB before
    the count was compared; the length check comes first now."""
    from tests._support.bounds import bounded

    code = HuffmanCode(np.array([1, 2, 3, 3], np.uint8))
    data = np.random.default_rng(0).integers(0, 256, 4 << 20, dtype=np.uint8).tobytes()
    with bounded(max_mib=8, max_seconds=0.5), pytest.raises(FileFormatError, match="cannot hold 2376"):
        decode(data, 8 * len(data), code, count=2376)


def test_decoding_memory_is_a_small_multiple_of_the_stream():
    """Chunked table decoding: the bits (1 byte each) and the result, not 8-byte integers per bit."""
    from tests._support.bounds import bounded

    x = _skewed(3, 8, 150_000)
    code = HuffmanCode.from_symbols(x, 8)
    data, nbits = encode(x, code)
    # the decoder before: four 8-byte integers per bit (here ~10 MiB); now ~1 byte per bit
    with bounded(max_mib=12 * len(data) / 2 ** 20 + 3, max_seconds=10):
        y = decode(data, nbits, code, count=x.size, dtype=np.uint16)
    assert y.dtype == np.uint16 and np.array_equal(y, x)


def test_decoding_stops_after_count_symbols():
    """50 one-bit codes pass the length check for 20 symbols of 1…3 bits; decoding stops past the 20th."""
    code = HuffmanCode(np.array([1, 2, 3, 3], np.uint8))
    data, nbits = encode(np.zeros(50, np.int64), code)
    with pytest.raises(FileFormatError, match="more than the expected 20"):
        decode(data, nbits, code, count=20)


@pytest.mark.parametrize("lengths", [[2, 2, 2, 2], [3, 3, 3, 3, 3]])
def test_equal_length_codes_decode_vectorised_and_refuse_unused_codes(lengths):
    code = HuffmanCode(np.array(lengths, np.uint8))
    x = np.arange(len(lengths)).repeat(3)
    data, nbits = encode(x, code)
    assert decode(data, nbits, code, count=x.size).tolist() == x.tolist()
    if len(lengths) == 5:   # code 111 (and 101, 110) belong to no symbol
        with pytest.raises(FileFormatError, match="invalid code"):
            decode(b"\xe0", 3, code)


# ---- found by mutation testing (benchmarks/mutation_score.py) ---------------------------------

def test_codes_longer_than_63_bits_are_limited_by_default():
    """Fibonacci counts make Huffman's tree a chain 70 deep; without max_length the lengths are still
    cut to 63 (codes are packed in uint64) by package-merge, the same as asking for 63."""
    fib = [1, 1]
    while len(fib) < 71:
        fib.append(fib[-1] + fib[-2])
    c = np.array(fib, dtype=np.int64)
    ln = code_lengths(c).astype(np.int64)
    assert ln.max() == 63 and np.sum(2.0 ** -ln) <= 1.0
    np.testing.assert_array_equal(ln, code_lengths(c, max_length=63))
    data, nbits = encode(np.arange(71), HuffmanCode(ln.astype(np.uint8)))
    np.testing.assert_array_equal(decode(data, nbits, HuffmanCode(ln.astype(np.uint8))), np.arange(71))


def test_max_length_reaches_the_constructors():
    c = np.array([1, 1, 2, 4, 8, 16, 32])
    assert HuffmanCode.from_counts(c).lengths.max() == 6
    assert HuffmanCode.from_counts(c, max_length=3).lengths.max() == 3
    s = np.repeat(np.arange(7), c)
    assert HuffmanCode.from_symbols(s, 7, max_length=3).lengths.max() == 3


def test_equality_entropy_and_compact_header():
    a, b = HuffmanCode.from_counts([1, 2, 4]), HuffmanCode.from_counts([4, 2, 1])
    assert a != b and a == HuffmanCode.from_counts([1, 2, 4]) and a != "code"
    assert entropy_bits(np.zeros(4, np.int64)) == 0.0
    assert entropy_bits([1, 1]) == 1.0
    assert " " not in a.to_json()                          # the header counts in the file's size


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.int64), np.zeros(0, np.int64)])
def test_counts_must_be_a_non_empty_vector(bad):
    with pytest.raises(ValidationError):
        code_lengths(bad)


@pytest.mark.parametrize("lengths", [[1, 64], [1, -1], [[1, 1]], []])
def test_lengths_out_of_range_are_refused(lengths):
    with pytest.raises(ValidationError):
        canonical_codes(np.array(lengths, dtype=np.int64))


@pytest.mark.parametrize("header", [
    ["refcomp.huffman"],
    {"format": "other"},
    {"format": "refcomp.huffman", "version": 1, "code_lengths": "1,1"},
    {"format": "refcomp.huffman", "version": 1, "code_lengths": [1, True]},
    {"format": "refcomp.huffman", "version": 1, "code_lengths": [1, 1.0]},
])
def test_malformed_headers_are_file_format_errors(header):
    with pytest.raises(FileFormatError):
        HuffmanCode.from_header(header)


def test_symbols_dtype_and_missing_symbol_message():
    code = HuffmanCode.from_counts([3, 0, 1])
    assert encode(np.zeros(0), code) == (b"", 0)             # an empty float array is no symbols
    with pytest.raises(ValidationError):
        encode(np.array([0.0, 2.0]), code)
    with pytest.raises(ValidationError, match=r"\[1\]"):
        encode(np.array([0, 1, 2]), code)                   # symbol 1 has no code


def test_stream_longer_than_its_bytes_and_the_largest_symbol_of_the_dtype():
    code = HuffmanCode.from_counts(np.r_[np.zeros(255, np.int64), [5]] + np.r_[[3], np.zeros(255, np.int64)])
    data, nbits = encode(np.array([255, 0, 255]), code)
    np.testing.assert_array_equal(decode(data, nbits, code, dtype=np.uint8), [255, 0, 255])
    with pytest.raises(FileFormatError):
        decode(data, 8 * len(data) + 1, code)
