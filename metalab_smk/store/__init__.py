"""The files of an experiment directory: paths, strict JSON and atomic writes, records.

See docs/architecture.md for the layers and what each may import. ``FileStore``,
``FileStoreConfig`` and ``export_store`` load on first use (upstream's ``from
metalab.store import FileStore``).
"""

_LAZY = {
    "FileStore": "metalab_smk.store.filestore",
    "FileStoreConfig": "metalab_smk.store.config",
    "export_store": "metalab_smk.store.filestore",
}


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'metalab.store' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
