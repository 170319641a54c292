"""Upstream's executor lifecycle, shared by every executor (sweep/ and slurm/)."""

from __future__ import annotations

from typing import Self

__all__ = ["ContextManaged"]


class ContextManaged:
    """``with Executor(...) as ex:`` and ``shutdown()``, as upstream's executors have.
    Executors here hold no workers (Snakemake starts the jobs per sweep), so there is
    nothing to release."""

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing to release (accepted for upstream code)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)
