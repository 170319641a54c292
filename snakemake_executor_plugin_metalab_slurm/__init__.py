"""Snakemake executor plugin ``metalab-slurm``: ``executor: metalab-slurm`` in a profile.

The ready ``metalab_batch`` jobs go to SLURM as ONE ``sbatch --array`` per set of
resources (task ``i`` runs the batch ``<stamp>-<i, 6 digits>``), and each task runs the
metalab batch worker directly, as ``metalab.run(..., SlurmExecutor(...))`` does
(``metalab_smk/slurm/array.py``): no Snakemake starts inside a job. A batch has ended
when its ``.end`` marker exists (looked for every 0.2 s); a task that died without one
(time limit, memory, node failure, ``scancel``) is noticed with ``squeue``. The tasks
end when this Snakemake is gone, even killed with SIGKILL (a heartbeat file per array:
``metalab_smk/slurm/heartbeat.py``). Any other job (``--config chunk=1``, the rules of a
larger pipeline) is one ``sbatch`` running Snakemake on that job, its state read with
sacct (squeue without accounting).

Snakemake finds this package by its name (``snakemake_executor_plugin_*`` on
``sys.path``); Snakemake's own ``executor: slurm`` keeps working beside it.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings

from metalab_smk.errors import ExecutorError, SchedulerError
from metalab_smk.slurm import scheduler
from metalab_smk.slurm.array import (
    MARKER_SECONDS,
    REQUEUE_VARIABLE,
    QueuePolling,
    array_argv,
    ended_markers,
    job_argv,
    submit_array,
)
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.slurm.heartbeat import Heartbeat
from metalab_smk.store.layout import ExperimentDir

__all__ = ["Executor", "common_settings"]

common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
)

MAX_ARRAY_INDEX = 1000  # SLURM's default MaxArraySize is 1001; later batches go alone
DEAD_GRACE_SECONDS = 3.0  # a task gone from the queue may still have its marker in flight


@dataclass(frozen=True)
class Batch:
    """A ``metalab_batch`` job: its experiment directory, batch name and task index."""

    layout: ExperimentDir
    name: str

    @classmethod
    def of(cls, job: JobExecutorInterface) -> Batch | None:
        """The batch a job runs, or None for any other job."""
        if job.is_group() or not job.name.endswith("metalab_batch"):
            return None
        outputs = [Path(path) for path in job.output]
        if len(outputs) != 1 or outputs[0].suffix != ".done":
            return None
        batches = outputs[0].parent
        if batches.name != "batches" or batches.parent.name != ".metalab":
            return None
        return cls(ExperimentDir.at(batches.parent.parent.absolute()), outputs[0].stem)

    @property
    def stamp(self) -> str:
        return self.name.rsplit("-", 1)[0]

    @property
    def task(self) -> int | None:
        """The array index of this batch (its number), None when it cannot be one."""
        number = self.name.rsplit("-", 1)[-1]
        if "-" not in self.name or len(number) != 6 or not number.isdigit():
            return None
        return int(number) if int(number) <= MAX_ARRAY_INDEX else None


class Executor(RemoteExecutor):
    """Batches as job arrays of the metalab worker; other jobs as plain SLURM jobs."""

    def __post_init__(self) -> None:
        self.submitted_at = datetime.now()
        self.polling = QueuePolling()
        self.dead_since: dict[str, float] = {}
        self.heartbeat = Heartbeat()  # the tasks end when this Snakemake is gone

    # -- submission ------------------------------------------------------------------

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        arrays: dict[tuple, list[tuple[JobExecutorInterface, Batch]]] = defaultdict(list)
        for job in jobs:
            self.run_job_pre(job)
            batch = Batch.of(job)
            if batch is None or batch.task is None:
                self._submit_one(job, batch)
            else:
                key = (str(batch.layout.root), batch.stamp, _resources_key(job))
                arrays[key].append((job, batch))
        for members in arrays.values():
            self._submit_array(members)

    def run_job(self, job: JobExecutorInterface) -> None:
        self.run_jobs([job])

    def _config(self, job: JobExecutorInterface, max_concurrent: int = 1) -> SlurmConfig:
        """The job's SLURM settings; its threads are its CPUs unless cpus_per_task says;
        Snakemake's ``--precommand`` runs first in each job."""
        resources = dict(job.resources.items())
        resources.setdefault("cpus_per_task", job.threads)
        precommand = self.workflow.spawned_job_args_factory.precommand(
            executor_common_settings=self.common_settings
        )
        return SlurmConfig.from_resources(
            resources, max_concurrent=max_concurrent, setup=[precommand] if precommand else []
        )

    def _submit_array(self, members: list[tuple[JobExecutorInterface, Batch]]) -> None:
        """One ``sbatch --array`` of batches of the same stamp and resources."""
        first_job, first = members[0]
        for _, batch in members:  # markers of an earlier attempt at the same batch
            batch.layout.batch_end(batch.name).unlink(missing_ok=True)
        tasks = [batch.task for _, batch in members if batch.task is not None]  # all (run_jobs)
        try:
            config = self._config(first_job, max_concurrent=len(tasks))
            first.layout.batches_dir.mkdir(parents=True, exist_ok=True)
            env = self.heartbeat.add(first.layout.batches_dir / f"{first.stamp}.heartbeat")
            env[REQUEUE_VARIABLE] = "1"  # a task with interrupted runs requeues itself
            argv = array_argv(first.layout, first.stamp, tasks, config, env=env)
            array_id = submit_array(first.layout, argv)
        except (SchedulerError, ExecutorError) as exc:
            for job, _ in members:
                self.report_job_error(SubmittedJobInfo(job), msg=f"sbatch failed: {exc}")
            return
        self.logger.info(f"metalab: submitted SLURM array job {array_id} ({len(tasks)} tasks)")
        for job, batch in members:
            info = SubmittedJobInfo(
                job, external_jobid=f"{array_id}_{batch.task}", aux={"batch": batch}
            )
            self.report_job_submission(info)

    def _submit_one(self, job: JobExecutorInterface, batch: Batch | None) -> None:
        """A job of its own: the batch worker, or Snakemake running the job."""
        config = self._config(job)
        if batch is not None:
            batch.layout.batch_end(batch.name).unlink(missing_ok=True)
            command = shlex.join([sys.executable, "-m", "metalab_smk.worker", "batch", batch.name])
            chdir, log = batch.layout.root, batch.layout.slurm_log(f"{batch.name}-%j")
        else:
            command = self.format_job_exec(job)  # it runs the precommand itself
            config = replace(config, setup=[])
            chdir = Path.cwd()
            log = Path(".snakemake", "slurm_logs", f"{job.name}-%j.log").absolute()
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = job_argv(
            command, config, job_name=f"metalab-{job.name}", output=str(log), chdir=str(chdir)
        )
        try:
            job_id = scheduler.parse_sbatch(scheduler.call(argv, timeout=120))
        except SchedulerError as exc:
            self.report_job_error(SubmittedJobInfo(job), msg=f"sbatch failed: {exc}")
            return
        self.logger.info(f"metalab: {job.name} submitted with SLURM jobid {job_id}")
        self.report_job_submission(
            SubmittedJobInfo(job, external_jobid=job_id, aux={"batch": batch})
        )

    def additional_general_args(self) -> str:
        return "--executor local --jobs 1"  # inside a job of its own

    # -- status ----------------------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        ended = _end_markers(active_jobs)
        waiting = []
        for info in active_jobs:
            batch: Batch | None = (info.aux or {}).get("batch")
            if batch is not None and batch.name in ended:
                self._report_batch(info, batch, ended[batch.name])
            else:
                waiting.append(info)
        if not waiting:
            return
        states = self._queue_states(waiting) if self.polling.due() or self.dead_since else None
        now = time.monotonic()
        for info in waiting:
            state = None if states is None else states.get(str(info.external_jobid), "GONE")
            if state is None or state in scheduler.ALIVE_STATES:
                yield info
            elif (info.aux or {}).get("batch") is None and state == "COMPLETED":
                self.report_job_success(info)
            elif now - self.dead_since.setdefault(str(info.external_jobid), now) < (
                DEAD_GRACE_SECONDS
            ):
                yield info  # its marker may still be on the way
            else:
                self.dead_since.pop(str(info.external_jobid), None)
                self._report_dead(info, state)

    def _report_batch(self, info: SubmittedJobInfo, batch: Batch, marker: str) -> None:
        self.dead_since.pop(str(info.external_jobid), None)
        if marker == "0":
            self.report_job_success(info)
        else:
            self.report_job_error(
                info,
                msg=f"{marker} run(s) of batch {batch.name} failed or did not start "
                f"(SLURM job {info.external_jobid}); `metalab status` shows why. ",
            )

    def _report_dead(self, info: SubmittedJobInfo, state: str) -> None:
        batch: Batch | None = (info.aux or {}).get("batch")
        what = f"batch {batch.name}" if batch else f"job {info.job.name}"
        self.report_job_error(
            info,
            msg=f"SLURM job {info.external_jobid} of {what} ended without finishing "
            f"(state {state}); `metalab status` shows its runs. ",
        )

    def _queue_states(self, waiting: Sequence[SubmittedJobInfo]) -> dict[str, str] | None:
        """``{external job ID: state}`` of the waiting jobs, from squeue (sacct for jobs
        gone from the queue); None when the scheduler did not answer."""
        ids = sorted({str(info.external_jobid).split("_")[0] for info in waiting})
        try:
            states = scheduler.parse_squeue(scheduler.call(scheduler.squeue_argv(ids)))
        except SchedulerError as exc:
            if "Invalid job id" not in str(exc):
                return None
            states = {}
        gone = [str(i.external_jobid) for i in waiting if str(i.external_jobid) not in states]
        if gone:
            finished = scheduler.job_states(
                {job_id.split("_")[0] for job_id in gone}, since=self.submitted_at
            )
            states.update({job_id: finished[job_id] for job_id in gone if job_id in finished})
        return states

    async def sleep(self) -> None:
        await asyncio.sleep(MARKER_SECONDS)

    def shutdown(self) -> None:
        super().shutdown()
        self.heartbeat.stop()

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """``scancel`` every array and job still active: the running runs get SIGTERM and
        record themselves as cancelled."""
        ids = sorted({str(info.external_jobid).split("_")[0] for info in active_jobs})
        if ids:
            try:
                scheduler.call(scheduler.scancel_argv(ids))
            except SchedulerError as exc:
                self.logger.error(f"metalab: {exc}")


def _resources_key(job: JobExecutorInterface) -> tuple:
    return tuple(sorted((str(k), str(v)) for k, v in job.resources.items()))


def _end_markers(active_jobs: Sequence[SubmittedJobInfo]) -> dict[str, str]:
    """``{batch name: marker text}`` of the active batches whose task has ended."""
    by_dir: dict[Path, tuple[ExperimentDir, list[str]]] = {}
    for info in active_jobs:
        batch = (info.aux or {}).get("batch")
        if batch is not None:
            by_dir.setdefault(batch.layout.root, (batch.layout, []))[1].append(batch.name)
    ended: dict[str, str] = {}
    for layout, names in by_dir.values():
        ended.update(ended_markers(layout, names))
    return ended
