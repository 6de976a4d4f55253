"""Low-rank factorization (docs/lowrank.md).

factorize  the array-level algorithms: rank choice, truncated SVD, conv SVD, Tucker-2
model      the model-level transform: a Linear / Conv2d becomes two or three layers
search     ranks for a whole model under a parameter budget, stopped by the validation error
tensor     CP (ALS) and tensor-train (TT-SVD) decompositions, TT-matrices of Linear weights
tensor_model  a Conv2d as four convolutions (CP or TT), a Linear as a refcomp.nn TTLinear
pca        low-rank quantization: project on the inputs' principal components, RTN the factors
"""
