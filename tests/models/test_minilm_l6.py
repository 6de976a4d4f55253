"""all-MiniLM-L6-v2 in refcomp equals the PyTorch golden embeddings (../shared/data/minilm).

The oracle shares no code with refcomp: embeddings computed by PyTorch /
transformers (fp32), and token ids from the Rust tokenizer run there.
"""

import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.models import minilm_l6 as minilm_module
from refcomp.models.minilm_l6 import NAME_MAP, embed, mean_pool, tokenize

N = 32  # one golden batch: the first 32 sentences, padded to 128 as the golden run did


def _cos(a, b):
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_fp32_equals_golden_padded_batch(minilm_model, minilm_golden):
    e = embed(minilm_model, input_ids=minilm_golden["input_ids"][:N],
              attention_mask=minilm_golden["attention_mask"][:N])
    assert e.shape == (N, 384) and e.dtype == np.float32
    assert _cos(e, minilm_golden["embeddings"][:N]).min() >= 0.99999


def test_fp32_from_sentences_equals_golden_unpadded(minilm_model, minilm_golden):
    # each sentence alone, unpadded: the golden "one sentence per call" column
    e = embed(minilm_model, minilm_golden["sentences"][:8], batch=1)
    assert _cos(e, minilm_golden["embeddings_unpadded"][:8]).min() >= 0.99999


def test_tokenizer_gives_the_golden_ids(minilm_model, minilm_golden):
    ids, mask = tokenize(minilm_golden["sentences"], pad_to=128)
    np.testing.assert_array_equal(ids, minilm_golden["input_ids"])
    np.testing.assert_array_equal(mask, minilm_golden["attention_mask"])


def test_padding_does_not_change_the_embedding(minilm_model, minilm_golden):
    s = minilm_golden["sentences"][:4]
    a = embed(minilm_model, s)                   # padded to the longest of the 4
    b = embed(minilm_model, s, pad_to=64)
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_every_weight_is_loaded(minilm_model):
    names = {n for n, _ in minilm_model.named_weights()}
    assert names == set(NAME_MAP.values())
    # 22,713,216 in the file (22.7 M) less the pooler (384·384 + 384), which sentence embeddings do not use
    assert minilm_model.num_parameters() == 22_713_216 - 147_840


def test_mean_pool_formula():
    h = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    want = np.array([[1, 2], [6, 7]], np.float32)     # means over the kept tokens
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(mean_pool(h, mask), want, rtol=1e-6)


def test_bad_arguments(tmp_path, minilm_model):
    with pytest.raises(ValidationError, match="path"):
        minilm_module.minilm(tmp_path)                   # no model.safetensors there
    with pytest.raises(ValidationError, match="layers"):
        minilm_module.minilm(layers=7)
    with pytest.raises(DTypeError, match="sentences"):
        tokenize("one string, not a list")
    with pytest.raises(ValidationError, match="sentences"):
        embed(minilm_model)
    with pytest.raises(ShapeError, match="attention_mask"):
        embed(minilm_model, input_ids=np.ones((2, 4), np.int64), attention_mask=np.ones((2, 3)))


def test_a_damaged_file_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(FileFormatError, match="model.safetensors"):
        minilm_module.minilm(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 768}')
    with pytest.raises(FileFormatError, match="architecture"):
        minilm_module.minilm(tmp_path)
