"""The files of an experiment directory: paths, strict JSON and atomic writes, records.

See docs/architecture.md for the layers and what each may import.
"""
