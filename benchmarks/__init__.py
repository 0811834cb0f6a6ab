"""Paperwire's benchmarks, run from the repository root as modules, e.g.
``python -m benchmarks.eval_product`` (each folder's README.md gives the commands and figures)."""
