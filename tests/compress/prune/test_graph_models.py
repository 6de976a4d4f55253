"""Pruning works on any model graph, not only Sequential: a transformer encoder block.

The prunable layers of a Graph are found by their dotted names (the attention
projections are Linear layers inside MultiHeadAttention), masked, fine-tuned,
turned into CSR weights and saved; the pruned model computes what its masked
dense twin computes.
"""

import numpy as np

from refcomp.compress.prune.deploy import to_csr
from refcomp.compress.prune.model import masked_fine_tune, model_sparsity, prunable_layers, prune_model
from refcomp.formats import CSRMatrix
from refcomp.io import load_model, save_model
from refcomp.nn.blocks import transformer_encoder_block


def _block():
    return transformer_encoder_block(16, 2, 32, mask=False, rng=0).eval()


def test_prune_a_transformer_block_to_csr_and_back(tmp_path):
    g = _block()
    names = list(prunable_layers(g))
    assert {"attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj"} <= set(names)
    x = np.random.default_rng(0).standard_normal((3, 5, 16)).astype(np.float32)
    g, report = prune_model(g, {n: 0.75 for n in names})
    masks = report["masks"]
    s = model_sparsity(g, masks)
    assert all(abs(s[n] - 0.75) < 0.01 for n in names)
    for n, layer in prunable_layers(g).items():
        assert not layer.weight.data[~masks[n]].any()  # the pruned entries are zero
    y_dense = g.forward(x)
    sparse, _ = to_csr(g, names)
    for n in names:
        assert isinstance(dict(sparse.named_modules())[n].weight, CSRMatrix)
    np.testing.assert_allclose(sparse.forward(x), y_dense, rtol=1e-5, atol=1e-5)
    back = load_model(save_model(sparse, tmp_path / "block.safetensors"))
    assert back.forward(x).tobytes() == sparse.forward(x).tobytes()


def test_masked_fine_tune_keeps_a_graph_pruned():
    g = transformer_encoder_block(8, 2, 16, mask=False, rng=1)
    names = list(prunable_layers(g))
    g, report = prune_model(g, {n: 0.5 for n in names})
    masks = report["masks"]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 4, 8)).astype(np.float32)
    target = rng.standard_normal((32, 4, 8)).astype(np.float32)

    class MSE:  # per-token regression: the block's output against a random target
        def forward(self, z, y):
            self._d = (z - y) / z.size
            return float(np.mean((z - y) ** 2))

        def backward(self):
            return 2 * self._d

    before = [layer.weight.data.copy() for layer in prunable_layers(g).values()]
    tuned, _ = masked_fine_tune(g, (x, target), epochs=1, lr=0.05, batch_size=8, loss=MSE())
    after = prunable_layers(tuned)
    assert any(not np.array_equal(b, a.weight.data) for b, a in zip(before, after.values()))  # it trained
    for n, layer in after.items():
        assert not layer.weight.data[~masks[n]].any()  # and stayed pruned
