"""How a script ends when the user interrupts a sweep: one message line, no traceback,
exit status 130 (as for Ctrl-C), also when the sweep is stopped from a notebook-less
script by an uncaught SweepInterrupted."""

from __future__ import annotations

import os
import sys

from metalab_smk.errors import SweepInterrupted

__all__ = ["exit_130_if_interrupted", "quiet_interrupt_exit"]

_interrupted_script = False


def exit_130_if_interrupted() -> None:
    """At exit of a script ended by SweepInterrupted: exit status 130 (as for Ctrl-C)."""
    if _interrupted_script:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def quiet_interrupt_exit() -> None:
    """In a script, let an uncaught SweepInterrupted end it without a traceback (the
    one-line message was printed) and with exit status 130."""
    if hasattr(sys, "ps1") or "IPython" in sys.modules:
        return
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        global _interrupted_script
        if issubclass(kind, SweepInterrupted):
            _interrupted_script = True
        else:
            previous(kind, value, traceback)

    sys.excepthook = hook
