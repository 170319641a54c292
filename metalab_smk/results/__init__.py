"""Reading what the jobs wrote: the parquet summaries and the Results API.

See docs/architecture.md for the layers and what each may import.
"""
