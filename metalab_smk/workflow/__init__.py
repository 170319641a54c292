"""The Snakemake rules the package ships (inside the wheel; the repository's top-level
``workflow/`` folder links to them).

``RULES`` is included by every generated Snakefile; ``MODULE`` makes a compiled sweep a
Snakemake module of a larger pipeline (``module sweep: snakefile: MODULE``)."""

from pathlib import Path

RULES = str(Path(__file__).with_name("metalab.smk"))
MODULE = str(Path(__file__).with_name("module.smk"))
