#!/usr/bin/env python3
"""Move the flat test files ``tests/test_*.py`` into one folder per layer with ``git mv``.

The folder of a file is its entry in ``LAYER_OF`` (tests/layers.py); a file the table does
not name is classified by its marks and imports (``guess``), else stays flat. Then what
names the files' places is fixed: imports of other test modules (``tests.test_x``, bare
``test_x``), ``Path(__file__)...parents[N]`` in the moved files, ``tests/test_x.py`` in
tracked text files, and the table, emptied. Shared helpers (``store_helpers.py``,
``uistore.py``, ``fakes/``, ``fixtures/``, ...) stay in ``tests/``: ``tests/conftest.py``
puts that folder on ``sys.path``, so their imports hold from every folder.

Usage, from the repository root on a clean tree: ``python scripts/move-tests-to-layers.py
[--dry-run]``; it ends with ``ruff check --fix --select I`` on the changed files and a
``pytest --collect-only``. Running it again moves nothing more."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".yml", ".yaml", ".cff", ".txt", ".cfg", ""}


def load_layers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layers", TESTS / "layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_marks(tree: ast.Module) -> str:
    """The source of the module's ``pytestmark``, or ""."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return ast.unparse(node.value)
    return ""


def imported_modules(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def guess(path: Path, layers: ModuleType) -> str:
    """The folder of a test file the table does not name: ``cluster`` when its module
    marks say ``slurm``; ``e2e`` for a browser test; the layer its name starts with
    (``test_ui_*``); the highest layer of ``metalab_smk`` it imports (lower ones are
    usually helpers); ``e2e`` when its module marks say ``integration``; else ``core``
    (the public facade alone) or the top (ROOT)."""
    tree = ast.parse(path.read_text())
    marks, names = module_marks(tree), imported_modules(tree)
    if "mark.slurm" in marks:
        return "cluster"
    if "browser" in path.stem or any(name.startswith("playwright") for name in names):
        return "e2e"
    for layer in layers.LAYERS:
        if path.stem.startswith(f"test_{layer}"):
            return layer
    parts = [name.split(".") for name in names if name.split(".")[0] in ("metalab", "metalab_smk")]
    used = {"cli" if p[1].startswith("cli") else p[1] for p in parts if len(p) > 1}
    used &= set(layers.LAYERS)
    if used:
        return max(used, key=layers.LAYERS.index)
    if "mark.integration" in marks:
        return "e2e"
    return "core" if parts else layers.ROOT


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout


def plan_moves(layers: ModuleType) -> dict[Path, str]:
    """Flat test file -> folder, for the files that move."""
    moves = {}
    for path in sorted(TESTS.glob("test_*.py")):
        folder = layers.LAYER_OF.get(path.name)
        if folder is None:
            folder = guess(path, layers)
            print(f"{path.name}: not in LAYER_OF; by its marks and imports: {folder or 'stays'}")
        if folder != layers.ROOT:
            moves[path] = folder
    return moves


def located(layers: ModuleType) -> dict[str, str]:
    """Test module name -> its folder, for the files in folders."""
    where: dict[str, str] = {}
    for folder in layers.FOLDERS:
        for path in (TESTS / folder).glob("test_*.py"):
            if path.stem in where:
                sys.exit(f"two test files named {path.name}: pytest needs the names distinct")
            where[path.stem] = folder
    return where


def fix_imports(text: str, where: dict[str, str]) -> str:
    """Imports of test modules that now live in folders, qualified by the folder."""

    def qualified(match: re.Match[str]) -> str:
        module = match.group(2)
        return f"{match.group(1)}tests.{where[module]}.{module}" if module in where else match[0]

    text = re.sub(r"(\bfrom\s+|\bimport\s+)tests\.(test_\w+)\b", qualified, text)
    text = re.sub(r"(^[ \t]*from\s+)(test_\w+)(?=\s+import\b)", qualified, text, flags=re.M)

    def bare_import(match: re.Match[str]) -> str:
        indent, module = match.groups()
        if module not in where:
            return match[0]
        return f"{indent}import tests.{where[module]}.{module} as {module}"

    return re.sub(r"^([ \t]*)import[ \t]+(test_\w+)[ \t]*$", bare_import, text, flags=re.M)


def deeper(text: str) -> str:
    """``Path(__file__)[.resolve()].parents[N]`` one level deeper."""
    return re.sub(
        r"(Path\(__file__\)(?:\.resolve\(\)|\.absolute\(\))?\.parents\[)(\d+)\]",
        lambda m: f"{m.group(1)}{int(m.group(2)) + 1}]",
        text,
    )


def fix_mentions(text: str, where: dict[str, str]) -> str:
    """``tests/test_x.py`` -> ``tests/<folder>/test_x.py``."""
    return re.sub(
        r"\btests/(test_\w+)\.py\b",
        lambda m: f"tests/{where[m.group(1)]}/{m.group(1)}.py" if m.group(1) in where else m[0],
        text,
    )


def fix_code(text: str, where: dict[str, str], in_tests: bool) -> str:
    text = fix_mentions(text, where)
    return fix_imports(text, where) if in_tests else text


def rewrite(path: Path, change: Callable[[str], str]) -> bool:
    before = path.read_text()
    after = change(before)
    if after != before:
        path.write_text(after)
    return after != before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="say what moves; change nothing")
    args = parser.parse_args()
    layers = load_layers()
    moves = plan_moves(layers)
    for path, folder in moves.items():
        print(f"{path.relative_to(REPO)} -> tests/{folder}/{path.name}")
    if args.dry_run:
        return 0
    if git("status", "--porcelain", "--untracked-files=no").strip():
        sys.exit("commit or stash the changes first: the move should be a commit of its own")
    for path, folder in moves.items():
        (TESTS / folder).mkdir(exist_ok=True)
        git("mv", str(path.relative_to(REPO)), f"tests/{folder}/{path.name}")
    where = located(layers)
    changed = set()
    for path, folder in moves.items():
        if rewrite(TESTS / folder / path.name, deeper):
            changed.add(TESTS / folder / path.name)
    for name in git("ls-files").splitlines():
        path = REPO / name
        if not path.is_file() or path.suffix not in TEXT_SUFFIXES or "fixtures" in path.parts:
            continue
        in_tests = path.suffix == ".py" and path.is_relative_to(TESTS)
        try:
            if rewrite(path, lambda t, i=in_tests: fix_code(t, where, i)):
                changed.add(path)
        except UnicodeDecodeError:
            continue
    if rewrite(
        TESTS / "layers.py",
        lambda t: re.sub(r"(LAYER_OF: dict\[str, str\] = )\{\n.*?\n\}", r"\1{}", t, flags=re.S),
    ):
        changed.add(TESTS / "layers.py")
    names = sorted(str(p.relative_to(REPO)) for p in changed)
    print(f"moved {len(moves)} files; rewrote {len(names)}: {', '.join(names)}")
    py = [name for name in names if name.endswith(".py")]
    ruff = shutil.which("ruff")
    if py and ruff:  # imports sorted again where a module path changed
        subprocess.run([ruff, "check", "-q", "--fix", "--select", "I", *py], cwd=REPO)
    elif py:
        print(f"ruff not found: run `ruff check --fix --select I {' '.join(py)}`")
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    print(collected.stdout.strip().splitlines()[-1] if collected.stdout.strip() else "")
    if collected.returncode != 0:
        print(collected.stdout[-4000:], collected.stderr[-2000:], sep="\n")
    return collected.returncode


if __name__ == "__main__":
    sys.exit(main())
