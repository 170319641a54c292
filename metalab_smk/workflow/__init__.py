"""The Snakemake rules every generated Snakefile includes (shipped inside the wheel)."""

from pathlib import Path

RULES = str(Path(__file__).with_name("metalab.smk"))
