# metalab-smk rules, included by every generated Snakefile. The rule bodies must stay
# the same across versions: a changed body makes Snakemake's `code` trigger re-run
# everything (the generated workflow profile also sets `rerun-triggers: mtime`).
import json
import sys

METALAB_PYTHON = sys.executable
with open(".metalab/run_ids.txt") as _run_table:
    METALAB_RUN_IDS = _run_table.read().split()
with open(".metalab/compiled.json") as _compiled:
    METALAB_RESOURCES = json.load(_compiled).get("resources") or {}
METALAB_RUN_TARGETS = expand("runs/{run_id}.json", run_id=METALAB_RUN_IDS)

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
        METALAB_RUN_TARGETS,
    output:
        "summary/runs.parquet",
        "summary/steps.parquet",
    shell:
        "{METALAB_PYTHON} -m metalab_smk.reduce ."


onerror:
    shell("{METALAB_PYTHON} -m metalab_smk.reduce . --quiet || true")
