"""What runs inside a Snakemake job: the worker, one run's execution, capture and its log.

This layer never imports pandas, snakemake or the host-side layers, so a job starts fast.

See docs/architecture.md for the layers and what each may import.
"""
