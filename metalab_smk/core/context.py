"""Context values: file and directory references hashed by content, and context specs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from metalab_smk.core.filehash import full_dir_hash, full_file_hash
from metalab_smk.core.identity import fingerprint
from metalab_smk.errors import MissingPathError

__all__ = ["DirPath", "FilePath", "Fingerprintable", "context_fingerprint", "context_spec"]

T = TypeVar("T")


@runtime_checkable
class Fingerprintable(Protocol):
    """Anything that says what of it belongs in a run's identity."""

    def fingerprint_payload(self) -> dict[str, Any]: ...


def _missing(kind: str, path: str, what: str) -> MissingPathError:
    return MissingPathError(
        f"{kind}({path!r}) does not exist as a {what} (looked at {os.path.abspath(path)}); "
        f"create it or fix the path in the experiment's context."
    )


class _PathValue:
    """What FilePath and DirPath share: a path string that ``open()`` and ``str()`` take,
    and the absolute path in the payload only when ``hash_path``."""

    path: str
    hash_path: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))

    def _payload(self, **content: Any) -> dict[str, Any]:
        if self.hash_path:
            content["path"] = os.path.abspath(self.path)
        return content

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path


@dataclasses.dataclass(frozen=True)
class FilePath(_PathValue):
    """A file whose *contents* (sha256) enter the run ID; its path only if ``hash_path``."""

    path: str
    hash_path: bool = False

    def fingerprint_payload(self) -> dict[str, Any]:
        if not os.path.isfile(self.path):
            raise _missing("FilePath", self.path, "file")
        return self._payload(kind="file", sha256=full_file_hash(self.path))

    def open(self, mode: str = "r", **kwargs: Any):
        """Open the file (shortcut for ``open(file_path.path)``)."""
        return open(self.path, mode, **kwargs)


@dataclasses.dataclass(frozen=True)
class DirPath(_PathValue):
    """A directory whose matching files' contents (and relative paths) enter the run ID."""

    path: str
    pattern: str = "*"
    hash_path: bool = False

    def fingerprint_payload(self) -> dict[str, Any]:
        if not os.path.isdir(self.path):
            raise _missing("DirPath", self.path, "directory")
        return self._payload(
            kind="dir", pattern=self.pattern, sha256=full_dir_hash(self.path, self.pattern)
        )

    def files(self) -> list[Path]:
        """The files the hash covers, sorted."""
        return sorted(p for p in Path(self.path).rglob(self.pattern) if p.is_file())


def context_spec(cls: type[T] | None = None, /, **dataclass_options: Any) -> Any:
    """Declare a context class: a frozen dataclass whose fields form the context identity."""

    def wrap(target: type[T]) -> type[T]:
        return dataclasses.dataclass(frozen=True, **dataclass_options)(target)

    return wrap if cls is None else wrap(cls)


def context_fingerprint(context: Any) -> str:
    """Fingerprint of a context: Fingerprintables by payload, dataclasses by their fields."""
    return fingerprint(context, "context")
