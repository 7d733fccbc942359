# A checkpoint restored by `dvc pull` must never be retrained because its data is prepared in
# the same run: Snakemake reruns every job downstream of a job that runs ("input files updated
# by another job"), ancient() or not. So a present checkpoint trained for its run's current hash
# does not depend on data that is still to be prepared; every other one gets its data prepared
# first. The data stays an input wherever that changes nothing: when it exists (an existing
# ancient input never triggers a rerun), where Snakemake recorded the train job (it reruns a job
# whose set of inputs changed), and when the user forces jobs to run.
import functools

from compressible.launch import launcher

from snakemake.io import IOFile
from snakemake.logging import logger

from compressible.published import published


def checkpoint_is_current(one_run):
    """Weights and provenance present, and trained for this run's current hash."""
    weights = Path(EXPERIMENT.checkpoint(one_run.arch, one_run.method, one_run.seed))
    info = Path(EXPERIMENT.checkpoint_info(one_run.arch, one_run.method, one_run.seed))
    if not (weights.is_file() and weights.stat().st_size > 0 and info.is_file()):
        return False
    try:
        return json.loads(info.read_text())["config"]["hash"] == EXPERIMENT.spec(one_run).hash()
    except (ValueError, KeyError, TypeError):
        return False


def trained_here(path):
    """Snakemake has a record of the job that wrote path (written here, not pulled)."""
    return workflow.persistence is not None and workflow.persistence.metadata(IOFile(path)) is not None


def forcing():
    """--forceall, --forcerun or --force: a forced train job needs its data."""
    settings = workflow.dag_settings
    return bool(settings.forceall or settings.forcerun or settings.forcetargets)


def train_needs_data(one_run):
    weights = EXPERIMENT.checkpoint(one_run.arch, one_run.method, one_run.seed)
    return (not checkpoint_is_current(one_run) or Path(DATA).exists() or trained_here(weights)
            or forcing())


@functools.cache
def warn_if_stale(weights, current_hash):
    """A checkpoint from elsewhere trained with other settings, its data already prepared: with
    no record of its job Snakemake has no params to compare, so only the user can retrain it."""
    logger.warning(f"{weights} was trained with other settings than the config gives (run hash "
                   f"{current_hash}): `snakemake --forcerun {weights}` retrains it.")


def train_input(wildcards):
    one_run, inputs = run_of(wildcards), {"config": ancient(RESOLVED)}
    weights = EXPERIMENT.checkpoint(one_run.arch, one_run.method, one_run.seed)
    stale = Path(weights).exists() and not checkpoint_is_current(one_run)
    if stale and Path(DATA).exists() and not trained_here(weights):  # else it retrains anyway
        warn_if_stale(weights, EXPERIMENT.spec(one_run).hash())
    if train_needs_data(one_run):
        inputs["data"] = ancient(DATA)
    return inputs


def warn_if_pullable():
    """Missing checkpoints of a published experiment: pulling them beats training them."""
    missing = [c for c in CHECKPOINTS if not Path(c).exists()]
    if missing and EXP in published():
        logger.warning(f"{len(missing)} checkpoint(s) of '{EXP}' are missing but published in "
                       f"dvc.lock: `dvc pull train@{EXP}` restores them instead of training them.")


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
        "{PYTHON} {params.launcher} train --config {input.config} --arch {wildcards.arch:q}"
        " --method {wildcards.method:q} --seed {wildcards.seed} --data {input.data}"
        " --out {output.checkpoint:q} --resume {params.resume:q} > {log:q} 2>&1"
