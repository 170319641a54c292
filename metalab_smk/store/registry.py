"""Upstream's ``ConfigRegistry``: store config classes by locator scheme. Classes
register themselves on import; a scheme of a module not yet imported loads it."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

__all__ = ["ConfigRegistry"]

_PROVIDERS = {  # scheme -> the module whose import registers its config class
    "file": "metalab_smk.store.config",
    "postgresql": "metalab_smk.store.postgres",
    "postgres": "metalab_smk.store.postgres",
}


class ConfigRegistry:
    """Scheme -> store config class (``file``, ``postgresql``)."""

    _classes: ClassVar[dict[str, type[Any]]] = {}

    @classmethod
    def register(cls, config_class: type[Any]) -> type[Any]:
        cls._classes[config_class.scheme] = config_class
        return config_class

    @classmethod
    def get(cls, scheme: str) -> type[Any] | None:
        """The config class of ``scheme``, or None for an unknown scheme."""
        if scheme not in cls._classes and scheme in _PROVIDERS:
            importlib.import_module(_PROVIDERS[scheme])
        return cls._classes.get(scheme)

    @classmethod
    def schemes(cls) -> list[str]:
        for scheme in _PROVIDERS:
            cls.get(scheme)
        return sorted(cls._classes)
