"""The package's layering, checked on its source (docs/architecture.md, "Layers").

Every import of a ``metalab_smk`` module, including imports inside functions, is an edge
of the import graph. The graph must have no cycle, and a module may import only from its
own layer or the layers its layer is allowed to use."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "metalab_smk"
# Top-level packages of this project beside metalab_smk: each is a layer of its own.
PLUGIN = "snakemake_executor_plugin_metalab_slurm"  # Snakemake finds it by this name

# layer -> layers it may import (besides itself). Top-level modules are layers of their own.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "store": {"errors", "core"},
    "compile": {"errors", "core", "store"},
    "job": {"errors", "core", "store", "compile", "slurm"},  # slurm: only JOB_SLURM
    "results": {"errors", "core", "store", "compile"},
    "slurm": {"errors", "core", "store"},
    "sweep": {"errors", "core", "store", "compile", "job", "results", "slurm"},
    "workflow": set(),
    "ui": {"errors", "core", "store", "compile", "results", "sweep", "slurm"},
    "report": {"errors", "core", "store", "compile", "results"},
    # entry points and the public facade may use everything
    "cli": {"*"},
    "__init__": {"*"},
    "worker": {"job"},
    "reduce": {"results"},
    "cli_stores": {"*"},
    "cli_completion": set(),  # the parser it is given; nothing else
    "cli_json": {"errors", "core", "store", "compile", "results", "sweep"},
    "_aliases": set(),  # upstream module paths; imports by name at import time only
    PLUGIN: {"errors", "core", "store", "slurm"},  # Snakemake's executor plugin
}
# The one SLURM module the job side may use (standard library only: scontrol on job start).
JOB_SLURM = "metalab_smk.slurm.scheduler"
# What the job side (and so every job's start) must never load.
JOB_FORBIDDEN = ("pandas", "pyarrow", "snakemake", "metalab_smk.sweep", "metalab_smk.results")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "metalab_smk":
        return parts[0]
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    this = _module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # ``from pkg import submodule`` imports the submodule
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if _exists(candidate):
                    found.add(candidate)
    return found


def _exists(module: str) -> bool:
    if not module.startswith("metalab_smk"):
        return False
    rel = Path(*module.split("."))
    root = PACKAGE.parent
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted([*PACKAGE.rglob("*.py"), *(PACKAGE.parent / PLUGIN).rglob("*.py")]):
        graph[_module_name(path)] = {
            name for name in _imports(path) if name.startswith("metalab_smk") and _exists(name)
        }
    return graph


def _fail_on_cycle(graph: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target == node:
                continue
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)


def test_no_import_cycles() -> None:
    # parent packages are imported implicitly; edges to a package's own __init__ count too
    _fail_on_cycle(_graph())


def test_front_end_modules_import_no_cycle() -> None:
    """The dashboard's ES modules (ui/static/*.js): pages import helpers, never app.js."""
    static = PACKAGE / "ui" / "static"
    graph = {
        path.name: set(re.findall(r"""from\s+["']\./([\w-]+\.js)["']""", path.read_text()))
        for path in static.glob("*.js")
    }
    assert graph.get("app.js"), graph  # the regex still finds the imports
    _fail_on_cycle(graph)


def test_layers_import_only_what_they_may() -> None:
    broken = []
    for module, targets in _graph().items():
        layer = _layer(module)
        allowed = ALLOWED.get(layer)
        assert allowed is not None, f"{module}: layer {layer!r} is not in ALLOWED (add it)"
        if "*" in allowed:
            continue
        for target in targets:
            target_layer = _layer(target)
            if target_layer in ("__init__",) and target == "metalab_smk":
                if layer in ("core", "store", "job", "compile"):
                    continue  # only ``__version__``; the facade's eager part is core
                broken.append(f"{module} imports the facade {target}")
            elif (
                layer == "job"
                and target_layer == "slurm"
                and target
                not in (
                    "metalab_smk.slurm",
                    JOB_SLURM,
                )
            ):
                broken.append(f"{module} (job) imports {target}; only {JOB_SLURM} is light")
            elif target_layer != layer and target_layer not in allowed:
                broken.append(f"{module} ({layer}) imports {target} ({target_layer})")
    assert not broken, "layering broken:\n" + "\n".join(sorted(broken))


def test_job_side_imports_nothing_heavy() -> None:
    broken = []
    for path in sorted((PACKAGE / "job").rglob("*.py")):
        for name in _imports(path):
            if name.startswith(JOB_FORBIDDEN):
                broken.append(f"{_module_name(path)} imports {name}")
    assert not broken, "\n".join(broken)


def test_layer_table_covers_every_subpackage() -> None:
    layers = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    layers |= {p.stem for p in PACKAGE.glob("*.py")}
    assert layers <= set(ALLOWED), f"layers without rules: {sorted(layers - set(ALLOWED))}"


def test_scheduler_needs_only_the_standard_library() -> None:
    """The job side imports slurm.scheduler, so it must stay light."""
    path = PACKAGE / "slurm" / "scheduler.py"
    inner = {n for n in _imports(path) if n.startswith("metalab_smk")}
    assert inner <= {"metalab_smk.errors"}, inner
    outer = {n.split(".")[0] for n in _imports(path) if not n.startswith("metalab_smk")}
    assert outer <= set(sys.stdlib_module_names), outer


def test_sql_lives_only_in_the_index_package() -> None:
    """psycopg (and so SQL on the index) is used only by ``results/index``."""
    index = PACKAGE / "results" / "index"
    users = [
        _module_name(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.is_relative_to(index) and any(n.startswith("psycopg") for n in _imports(path))
    ]
    assert not users, f"psycopg used outside results/index: {users}"


SCHEDULER_COMMANDS = {"sbatch", "scancel", "squeue", "sacct", "scontrol", "sinfo"}


def test_only_slurm_runs_scheduler_commands() -> None:
    """No module outside ``slurm/`` (and the plugin, which submits through it) builds a
    scheduler command line: ``sweep/stop.py`` cancels through the executor."""
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _layer(_module_name(path)) == "slurm":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            first = node.elts[0] if isinstance(node, ast.List) and node.elts else None
            if isinstance(first, ast.Constant) and first.value in SCHEDULER_COMMANDS:
                broken.append(f"{_module_name(path)}:{node.lineno} runs {first.value}")
    assert not broken, "\n".join(broken)


def test_every_executor_keeps_the_contract(tmp_path: Path) -> None:
    """Each registered executor follows the ``Executor`` protocol and comes back from
    its JSON form equal (the detached head rebuilds it so)."""
    from metalab_smk.slurm.config import SlurmConfig
    from metalab_smk.slurm.executors import ProfileExecutor, SlurmExecutor
    from metalab_smk.sweep.executors import (
        EXECUTORS,
        Executor,
        LocalExecutor,
        executor_from_dict,
    )

    (tmp_path / "config.yaml").write_text("executor: slurm\njobs: 7\n")
    examples = [
        LocalExecutor(cores=3, chunk_size=2),
        SlurmExecutor(SlurmConfig(time="2h", memory="4G")),
        ProfileExecutor(str(tmp_path), engine="snakemake"),
    ]
    assert {type(e) for e in examples} == set(EXECUTORS.values())
    for executor in examples:
        assert isinstance(executor, Executor)
        assert EXECUTORS[executor.kind] is type(executor)
        assert executor_from_dict(json.loads(json.dumps(executor.to_dict()))) == executor
    assert examples[2].total_cores() == 7 and examples[2].min_chunk == 10
    assert examples[0].head_argv(None, ["x"], "1h") is None  # type: ignore[arg-type]
