"""Weight sharing (Han, Mao, Dally 2016, §3; docs/deep_compression.md).

cluster               k-means on a weight's kept entries (linear / density / random
                      init), centroid gradients and updates (eqs. D.12-D.16)
trained_quantization  the model-level transform: cluster every prunable layer
                      into a refcomp.formats.Clustered, fine-tune the centroids
cross_layer           one codebook shared by a group of layers (k-means over their union,
                      centroid gradients summed over the group)
hashing               HashedNets: each layer's weight as K real weights behind a seeded
                      hash and sign hash (refcomp.formats.Hashed), trained through it

The Huffman code of the cluster indices is a storage encoding:
refcomp.formats.huffman.
"""
