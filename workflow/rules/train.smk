# A checkpoint restored by `dvc pull` is never retrained because its data is prepared in the same
# run: the decisions (a current checkpoint, whether a train job takes the data as input, the stale
# and pull warnings) are methods of compressible.runs.Experiment, unit-tested there; this file
# only asks Snakemake what they need (a record of the job, forced runs) and logs.
import functools

from snakemake.io import IOFile
from snakemake.logging import logger

from compressible.dvc_pull import published
from compressible.training.launch import gpu_claim, launcher


def trained_here(path):
    """Snakemake has a record of the job that wrote the present file path (written here, not pulled)."""
    return (Path(path).exists() and workflow.persistence is not None
            and workflow.persistence.metadata(IOFile(path)) is not None)


def forcing():
    """--forceall, --forcerun or --force: a forced train job needs its data."""
    settings = workflow.dag_settings
    return bool(settings.forceall or settings.forcerun or settings.forcetargets)


@functools.cache
def warn_once(message):
    logger.warning(message)


def train_input(wildcards):
    one_run, inputs = run_of(wildcards), {"config": ancient(RESOLVED)}
    recorded = trained_here(EXPERIMENT.checkpoint(one_run.arch, one_run.method, one_run.seed))
    stale = EXPERIMENT.stale_warning(one_run, recorded)
    if stale:
        warn_once(stale)
    if EXPERIMENT.train_needs_data(one_run, recorded, forcing()):
        inputs["data"] = ancient(DATA)
    return inputs


def warn_if_pullable():
    hint = EXPERIMENT.pull_hint(published())
    if hint:
        logger.warning(hint)


warn_if_pullable()


rule train:
    """One training run. Inputs are ancient(), and a present, current checkpoint has no data
    input (above): a checkpoint restored by `dvc pull` is never retrained because the data was
    prepared (or the config rewritten) after it; a change of the run's own training settings
    reruns it through the params rerun-trigger (its hash)."""
    input:
        unpack(train_input),
    output:
        checkpoint=EXPERIMENT.checkpoint(*WILDCARD_RUN),
        info=EXPERIMENT.checkpoint_info(*WILDCARD_RUN),
    params:
        spec=lambda w: EXPERIMENT.spec(run_of(w)).hash(),
        # Outside the outputs (Snakemake deletes those of a failed job): a rerun resumes from it.
        resume=lambda w: EXPERIMENT.resume_state(w.arch, w.method, w.seed),
        launcher=launcher(CFG.training.gpus_per_run),
    threads: CFG.training.threads
    resources:
        gpu=CFG.training.gpus,
    log:
        EXPERIMENT.log("train/{arch}-{method}-s{seed}"),
    shell:
        # each job its own GPU(s): Snakemake's gpu resource counts them, the claim picks which
        gpu_claim(CFG.training.gpus, CFG.training.gpus_per_run, CFG.training.jobs_per_gpu) +
        "{PYTHON} {params.launcher} train --config {input.config} --arch {wildcards.arch:q}"
        " --method {wildcards.method:q} --seed {wildcards.seed} --data {input.data}"
        " --out {output.checkpoint:q} --resume {params.resume:q} > {log:q} 2>&1"
