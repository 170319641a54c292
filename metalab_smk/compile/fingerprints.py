"""What the compiled description records about code and identity, and what changed.

The run ID covers the operation's own source (or its ``code_version``), the context, the
params, the seeds and ``name:version``. Code outside the operation (other functions of
the experiment file, local modules it imports) is not part of it; its file hashes are
recorded so that ``metalab plan`` / ``metalab run`` can warn when it changed while the
run IDs did not.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

from metalab_smk.core.experiment import Experiment
from metalab_smk.core.identity import canonical
from metalab_smk.errors import MetalabError

__all__ = [
    "changed_code_files",
    "code_files",
    "context_preview",
    "identity_changes",
    "operation_source",
    "reuse_warning",
]

PREVIEW_LIMIT = 4000  # characters of context / operation source kept for diffs

# part of the run ID -> the compiled-description keys that fingerprint it
_FINGERPRINTS: dict[str, str | tuple[str, ...]] = {
    "operation code": "code_fp",
    "context": "context_fp",
    "params": "params",
    "seeds": ("root_seed", "replicates", "numpy_bits"),
}


def context_preview(context: Any) -> str | None:
    """The canonical JSON of the context when it is short (for diffs), else None."""
    try:
        text = canonical(context, "context")
    except MetalabError:
        return None
    return text if len(text) <= PREVIEW_LIMIT else None


def operation_source(experiment: Experiment) -> str | None:
    """The operation's source text when it is short (for diffs), else None."""
    try:
        text = inspect.getsource(experiment.operation.fn)
    except (OSError, TypeError):
        return None
    return text if len(text) <= PREVIEW_LIMIT else None


def _is_local(path: str, folder: str, store: str) -> bool:
    return (
        path.startswith(folder)
        and not path.startswith(store)
        and "site-packages" not in path
        and "dist-packages" not in path
        and f"{os.sep}.metalab{os.sep}" not in path
    )


def code_files(source_file: str, store_dir: Path) -> dict[str, str]:
    """sha256 (16 hex) of the experiment file and of every module imported so far from
    its folder (or below it), by path relative to that folder. metalab's own modules,
    installed packages and the store are left out."""
    experiment_file = os.path.realpath(source_file)
    folder = os.path.dirname(experiment_file) + os.sep
    store = os.path.realpath(store_dir.parent) + os.sep
    files = {experiment_file}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name.split(".")[0] in ("metalab", "metalab_smk") or name == "__main__":
            continue
        real = os.path.realpath(path)
        if real.endswith(".py") and _is_local(real, folder, store):
            files.add(real)
    hashes = {}
    for path in sorted(files):
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError:
            continue
        hashes[os.path.relpath(path, folder)] = digest
    return hashes


def _value(description: dict[str, Any], keys: str | tuple[str, ...]) -> Any:
    if isinstance(keys, str):
        return description.get(keys)
    return tuple(description.get(k) for k in keys)


def _lines(value: Any) -> list[str]:
    if value is None:
        return ["(not recorded)"]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value.splitlines()
    return json.dumps(value, indent=1, sort_keys=True, default=str).splitlines()


def _diff(old: Any, new: Any, limit: int = 12) -> list[str]:
    lines = [
        line
        for line in difflib.unified_diff(_lines(old), _lines(new), lineterm="", n=1)
        if not line.startswith(("---", "+++", "@@"))
    ]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more changed lines)"]
    return lines


def identity_changes(
    previous: dict[str, Any], current: dict[str, Any]
) -> list[tuple[str, list[str]]]:
    """Parts of the run ID that differ between two compiled descriptions, each with a
    short diff of what the descriptions record about it."""
    changes = []
    for part, keys in _FINGERPRINTS.items():
        if _value(previous, keys) == _value(current, keys):
            continue
        if part == "operation code":
            diff = _diff(previous.get("operation_source"), current.get("operation_source"))
            if previous.get("code_version") != current.get("code_version"):
                diff.insert(
                    0,
                    f"code_version {previous.get('code_version')!r} -> "
                    f"{current.get('code_version')!r}",
                )
        elif part == "context":
            diff = _diff(previous.get("context_preview"), current.get("context_preview"))
        elif part == "params":
            diff = _diff(previous.get("params"), current.get("params"))
        else:
            diff = [
                f"base {previous.get('root_seed')} -> {current.get('root_seed')}, replicates "
                f"{previous.get('replicates')} -> {current.get('replicates')}, numpy_bits "
                f"{previous.get('numpy_bits', 32)} -> {current.get('numpy_bits', 32)}"
            ]
        changes.append((part, diff))
    return changes


def changed_code_files(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Local code files whose hash differs from (or is missing in) the previous compile."""
    old = previous.get("code_files") or {}
    new = current.get("code_files") or {}
    return sorted(path for path in new if old.get(path) != new[path])


def reuse_warning(previous: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The warning when code outside the operation changed since the last compile while
    every part of the run IDs stayed the same (so finished runs are reused)."""
    if not previous or "code_files" not in previous or identity_changes(previous, current):
        return None
    changed = changed_code_files(previous, current)
    if not changed:
        return None
    names = ", ".join(changed[:4]) + (f" (+{len(changed) - 4})" if len(changed) > 4 else "")
    return (
        f"code outside the operation changed since the last compile ({names}) but the run "
        "IDs did not: results are reused; bump the version or set "
        "@metalab.operation(code_version=...) to recompute."
    )
