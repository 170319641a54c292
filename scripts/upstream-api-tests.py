#!/usr/bin/env python
"""Run a copy of upstream metalab's tests against this package; print passes per file.

Usage: python scripts/upstream-api-tests.py UPSTREAM_CHECKOUT [TEST_FILE ...]

UPSTREAM_CHECKOUT is a directory holding upstream's ``tests/`` (a clone of
github.com/matthewmazurek/metalab, or just its test files); this repository contains
none of it. Each file runs in its own pytest process with the Python running this
script, so ``import metalab`` is this package. Without TEST_FILE arguments every
``tests/**/test_*.py`` runs. Exit status 0 when every file ran (failures included).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

TIMEOUT_S = 1800  # one file; test_runner.py takes about 2 minutes on 2 cores


def counts(checkout: Path, test_file: Path) -> tuple[int, int, int]:
    """(passed, skipped, total) of one test file, from pytest's JUnit XML."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--junitxml={report}", "--rootdir", str(checkout),
             str(test_file.relative_to(checkout))],
            cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
        if not report.is_file():
            return 0, 0, 0
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        if any(case.get("classname") == "" for case in suite.iter("testcase")):
            return 0, 0, _collected(checkout, test_file)  # did not import: all failed
        return max(total - skipped - bad, 0), skipped, total


def _collected(checkout: Path, test_file: Path) -> int:
    """How many tests pytest finds in a file that fails to import (0 when it cannot tell)."""
    out = subprocess.run(
        [sys.executable, "-c", "import ast,sys; t=ast.parse(open(sys.argv[1]).read()); "
         "print(sum(isinstance(n,(ast.FunctionDef,ast.AsyncFunctionDef)) and "
         "n.name.startswith('test') for n in ast.walk(t)))", str(test_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return int(out.stdout.strip() or 0)


def main(argv: list[str]) -> int:
    if not argv or not (Path(argv[0]) / "tests").is_dir():
        print("usage: upstream-api-tests.py UPSTREAM_CHECKOUT [TEST_FILE ...] "
              "(a directory holding upstream's tests/)", file=sys.stderr)  # fmt: skip
        return 2
    checkout = Path(argv[0]).resolve()
    files = [Path(f).resolve() for f in argv[1:]] or sorted(checkout.glob("tests/**/test_*.py"))
    passed_all = total_all = 0
    for test_file in files:
        passed, skipped, total = counts(checkout, test_file)
        passed_all, total_all = passed_all + passed, total_all + total
        note = f" ({skipped} skipped)" if skipped else ""
        print(f"{test_file.relative_to(checkout)}: {passed}/{total}{note}", flush=True)
    print(f"all: {passed_all}/{total_all}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
