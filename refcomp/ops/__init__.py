"""See the package docstring of refcomp."""
