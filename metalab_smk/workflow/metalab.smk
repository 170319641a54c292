# metalab-smk rules, included by every generated Snakefile. The rule bodies must stay
# the same across versions: a changed body makes Snakemake's `code` trigger re-run
# everything (the generated workflow profile also sets `rerun-triggers: mtime`).
# Parsing must stay cheap at any sweep size (every SLURM job parses this file): the run
# table is read only when Snakemake evaluates an input function that needs it.
import os
import sys

# Jobs (e.g. SLURM job steps running `python -m snakemake`) inherit this: it keeps the
# experiment directory off their sys.path, so plugin discovery does not list runs/ and logs/.
os.environ.setdefault("PYTHONSAFEPATH", "1")
METALAB_PYTHON = sys.executable
from metalab_smk.store.classes import rule_resources

# the experiment's resources; per case, functions reading each job's resource class
METALAB_RESOURCES = rule_resources()


_METALAB_TARGETS = []


def metalab_run_targets(wildcards=None):
    """The records of finished runs and the missing runs packed into batch targets
    (.metalab/batches/<name>.done; `--config chunk=K` sets the runs per job, chunk=1 gives
    one job runs/<run_id>.json per run). Evaluated once per invocation, in the main process."""
    if not _METALAB_TARGETS:
        _METALAB_TARGETS.append(_metalab_targets())
    return _METALAB_TARGETS[0]


def _metalab_targets():
    chunk = config.get("chunk")
    if chunk is not None:
        chunk = int(chunk)
    if not workflow.is_main_process or chunk == 1:
        with open(".metalab/run_ids.txt") as run_table:
            return [f"runs/{run_id}.json" for run_id in run_table.read().split()]
    from metalab_smk.sweep.batches import dag_targets

    remote = workflow.non_local_exec
    try:
        parallel = workflow.nodes if remote else workflow.cores
    except Exception:  # no --cores given
        parallel = None
    if not isinstance(parallel, int) or not 0 < parallel < 10**6:
        parallel = 100 if remote else (os.cpu_count() or 1)
    return dag_targets(".", chunk, parallel, remote)


wildcard_constraints:
    run_id="[0-9a-f]{16}",
    batch="[A-Za-z0-9_.-]+",

localrules: metalab_summary


rule metalab_run:
    output:
        "runs/{run_id}.json",
    resources:
        **METALAB_RESOURCES,
    shell:
        "{METALAB_PYTHON} -m metalab_smk.worker run {wildcards.run_id}"


rule metalab_batch:
    input:
        ".metalab/batches/{batch}.txt",
    output:
        ".metalab/batches/{batch}.done",
    resources:
        **METALAB_RESOURCES,
    shell:
        "{METALAB_PYTHON} -m metalab_smk.worker batch {wildcards.batch}"


rule metalab_summary:
    input:
        metalab_run_targets,
    output:
        "summary/runs.parquet",
        "summary/steps.parquet",
    shell:
        "{METALAB_PYTHON} -m metalab_smk.reduce ."


onerror:
    shell("{METALAB_PYTHON} -m metalab_smk.reduce . --quiet || true")
