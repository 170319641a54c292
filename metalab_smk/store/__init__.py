"""The files of an experiment directory: paths, strict JSON and atomic writes, records.

See docs/architecture.md for the layers and what each may import. ``FileStore``,
``FileStoreConfig``, ``StoreConfig``, ``create_store``, ``parse_to_config``,
``PostgresStore`` and the rest of upstream's store names load on first use (upstream's
``from metalab.store import FileStore``).
"""

from metalab_smk.core.lazy import lazy_getattr

_LAZY = {
    "FileStore": "metalab_smk.store.filestore",
    "FileStoreConfig": "metalab_smk.store.config",
    "StoreConfig": "metalab_smk.store.config",
    "ConfigRegistry": "metalab_smk.store.config",
    "LocatorInfo": "metalab_smk.store.locator",
    "parse_locator": "metalab_smk.store.locator",
    "parse_to_config": "metalab_smk.store.locator",
    "safe_experiment_id": "metalab_smk.store.layout",
    "PostgresStore": "metalab_smk.store.postgres",
    "PostgresStoreConfig": "metalab_smk.store.postgres",
    "create_store": "metalab_smk.store.locator",
    "export_store": "metalab_smk.store.filestore",
}


__getattr__ = lazy_getattr("metalab.store", _LAZY, globals())
