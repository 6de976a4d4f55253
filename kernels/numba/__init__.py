"""Numba kernels (backend="numba")."""
