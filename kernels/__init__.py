"""Fast backends of refcomp.ops (installed as ``refcomp.kernels``).

Importing this package registers every available implementation with
refcomp.backend; ops find them there. Nothing here defines semantics: the
NumPy functions in refcomp.ops are the definitions.
"""
