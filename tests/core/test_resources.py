"""The one resource model (core/resources.py): Snakemake's units on every path, per-case
resource classes, and what the array engine asks sbatch for. No cluster needed."""

from __future__ import annotations

import pytest

import metalab_smk as metalab
from metalab_smk.core.resources import mem_mb, merge, normalise, runtime_minutes
from metalab_smk.errors import ExecutorError
from metalab_smk.slurm import scheduler
from metalab_smk.slurm.array import array_argv, sbatch_options
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.store.classes import ResourceClasses
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.executors import ProfileExecutor, profile_resources


@pytest.mark.parametrize(
    ("given", "minutes"),
    [
        (90, 90),
        ("90", 90),
        ("90m", 90),
        ("2h", 120),
        ("1.5h", 90),
        ("2 hours", 120),
        ("1d", 1440),
        ("30s", 1),
        ("1:30:00", 90),
        ("30:00", 30),
        ("1-00:00:00", 1440),
        ("1-12", 2160),
        ("'2h'", 120),
    ],
)
def test_runtime_in_every_unit(given, minutes) -> None:
    assert runtime_minutes(given) == minutes


@pytest.mark.parametrize(
    ("given", "mb"),
    [
        (500, 500),
        ("500", 500),
        ("500M", 500),
        ("500MB", 500),
        ("16G", 16000),
        ("2GB", 2000),
        ("4GiB", 4295),
        ("1T", 1000000),
        ("1.5G", 1500),
    ],
)
def test_memory_in_every_unit(given, mb) -> None:
    assert mem_mb(given) == mb


@pytest.mark.parametrize("bad", ["2x", "soon", "", True, 1.5j, "0"])
def test_bad_runtime_is_one_clear_error(bad) -> None:
    with pytest.raises(ExecutorError, match="runtime"):
        runtime_minutes(bad)


def test_normalise_speaks_snakemakes_vocabulary() -> None:
    got = normalise(
        {
            "mem": "16G",
            "runtime": "2h",
            "gpus": 1,
            "slurm_extra": "'--qos=normal'",
            "cpus_per_task": "4",
            "constraint": "a100",
            "tasks": 2,
        }
    )
    assert got == {
        "constraint": "a100",
        "cpus_per_task": 4,
        "gpu": 1,
        "mem_mb": 16000,
        "runtime": 120,
        "slurm_extra": "--qos=normal",
        "tasks": 2,
    }
    assert normalise({"mem_mib": 1000}) == {"mem_mb": 1048}
    assert normalise({"mem_mb_per_cpu": "2G"}) == {"mem_mb_per_cpu": 2000}
    for twice in ({"mem": "1G", "mem_mb": 5}, {"gpu": 1, "gpus": 1}):
        with pytest.raises(ExecutorError):
            normalise(twice)
    with pytest.raises(ExecutorError, match="mem"):
        normalise({"mem": "16X"})


def test_merge_replaces_a_request_in_either_form() -> None:
    base = {"mem_mb": 1000, "gpu": 1, "runtime": 30}
    assert merge(base, {"mem_mb_per_cpu": 500}) == {"gpu": 1, "mem_mb_per_cpu": 500, "runtime": 30}
    assert merge(base, {"gres": "gpu:a100:2"}) == {
        "gres": "gpu:a100:2",
        "mem_mb": 1000,
        "runtime": 30,
    }


def test_slurm_config_takes_the_same_units() -> None:
    config = SlurmConfig(time="2h", memory="4GiB")
    assert config.job_resources()["runtime"] == 120 and config.job_resources()["mem_mb"] == 4295
    assert SlurmConfig(time="1d").job_resources()["runtime"] == 1440
    assert SlurmConfig(time="1:30:00", memory=500).job_resources()["mem_mb"] == 500
    with pytest.raises(ExecutorError, match="SlurmConfig\\(memory="):
        SlurmConfig(memory="lots")
    extra = SlurmConfig(
        extra="--exclusive",
        extra_sbatch={"qos": "short"},
        resources={"constraint": "skylake", "mem_mb_per_cpu": "1G"},
    )
    resources = extra.job_resources()
    assert "mem_mb" not in resources and resources["mem_mb_per_cpu"] == 1000
    assert resources["slurm_extra"] == "--exclusive --qos=short"
    assert "slurm_extra='--exclusive --qos=short'" in extra.default_resources()


def test_array_engine_honours_every_key_or_refuses(tmp_path) -> None:
    resources = normalise(
        {
            "runtime": "2h",
            "mem": "2G",
            "cpus_per_task": 4,
            "gres": "gpu:a100:1",
            "constraint": "a100",
            "qos": "long",
            "tasks": 2,
            "slurm_partition": "gpu",
            "slurm_account": "lab",
            "slurm_extra": "--exclusive --reservation=r",
            "tmpdir": "/tmp",
        }
    )
    options = sbatch_options(resources)
    for expected in (
        "--time=120",
        "--mem=2000",
        "--cpus-per-task=4",
        "--gres=gpu:a100:1",
        "--constraint=a100",
        "--qos=long",
        "--ntasks=2",
        "--partition=gpu",
        "--account=lab",
        "--exclusive",
        "--reservation=r",
    ):
        assert expected in options
    assert sbatch_options({"gpu": 2, "gpu_model": "a100"}) == ["--gpus=a100:2"]
    with pytest.raises(ExecutorError, match="resource licence='x' has no sbatch option"):
        sbatch_options({"licence": "x"})
    with pytest.raises(ExecutorError, match="GPUs twice"):
        sbatch_options({"gpu": 1, "gres": "gpu:1"})
    argv = array_argv(
        ExperimentDir.at(tmp_path),
        "S",
        3,
        SlurmConfig(),
        resources,
        env={"METALAB_RESOURCE_ATTEMPTS": '[{"a": 1}]'},
    )
    assert "--time=120" in argv and "METALAB_TIME_LIMIT=7200" in argv[-1]
    assert "METALAB_RESOURCE_ATTEMPTS=" in argv[-1]


def _profile(directory, name: str, text: str):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


PROFILE = """\
executor: slurm
jobs: 7
default-resources:
  slurm_partition: "debug"
  slurm_account: "lab"
  runtime: 2h
  mem: 16G
  gres: "gpu:1"
  constraint: "a100"
  slurm_extra: "'--qos=normal'"
set-resources:
  metalab_batch:
    cpus_per_task: 4
"""


@pytest.mark.parametrize("name", ["config.yaml", "config.v8+.yaml", "profile.yaml"])
def test_profile_in_every_file_name_snakemake_reads(tmp_path, name) -> None:
    profile = ProfileExecutor(str(_profile(tmp_path / "p", name, PROFILE)))
    config = profile.slurm_config()
    assert config.max_concurrent == 7
    resources = config.job_resources()
    assert resources["runtime"] == 120 and resources["mem_mb"] == 16000
    assert resources["slurm_partition"] == "debug" and resources["slurm_account"] == "lab"
    assert resources["gres"] == "gpu:1" and "gpu" not in resources
    assert resources["cpus_per_task"] == 4 and resources["slurm_extra"] == "--qos=normal"
    options = sbatch_options(resources)
    assert {
        "--time=120",
        "--mem=16000",
        "--gres=gpu:1",
        "--constraint=a100",
        "--qos=normal",
    } <= set(options)


def test_profile_list_forms_and_foreign_rules(tmp_path) -> None:
    settings = {
        "default-resources": ["runtime=90", "mem_mb=500"],
        "set-resources": ["metalab_batch:mem=1G"],
    }
    assert profile_resources(settings) == {"mem_mb": 1000, "runtime": 90}
    with pytest.raises(ExecutorError, match="rule 'align'"):
        profile_resources({"set-resources": {"align": {"mem_mb": 5}}})
    with pytest.raises(ExecutorError, match="runtime"):
        profile_resources({"default-resources": {"runtime": "soon"}})
    qos = ProfileExecutor(
        str(_profile(tmp_path / "q", "config.yaml", "executor: slurm\nslurm-qos: high\n"))
    )
    assert qos.slurm_config().job_resources()["qos"] == "high"


def _double(params):
    return {"value": params["size"] * 2}


def test_per_case_resources_give_classes_and_leave_run_ids(tmp_path) -> None:
    def experiment(resources):
        return metalab.Experiment(
            name="classes",
            version="1",
            context={},
            operation=_double,
            params=metalab.grid(size=[1, 2, 3]),
            seeds=metalab.seeds(base=1, replicates=2),
            resources=resources,
        )

    from metalab_smk.compile.compiler import compile_experiment
    from metalab_smk.sweep.batches import plan_batches

    plain = compile_experiment(experiment({"mem": "1G"}), tmp_path / "a", verbose=False)
    per_case = compile_experiment(
        experiment(lambda p: {"mem": "2G" if p["size"] == 3 else "300M", "runtime": "1h"}),
        tmp_path / "b",
        verbose=False,
    )
    assert plain.read_run_ids() == per_case.read_run_ids()  # resources never enter run IDs
    table = ResourceClasses.read(per_case)
    assert table.classes == [{"mem_mb": 300, "runtime": 60}, {"mem_mb": 2000, "runtime": 60}]
    assert [table.of_run(i) for i in range(6)] == [0, 0, 0, 0, 1, 1]
    groups, _ = plan_batches(per_case, list(range(6)), 2, None, 1)
    assert [g.resources["mem_mb"] for g in groups] == [300, 2000]
    for group in groups:  # batches never mix classes
        for target in group.targets:
            listing = per_case.batch_listing(target.stem).read_text().split()
            assert {table.of_run(int(i)) for i in listing} == {table.classes.index(group.resources)}
    assert ResourceClasses.read(plain).classes == [{"mem_mb": 1000}]
    uneven = experiment(lambda p: {"mem": "2G"} if p["size"] == 3 else {"cpus_per_task": 2})
    with pytest.raises(metalab.errors.ExperimentError, match="gives mem_mb for some cases"):
        compile_experiment(uneven, tmp_path / "d", verbose=False)
    with pytest.raises(metalab.errors.ExperimentError, match="returned"):
        compile_experiment(experiment(lambda p: None), tmp_path / "c", verbose=False)


def test_cluster_limits_are_parsed() -> None:
    config = scheduler.parse_scontrol_config(
        "MaxArraySize            = 1001\nMaxJobCount = 10000\n"
    )
    assert config["MaxArraySize"] == "1001"
    partitions = scheduler.parse_partitions(
        "PartitionName=debug Default=YES MaxTime=1-00:00:00 MaxMemPerNode=UNLIMITED "
        "TRES=cpu=4,mem=19284M,node=1\n"
        "PartitionName=big Default=NO MaxTime=UNLIMITED MaxMemPerNode=64000\n"
    )
    assert partitions[0] == scheduler.PartitionLimits("debug", 1440, 19284, True)
    assert partitions[1] == scheduler.PartitionLimits("big", None, 64000, False)
