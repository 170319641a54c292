"""SLURM argv builders and output parsers on literal outputs (no cluster needed).

Outputs marked "recorded" were printed by slurm-wlm 22.05 on the local test cluster; the
others (.extern steps, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED) follow the same
format as printed by sacct on clusters with those features."""

from __future__ import annotations

import pytest

from metalab_smk.errors import MetalabError, SchedulerError
from metalab_smk.slurm import scheduler as s

# recorded: sacct -n -P -o JobIDRaw,JobID,State -j 1,2,3,4 (no -X: with steps)
SACCT_STEPS = """\
1|1|COMPLETED
1.batch|1.batch|COMPLETED
1.0|1.0|COMPLETED
2|2|FAILED
2.batch|2.batch|FAILED
3|3|CANCELLED by 0
3.batch|3.batch|CANCELLED
5|4_0|COMPLETED
5.batch|4_0.batch|COMPLETED
6|4_1|FAILED
6.batch|4_1.batch|FAILED
4|4_2|COMPLETED
4.batch|4_2.batch|COMPLETED
"""

SACCT_OTHER = """\
101|101|TIMEOUT
101.batch|101.batch|CANCELLED
101.extern|101.extern|COMPLETED
102|102|OUT_OF_MEMORY
102.batch|102.batch|OUT_OF_MEMORY
102.extern|102.extern|COMPLETED
103|103|NODE_FAIL
104|104|PREEMPTED
105|105|CANCELLED by 1000
106|106|RUNNING
107|107|PENDING
"""


def test_sacct_allocations_and_steps() -> None:
    rows = s.parse_sacct(SACCT_STEPS)
    assert len(rows) == 13
    jobs = {r.raw_id: r for r in rows if not r.is_step}
    assert {k: r.state for k, r in jobs.items()} == {
        "1": "COMPLETED",
        "2": "FAILED",
        "3": "CANCELLED",
        "5": "COMPLETED",
        "6": "FAILED",
        "4": "COMPLETED",
    }
    assert jobs["3"].by == "0" and jobs["1"].by is None
    assert jobs["6"].job_id == "4_1"  # an array task: its own raw ID, shown as ARRAY_TASK
    steps = [r.job_id for r in rows if r.is_step]
    assert steps == [
        "1.batch",
        "1.0",
        "2.batch",
        "3.batch",
        "4_0.batch",
        "4_1.batch",
        "4_2.batch",
    ]
    assert not any(r.alive for r in rows)


def test_sacct_failure_states() -> None:
    jobs = {r.raw_id: r for r in s.parse_sacct(SACCT_OTHER) if not r.is_step}
    assert {k: r.state for k, r in jobs.items()} == {
        "101": "TIMEOUT",
        "102": "OUT_OF_MEMORY",
        "103": "NODE_FAIL",
        "104": "PREEMPTED",
        "105": "CANCELLED",
        "106": "RUNNING",
        "107": "PENDING",
    }
    assert jobs["105"].by == "1000"
    assert [k for k, r in jobs.items() if r.alive] == ["106", "107"]
    extern = [r for r in s.parse_sacct(SACCT_OTHER) if r.job_id.endswith(".extern")]
    assert len(extern) == 2 and all(r.is_step for r in extern)


def test_sacct_ignores_blank_and_short_lines() -> None:
    assert s.parse_sacct("\n  \nsacct: invalid option -- '1'\n7|7|\n") == []


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [("1\n", "1"), ("7;ci\n", "7"), ("Submitted? no\n12345\n", "12345")],  # recorded 1, 7;ci
)
def test_sbatch_parsable(stdout: str, job_id: str) -> None:
    assert s.parse_sbatch(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "sbatch: error: Batch job submission failed\n"])
def test_sbatch_without_job_id(stdout: str) -> None:
    with pytest.raises(SchedulerError, match="no job ID") as caught:
        s.parse_sbatch(stdout)
    assert isinstance(caught.value, MetalabError)


def test_squeue_tasks_and_pending_arrays() -> None:
    # recorded: squeue -h -r -o '%A|%i|%T' of a running and of a pending array
    running = "13|13_2|RUNNING\n15|13_1|RUNNING\n14|13_0|RUNNING\n"
    assert s.parse_squeue(running) == {
        "13": "RUNNING",
        "13_2": "RUNNING",
        "15": "RUNNING",
        "13_1": "RUNNING",
        "14": "RUNNING",
        "13_0": "RUNNING",
    }
    pending = "8|8_0|PENDING\n8|8_1|PENDING\n"
    assert s.parse_squeue(pending) == {"8": "PENDING", "8_0": "PENDING", "8_1": "PENDING"}
    assert s.parse_squeue("3|RUNNING\n\n") == {"3": "RUNNING"}  # the older two-field form
    assert s.parse_squeue("") == {}


# recorded: scontrol show job -o 3 (shortened in the middle)
SCONTROL_ONE_LINE = (
    "JobId=3 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757 "
    "Nice=0 Account=root QOS=normal JobState=RUNNING Reason=None Dependency=(null) "
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:01 "
    "TimeLimit=UNLIMITED Partition=debug AllocNode:Sid=localhost:5078 NodeList=vm "
    "BatchHost=vm NumNodes=1 NumCPUs=1 TRES=cpu=1,mem=500M,node=1,billing=1 "
    "Command=(null) WorkDir=/data/exp StdErr=/data/exp/3.out StdIn=/dev/null "
    "StdOut=/data/exp/3.out Power= \n"
)
# recorded: scontrol show job 9 (the default multi-line form, first lines)
SCONTROL_MULTI_LINE = """\
JobId=9 JobName=wrap
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=4294901753 Nice=0 Account=root QOS=normal
   JobState=PENDING Reason=Priority Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
"""


def test_scontrol_show_job() -> None:
    one = s.parse_scontrol_job(SCONTROL_ONE_LINE)
    assert one["JobId"] == "3" and one["JobState"] == "RUNNING"
    assert one["StdOut"] == "/data/exp/3.out"
    assert one["TRES"] == "cpu=1,mem=500M,node=1,billing=1"
    assert one["AllocNode:Sid"] == "localhost:5078" and one["Power"] == ""
    multi = s.parse_scontrol_job(SCONTROL_MULTI_LINE)
    assert multi["JobState"] == "PENDING" and multi["Reason"] == "Priority"
    assert "StdOut" not in multi


def test_argv_builders() -> None:
    argv = s.sbatch_argv(
        ["python", "-m", "x", "a b"],
        job_name="j",
        output="logs/%A_%a.log",
        chdir="/d",
        time_minutes=30,
        memory_mb=500,
        cpus=2,
        partition="debug",
        account="acc",
        array="0-9%4",
        extra=["--qos=short"],
    )
    assert argv[:2] == ["sbatch", "--parsable"]
    assert argv[argv.index("--array") + 1] == "0-9%4"
    assert argv[argv.index("--time") + 1] == "30"
    assert argv[argv.index("--mem") + 1] == "500"
    assert argv[argv.index("--partition") + 1] == "debug"
    assert argv[argv.index("--account") + 1] == "acc"
    assert "--qos=short" in argv and argv[-2:] == ["--wrap", "python -m x a b"]
    bare = s.sbatch_argv("true", job_name="j", output="o", chdir="/d")
    assert "--partition" not in bare and "--array" not in bare and bare[-1] == "true"
    assert s.sacct_argv(["2", "1"])[-2:] == ["-j", "2,1"]
    assert s.squeue_argv(["5"])[-2:] == ["-j", "5"]
    assert s.scontrol_job_argv("7") == ["scontrol", "show", "job", "-o", "7"]
    assert s.scancel_argv(["7", "8"]) == ["scancel", "7", "8"]
    assert s.scancel_argv(["7"], signal="TERM") == ["scancel", "--signal=TERM", "7"]


def test_call_reports_a_missing_command() -> None:
    with pytest.raises(SchedulerError, match="no-such-slurm-command failed"):
        s.call(["no-such-slurm-command"])
    assert s.job_states([]) == {}


def test_shipped_profile_is_the_template_and_options_fill_it(tmp_path) -> None:
    from pathlib import Path

    from metalab_smk.slurm.profile import profile_text, write_profile

    repo = Path(__file__).resolve().parents[2]
    shipped = repo / "metalab_smk" / "workflow" / "profiles" / "slurm" / "config.yaml"
    assert shipped.read_text() == profile_text()
    assert (repo / "profiles" / "slurm" / "config.yaml").read_text() == profile_text()
    config = write_profile(
        "slurm", tmp_path / "p", partition="gpu", account="lab", time="2:00:00", memory="4G"
    )
    text = config.read_text()
    assert 'slurm_partition: "gpu"' in text and 'slurm_account: "lab"' in text
    assert "runtime: 120 " in text and "mem_mb: 4000" in text  # Snakemake's units: 4G
    assert "executor: metalab-slurm" in text
    with pytest.raises(MetalabError, match="--force"):
        write_profile("slurm", tmp_path / "p", partition="other")
    assert "other" in write_profile("slurm", tmp_path / "p", True, partition="other").read_text()


def test_sacct_since_narrows_to_the_submission() -> None:
    import datetime as dt

    since = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    argv = s.sacct_argv(["9"], since)
    local = since.astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    assert argv[-2:] == ["-S", local]
    assert "-S" not in s.sacct_argv(["9"])


def test_array_command_runs_setup_lines_and_extra_sbatch(tmp_path) -> None:
    from metalab_smk.slurm.array import array_argv
    from metalab_smk.slurm.config import SlurmConfig
    from metalab_smk.store.layout import ExperimentDir

    config = SlurmConfig(
        partition="debug",
        time="01:00:00",
        memory="2G",
        max_concurrent=8,
        modules=["gcc/12"],
        setup=["export A=1"],
        extra_sbatch={"qos": "short"},
        extra="--exclusive",
    )
    argv = array_argv(ExperimentDir.at(tmp_path), "20260101T000000", 25, config)
    assert argv[argv.index("--array") + 1] == "0-24%8"
    assert "--time=60" in argv and "--mem=2000" in argv
    assert "--qos=short" in argv and "--exclusive" in argv
    wrapped = argv[-1]
    assert wrapped.startswith("module load gcc/12 && export A=1 && ")
    assert wrapped.endswith("-m metalab_smk.worker task 20260101T000000")


def test_array_of_the_ready_batches_names_their_numbers_and_resources_map() -> None:
    """The metalab-slurm executor submits the ready batches' numbers as array indices,
    with the SLURM settings Snakemake resources give (as the official plugin reads them)."""
    from metalab_smk.slurm.array import array_argv, array_indices
    from metalab_smk.slurm.config import SlurmConfig
    from metalab_smk.store.layout import ExperimentDir

    assert array_indices(4) == "0-3"
    assert array_indices([7, 0, 1, 2, 5, 8]) == "0-2,5,7-8"
    assert array_indices([3]) == "3"
    config = SlurmConfig.from_resources(
        {"slurm_partition": "gpu", "runtime": 20, "mem_mb": 700, "cpus_per_task": 2,
         "gpu": 1, "slurm_extra": "'--qos=short'"},
        max_concurrent=3,
    )  # fmt: skip
    resources = config.job_resources()  # the job's resources win over the defaults
    assert (resources["slurm_partition"], resources["runtime"]) == ("gpu", 20)
    assert (resources["mem_mb"], resources["cpus_per_task"], resources["gpu"]) == (700, 2, 1)
    argv = array_argv(ExperimentDir.at("/x"), "dag-abc", [4, 5, 9], config)
    assert argv[argv.index("--array") + 1] == "4-5,9"  # no % limit: 3 tasks, 3 allowed
    assert "--gpus=1" in argv and "--cpus-per-task=2" in argv and "--qos=short" in argv
    assert "--partition=gpu" in argv and "--time=20" in argv and "--mem=700" in argv


def test_executor_plugin_finds_batch_jobs_by_their_output() -> None:
    from types import SimpleNamespace

    from snakemake_executor_plugin_metalab_slurm import Batch

    def job(name: str, output: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, output=[output], is_group=lambda: False)

    batch = Batch.of(job("metalab_batch", "runs/e+1/.metalab/batches/dag-0a1b-000012.done"))
    assert batch is not None and batch.layout.root.name == "e+1"
    assert (batch.stamp, batch.task) == ("dag-0a1b", 12)
    assert Batch.of(job("sweep_metalab_batch", ".metalab/batches/x-000001.done")) is not None
    assert Batch.of(job("metalab_run", "runs/0123456789abcdef.json")) is None
    assert Batch.of(job("metalab_batch", ".metalab/batches/x-5.done")).task is None  # alone
    assert Batch.of(job("metalab_batch", ".metalab/batches/x-001001.done")).task is None


def test_job_ids_of_a_directory_come_from_snakemakes_log_and_the_array_log(tmp_path) -> None:
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.status import slurm_job_ids

    layout = ExperimentDir.at(tmp_path)
    assert slurm_job_ids(layout) == set()
    layout.snakemake_log.parent.mkdir(parents=True, exist_ok=True)
    layout.snakemake_log.write_text(
        "Job 3 has been submitted with SLURM jobid 41 (log: .snakemake/slurm_logs/x.log).\n"
    )
    layout.array_log.write_text("metalab: submitted SLURM array job 57 (4 tasks)\n")
    assert slurm_job_ids(layout) == {"41", "57"}


@pytest.mark.parametrize(
    ("state", "log", "expected"),
    [
        ("OUT_OF_MEMORY", "", True),
        ("FAILED", "slurmstepd-vm: error: Exceeded job memory limit\n", True),
        ("CANCELLED", "error: StepId=7.batch exceeded memory limit (802041856 > 2097)", True),
        ("FAILED", "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch", True),
        ("FAILED", "Traceback ...\nValueError: bad\n", False),
        ("TIMEOUT", "", False),
        (None, "", False),
    ],
)
def test_a_job_killed_for_its_memory_is_recognised(state, log, expected) -> None:
    assert s.out_of_memory(state, log) is expected


def test_a_snakemake_jobs_resources_give_one_memory_request() -> None:
    """A job's resources hold mem, mem_mb and mem_mib together, and disk by default: the
    executor plugin asks SLURM for mem_mb alone, and for no --tmp."""
    from metalab_smk.slurm.array import sbatch_options
    from metalab_smk.slurm.config import SlurmConfig

    job = {"_cores": 1, "_nodes": 1, "tmpdir": "/tmp", "mem": "2 GB", "mem_mb": 2000,
           "mem_mib": 1908, "disk": "1 GB", "disk_mb": 1000, "disk_mib": 954,
           "runtime": 30, "cpus_per_task": 1, "slurm_partition": "debug"}  # fmt: skip
    options = sbatch_options(SlurmConfig.from_resources(job).job_resources())
    assert "--mem=2000" in options and "--time=30" in options
    assert not [o for o in options if o.startswith("--tmp")]


@pytest.mark.parametrize(
    ("job_id", "indices"),
    [
        ("123_7", [7]),
        ("123_[5-9%2]", [5, 6, 7, 8, 9]),  # pending, at most 2 at once
        ("123_[1,3-4]", [1, 3, 4]),  # cancelled before they started
        ("123", []),
        ("123_[x]", []),
    ],
)
def test_array_task_indices(job_id: str, indices: list[int]) -> None:
    assert s.array_task_indices(job_id) == indices
