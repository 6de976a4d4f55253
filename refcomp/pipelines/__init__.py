"""Pipelines: compositions of compression families into one end-to-end run.

deep_compression  prune -> retrain -> cluster -> fine-tune centroids -> Huffman
                  (Han, Mao, Dally 2016), its configuration and report
diff              two models compared layer by layer (refcomp diff): SQNR, cosine, max error
minilm            all-MiniLM-L6-v2 by named recipes; embeddings scored (cosine, NN@10)
recipe            any pipeline as a TOML file of ordered steps (any family), validated up front,
                  overrides merged key by key; run with a JSON record (docs/recipes.md)
"""
