# Helpers and validation. The config is checked against the schema and every name (dataset,
# arch, method and its parameters, operator and its levels) against the registries, at parse
# time: a bad config stops before any job runs. The verdict is remembered per config and code
# version, in .snakemake/ and in the user's cache (compressible.config_memo), so later parses (dry
# runs, reruns, cluster jobs, other clones) import no torch. Every path comes from compressible.runs, the
# same module the CLI asks, so the rules and the jobs agree on where each file lives.
import json
from dataclasses import asdict
from pathlib import Path

from compressible.config import ConfigError, read_yaml
from compressible.config_memo import checked_config
from compressible.training.launch import PYTHON  # every rule's interpreter: the one running Snakemake
from compressible.data import missing_files
from compressible.report.published import PUBLISHED_DIR, paper_files
from compressible.runs import Experiment, Run

try:
    # Snakemake reads --configfile itself and keeps the last of a key given twice: each file is
    # read again by the strict loader, which refuses it with the key and its line.
    for configfile in workflow.overwrite_configfiles or ():
        read_yaml(configfile)
    # A streamed dataset's folders need not exist to plan the jobs (a dry run on a submit host
    # without the data): prepare_data, the first job, stops on them with the same message.
    CFG = checked_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None
if missing_files(CFG.dataset):
    from snakemake.logging import logger
    logger.warning(f"{missing_files(CFG.dataset)}: prepare_data will stop there; planning goes on")

EXPERIMENT = Experiment(CFG)
EXP = CFG.experiment
DATA = EXPERIMENT.data
WILDCARD_RUN = ("{arch}", "{method}", "{seed}")


def share_gpus(jobs_per_gpu):
    """`--resources gpu=N` names N GPUs; with training.jobs_per_gpu > 1 the train and oneshot
    jobs (each declaring its GPUs) may run N x jobs_per_gpu at once, sharing them. Without
    --resources (e.g. on SLURM, where every job gets its own GPUs) nothing changes."""
    given = workflow.global_resources.get("gpu")
    if jobs_per_gpu > 1 and given is not None and isinstance(given.value, int):
        workflow.register_resource("gpu", given.value * jobs_per_gpu)


share_gpus(CFG.training.jobs_per_gpu)


def write_if_changed(path, text):
    """The resolved config the jobs read; rewritten only when it changes (stable mtime)."""
    path = Path(path)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(path)


RESOLVED = write_if_changed(EXPERIMENT.resolved_config, json.dumps(CFG.resolved, indent=2, sort_keys=True) + "\n")


def run_of(wildcards):
    return Run(wildcards.arch, wildcards.method, int(wildcards.seed))


def oneshot_settings(wildcards):
    """What a one-shot result depends on besides its checkpoint (a change reruns it); not the
    entry's finetune (a stage of its own)."""
    entry = {k: v for k, v in asdict(CFG.entry(wildcards.operator)).items() if k != "finetune"}
    return json.dumps([entry, asdict(CFG.bnt), CFG.prunable], sort_keys=True)


def finetune_settings(wildcards):
    """What a finetune result depends on besides its checkpoint: the entry (its compressor and
    finetune) and the training settings its steps read."""
    return json.dumps([asdict(CFG.entry(wildcards.operator)), asdict(CFG.training), CFG.prunable], sort_keys=True)


def in_report(path, category, caption, subcategory=EXP, **labels):
    """``path`` in `snakemake --report report.html`: under ``category`` and ``subcategory`` (the
    experiment, or an architecture), with the caption workflow/report/<caption>.rst (relative to
    this folder, as Snakemake resolves it) and ``labels``, the columns of the category's list."""
    return report(path, caption=f"../report/{caption}.rst", category=category, subcategory=subcategory,
                  labels=labels or None)


CHECKPOINTS = EXPERIMENT.checkpoints()
ONESHOT_RESULTS = EXPERIMENT.oneshot_results()
FINETUNE_RESULTS = EXPERIMENT.finetune_results()
SUMMARY = EXPERIMENT.summary
FIGURES = EXPERIMENT.figures()
TABLES = EXPERIMENT.tables()
PUBLISHED = paper_files(CFG.reproduces)  # the papers' files the config reproduces (figures, tables, report)

wildcard_constraints:
    arch="[A-Za-z0-9_]+",
    method="[A-Za-z0-9_+.-]+",
    seed="[0-9]+",
    operator="[A-Za-z0-9_]+",
