"""Benchmark scripts and dataset loaders for modal_ally (not part of the installed package)."""
