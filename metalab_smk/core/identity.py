"""Canonical JSON, fingerprints and run IDs (docs/architecture.md, "Identity rules").

These rules decide which runs count as done, so they must never change by accident;
the golden values in the tests pin them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from metalab_smk.core.values import is_numpy, numpy_to_python
from metalab_smk.errors import CanonicalizeError

__all__ = ["canonical", "encode", "fingerprint", "run_id", "seed_fingerprint", "sha16"]


def _encode_float(value: float, path: str) -> str:
    if math.isnan(value) or math.isinf(value):
        where = f" at {path}" if path else ""
        raise CanonicalizeError(
            f"{value!r}{where} cannot be part of a run identity: NaN and +-Inf are not "
            "allowed; use None or a finite number (or a string such as 'inf')."
        )
    return repr(value)


def _encode_dict(obj: dict, path: str) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise CanonicalizeError(
                f"dict key {key!r} at {path or 'top level'} has type {type(key).__name__}; "
                "use str, int, float, bool or None keys."
            )
        name = str(key)
        if name in encoded:
            raise CanonicalizeError(
                f"dict at {path or 'top level'} has two keys that both read {name!r}; "
                "rename one of them."
            )
        encoded[name] = encode(value, f"{path}[{key!r}]")
    return encoded


def encode(obj: Any, path: str = "") -> Any:
    """Turn ``obj`` into plain JSON data following the canonical rules.

    ``path`` names where ``obj`` sits (for example ``['lr'][2]``) so that errors point at
    the offending field.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _encode_float(float(obj), path)
    if is_numpy(obj):
        return encode(numpy_to_python(obj), path)
    if isinstance(obj, bytes):
        return {"__bytes__": obj.hex()}
    if isinstance(obj, (list, tuple)):
        return [encode(item, f"{path}[{i}]") for i, item in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [encode(item, f"{path}{{...}}") for item in obj]
        try:
            return sorted(items)  # the original's order
        except TypeError:  # mixed types: fall back to a total order on their JSON text
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(obj, dict):
        return _encode_dict(obj, path)
    payload = getattr(obj, "fingerprint_payload", None)
    if callable(payload):
        return encode(payload(), path)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return _encode_dict(fields, path)
    raise CanonicalizeError(
        f"value at {path or 'top level'} has type {type(obj).__module__}."
        f"{type(obj).__qualname__}, which has no canonical form; use JSON-like values "
        "(None, bool, int, float, str, bytes, list, tuple, set, dict), a dataclass, or give "
        "the class a fingerprint_payload() method returning a dict."
    )


def canonical(obj: Any, path: str = "") -> str:
    """Deterministic JSON text of ``obj``: sorted keys, compact separators, floats as repr.

    ``path`` prefixes the field path in error messages (``"params"`` -> ``params['lr']``).
    """
    return json.dumps(encode(obj, path), sort_keys=True, separators=(",", ":"))


def sha16(text: str) -> str:
    """First 16 hex characters of the sha256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint(obj: Any, path: str = "") -> str:
    """First 16 hex characters of sha256 of ``canonical(obj)``."""
    return sha16(canonical(obj, path))


def seed_fingerprint(root_seed: int, replicate_index: int | None, numpy_bits: int = 32) -> str:
    """Fingerprint of a seed bundle as it enters the run ID (``numpy_bits`` only when it
    is not upstream's 32, so default run IDs equal upstream's)."""
    seed: dict[str, Any] = {"root_seed": root_seed, "replicate_index": replicate_index}
    if numpy_bits != 32:
        seed["numpy_bits"] = numpy_bits
    return fingerprint(seed)


def run_id(
    experiment_id: str,
    context_fp: str,
    params_fp: str,
    seed_fp: str,
    code_fp: str = "",
) -> str:
    """Run ID of one (experiment, context, params, seed, code) combination."""
    return fingerprint(
        {
            "code_fp": code_fp,
            "context_fp": context_fp,
            "experiment_id": experiment_id,
            "params_fp": params_fp,
            "seed_fp": seed_fp,
        }
    )
