"""Which axes start logarithmic, and which experiments are versions of one another."""

from __future__ import annotations

import metalab
from metalab_smk.ui.axes import log_grid, log_params, log_values
from metalab_smk.ui.versions import other_versions


def test_log_uniform_params_are_read_from_the_manifest() -> None:
    space = {
        "lr": metalab.loguniform(1e-4, 1e-1),
        "width": metalab.loguniform_int(8, 512),
        "dropout": metalab.uniform(0.0, 0.5),
        "act": metalab.choice(["relu", "gelu"]),
    }
    manifest = metalab.random(space, n_trials=4, seed=1).to_manifest()
    assert log_params(manifest) == {"param_lr", "param_width"}
    assert log_params({"type": "ResolvedSource", "source": manifest}) == {"param_lr", "param_width"}
    assert log_params(metalab.grid(lr=[0.1, 0.01]).to_manifest()) == set()
    assert log_params(None) == set()


def test_log_grids_and_metrics_spanning_decades() -> None:
    assert log_grid([1e-4, 1e-3, 1e-2, 1e-1]) and not log_grid([1, 2, 3, 100])
    assert not log_grid([0.01, 0.1]) and not log_grid([0, 1, 10, 100])
    assert log_values([0.001, 5.0]) and not log_values([0.01, 5.0]) and not log_values([-1, 1e4])


def test_other_versions_nearest_first() -> None:
    listed = [{"experiment_id": f"exp:{v}", "name": "exp"} for v in (1, 2, 3)]
    listed.append({"experiment_id": "other:1", "name": "other"})
    assert other_versions(listed, "exp:2") == ["exp:1", "exp:3"]
    assert other_versions(listed, "exp:1") == ["exp:2", "exp:3"]
    assert other_versions(listed, "other:1") == [] and other_versions(listed, "nope") == []
    stores = [{**e, "key": "a@" + e["experiment_id"]} for e in listed[:2]]
    assert other_versions(stores, "a@exp:2") == ["a@exp:1"]
