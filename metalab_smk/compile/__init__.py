"""From an Experiment to an experiment directory Snakemake can run, and back.

See docs/architecture.md for the layers and what each may import.
"""
