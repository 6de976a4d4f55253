"""Tests of refcomp.ops (a package so that module names cannot clash with other test folders)."""
