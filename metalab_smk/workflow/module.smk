# metalab-smk rules for using a compiled sweep as a Snakemake module inside a larger
# pipeline (docs/slurm.md, "A sweep inside a larger Snakemake pipeline"):
#
#     import metalab_smk.workflow
#     module sweep:
#         snakefile: metalab_smk.workflow.MODULE
#         config: {"metalab_experiment": "runs/pi+1"}   # written by `metalab compile`
#     use rule * from sweep as sweep_*
#
#     rule plot:
#         input: "runs/pi+1/summary/runs.parquet"
#         ...
#
# The paths of these rules carry the experiment directory as a prefix, and every job runs
# inside that directory, so the same workers and records serve `metalab run`, plain
# `snakemake` in the directory and the pipeline. Missing runs are packed into batch jobs
# as in metalab.smk (`--config chunk=K`; chunk=1 gives one job per run).
import json
import os
import sys

os.environ.setdefault("PYTHONSAFEPATH", "1")
METALAB_PYTHON = sys.executable
METALAB_DIR = os.path.normpath(config["metalab_experiment"])
_resources_file = os.path.join(METALAB_DIR, ".metalab", "resources.json")
METALAB_RESOURCES = {}
if os.path.isfile(_resources_file):
    with open(_resources_file) as _resources:
        METALAB_RESOURCES = json.load(_resources)
_METALAB_TARGETS = []


def metalab_run_targets(wildcards=None):
    """Records of finished runs and batch targets of missing ones, under METALAB_DIR."""
    if not _METALAB_TARGETS:
        chunk = config.get("chunk")
        chunk = None if chunk is None else int(chunk)
        if not workflow.is_main_process:
            chunk = 1
        from metalab_smk.sweep.batches import dag_targets

        remote = workflow.non_local_exec
        try:
            parallel = workflow.nodes if remote else workflow.cores
        except Exception:
            parallel = None
        if not isinstance(parallel, int) or not 0 < parallel < 10**6:
            parallel = 100 if remote else (os.cpu_count() or 1)
        targets = dag_targets(METALAB_DIR, chunk, parallel, remote)
        _METALAB_TARGETS.append([os.path.join(METALAB_DIR, t) for t in targets])
    return _METALAB_TARGETS[0]


wildcard_constraints:
    run_id="[0-9a-f]{16}",
    batch="[A-Za-z0-9_.-]+",


rule metalab_run:
    output:
        os.path.join(METALAB_DIR, "runs", "{run_id}.json"),
    params:
        directory=METALAB_DIR,
        python=METALAB_PYTHON,
    resources:
        **METALAB_RESOURCES,
    shell:
        "cd {params.directory:q} && {params.python} -m metalab_smk.worker run {wildcards.run_id}"


rule metalab_batch:
    input:
        os.path.join(METALAB_DIR, ".metalab", "batches", "{batch}.txt"),
    output:
        os.path.join(METALAB_DIR, ".metalab", "batches", "{batch}.done"),
    params:
        directory=METALAB_DIR,
        python=METALAB_PYTHON,
    resources:
        **METALAB_RESOURCES,
    shell:
        "cd {params.directory:q} && {params.python} -m metalab_smk.worker batch {wildcards.batch}"


rule metalab_summary:
    localrule: True
    input:
        metalab_run_targets,
    output:
        os.path.join(METALAB_DIR, "summary", "runs.parquet"),
        os.path.join(METALAB_DIR, "summary", "steps.parquet"),
    params:
        directory=METALAB_DIR,
        python=METALAB_PYTHON,
    shell:
        "{params.python} -m metalab_smk.reduce {params.directory:q}"
