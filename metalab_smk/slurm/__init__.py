"""Everything specific to SLURM: settings and (in time) every scheduler command.

See docs/architecture.md for the layers and what each may import.
"""
