"""A run and an experiment: identity, the training spec and its hash, every path, and whether a
checkpoint on disk is current (what the train rule decides).

A run is (arch, method label, seed). Its spec is everything its training reads; its hash covers
exactly the settings that change the trained weights, so a change of anything else (evaluation
batch size, threads, the one-shot or BNT settings, another method's parameters) never retrains
it. The Snakemake rules and the CLI both ask :class:`Experiment` for paths, and every result
carries its run's identity in its JSON, so nothing parses a file name.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from . import registry
from .config import Arch, Config, Method, Training

# Dataset keys that say where data lives or whether to fetch it, not what it is.
_DATASET_LOCATION_KEYS = ("root", "download")
# Training keys that change speed or the evaluation curves, not what is trained. The device and
# torch.compile change the weights only by float rounding (kernels sum in other orders), as a
# rerun on another GPU model would: a checkpoint trained on a GPU and pulled onto a laptop whose
# `auto` device is the CPU is the same run, not a stale one. bf16 changes the arithmetic itself
# and is hashed.
_NOT_TRAINING_KEYS = ("threads", "eval_batch_size", "gpus", "device", "compile", "jobs_per_gpu")
# Options added after runs were published, at the value that reproduces those runs: left out of
# the hash there, so a new option never makes an existing checkpoint look stale (and retrain).
# Away from it they are hashed: e.g. several processes do change the weights (per-process
# BatchNorm batches unless synchronized, the float summation order of the gradient average).
_NEUTRAL = {"arch": {"pretrained": None},
            "training": {"schedule_unit": "step", "schedule_loss": "epoch_mean", "gpus_per_run": 1,
                         "sync_bn": False, "precision": "fp32", "tf32": True, "numerics": "fast",
                         "label_smoothing": 0.0, "freeze": ()},
            "method_params": {"constraint_scope": "layer", "delay_k_restore": "none", "feasible_start": True,
                              "base": "sgd", "p_base": 0.0}}


def _hashed_part(section: str, values: dict, skipped: tuple = ()) -> dict:
    neutral = _NEUTRAL.get(section, {})
    return {k: v for k, v in values.items()
            if k not in skipped and not (k in neutral and v == neutral[k])}


@dataclass(frozen=True)
class Run:
    arch: str
    method: str  # the method's label
    seed: int

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.method}-s{self.seed}"

    def identity(self) -> dict:
        return {"arch": self.arch, "method": self.method, "seed": self.seed}


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run reads."""

    run: Run
    dataset: dict
    arch: Arch
    method: Method
    training: Training  # epochs already the method's own
    prunable: str

    def hashed(self) -> dict:
        """The settings that change the trained weights (what :meth:`hash` covers)."""
        method = {"name": self.method.name, "params": _hashed_part("method_params", self.method.params)}
        training = _hashed_part("training", dataclasses.asdict(self.training), _NOT_TRAINING_KEYS)
        if self.training.gpus_per_run == 1:
            training.pop("sync_bn", None)  # no effect with one process
        settings = {
            "dataset": _hashed_part("dataset", self.dataset, _DATASET_LOCATION_KEYS),
            "arch": _hashed_part("arch", dataclasses.asdict(self.arch)), "method": method,
            "seed": self.run.seed,
            "training": training,
        }
        if registry.METHODS.fact(self.method.name, "uses_prunable"):
            settings["prunable"] = self.prunable
        return settings

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.hashed(), sort_keys=True).encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return {"run": self.run.identity(), "dataset": self.dataset, "arch": dataclasses.asdict(self.arch),
                "method": dataclasses.asdict(self.method), "training": dataclasses.asdict(self.training),
                "prunable": self.prunable, "hash": self.hash()}


class Experiment:
    """One config's runs and the paths of everything the DAG writes for it.

    Path methods take plain strings as well as values, so the rules can pass wildcards
    (``experiment.checkpoint("{arch}", "{method}", "{seed}")``).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.name = cfg.experiment
        self.results = f"results/{self.name}"

    # --- runs ---------------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        return [Run(a.name, m.label, s) for a in self.cfg.archs for m in self.cfg.methods for s in self.cfg.seeds]

    def spec(self, run: Run) -> RunSpec:
        method = self.cfg.method(run.method)
        training = dataclasses.replace(self.cfg.training, epochs=self.cfg.training.epochs if method.epochs is None else method.epochs)
        if method.label_smoothing is not None:
            training = dataclasses.replace(training, label_smoothing=method.label_smoothing)
        return RunSpec(run, self.cfg.dataset, self.cfg.arch(run.arch), method, training, self.cfg.prunable)

    # --- freshness: what the train rule decides (workflow/rules/train.smk) ---------------------
    # A checkpoint restored by `dvc pull` must never be retrained because its data is prepared in
    # the same workflow run: Snakemake reruns every job downstream of a job that runs, ancient()
    # inputs or not. So a present checkpoint trained for its run's current hash does not depend
    # on data still to be prepared; every other one gets its data prepared first.
    def checkpoint_is_current(self, run: Run) -> bool:
        """Weights and provenance present, and trained for this run's current hash."""
        weights = Path(self.checkpoint(run.arch, run.method, run.seed))
        info = Path(self.checkpoint_info(run.arch, run.method, run.seed))
        if not (weights.is_file() and weights.stat().st_size > 0 and info.is_file()):
            return False
        try:
            return json.loads(info.read_text())["config"]["hash"] == self.spec(run).hash()
        except (ValueError, KeyError, TypeError):
            return False

    def train_needs_data(self, run: Run, recorded: bool, forced: bool) -> bool:
        """Whether the run's train job takes the prepared data as input. Everywhere it changes
        nothing the data stays an input: when it exists (an existing ancient input never
        triggers a rerun), when Snakemake ``recorded`` the job that wrote the checkpoint (it
        reruns a job whose set of inputs changed), and when the user ``forced`` jobs to run."""
        return not self.checkpoint_is_current(run) or Path(self.data).exists() or recorded or forced

    def stale_warning(self, run: Run, recorded: bool) -> Optional[str]:
        """The warning for a checkpoint from elsewhere trained with other settings, its data
        already prepared: with no record of its job Snakemake has no params to compare, so only
        the user can retrain it. None when that is not the case (any other stale one retrains)."""
        weights = self.checkpoint(run.arch, run.method, run.seed)
        if recorded or not (Path(weights).exists() and Path(self.data).exists()) or self.checkpoint_is_current(run):
            return None
        return (f"{weights} was trained with other settings than the config gives (run hash "
                f"{self.spec(run).hash()}): `snakemake --forcerun {weights}` retrains it.")

    def pull_hint(self, published: Iterable[str]) -> Optional[str]:
        """Missing checkpoints of an experiment among the ``published`` ones (those in dvc.lock):
        pulling them beats training them. None when nothing is missing or it is not published."""
        missing = [c for c in self.checkpoints() if not Path(c).exists()]
        if not missing or self.name not in published:
            return None
        return (f"{len(missing)} checkpoint(s) of '{self.name}' are missing but published in "
                f"dvc.lock: `dvc pull train@{self.name}` restores them instead of training them.")

    # --- paths --------------------------------------------------------------------------------
    @property
    def data(self) -> str:
        return f"resources/data/{self.cfg.dataset['name']}.pt"

    @property
    def resolved_config(self) -> str:
        return f"{self.results}/config.resolved.json"

    @property
    def summary(self) -> str:
        return f"{self.results}/summary.csv"

    def checkpoint(self, arch, method, seed) -> str:
        return f"{self.results}/checkpoints/{arch}-{method}-s{seed}.pt"

    def checkpoint_info(self, arch, method, seed) -> str:
        return f"{self.results}/checkpoints/{arch}-{method}-s{seed}.json"

    def resume_state(self, arch, method, seed) -> str:
        """Outside the train rule's outputs: Snakemake deletes those when a job fails."""
        return f"{self.results}/resume/{arch}-{method}-s{seed}.pt"

    def oneshot_result(self, arch, method, seed, operator) -> str:
        return f"{self.results}/oneshot/{arch}-{method}-s{seed}/{operator}.json"

    def finetune_result(self, arch, method, seed, operator) -> str:
        return f"{self.results}/finetune/{arch}-{method}-s{seed}/{operator}.json"

    def figure(self, arch, operator, ext) -> str:
        return f"figures/{self.name}/accuracy_vs_sparsity_{arch}_{operator}.{ext}"

    def table(self, arch, operator, kind) -> str:
        return f"paper_tables/{self.name}/{arch}_{operator}_{kind}.tex"

    @property
    def selection(self) -> str:
        """Best configuration per family (report/selection.py), only for configs with sweeps."""
        return f"{self.results}/best_configurations.csv"

    def selection_figure(self, arch, operator, ext) -> str:
        return f"figures/{self.name}/best_configuration_{arch}_{operator}.{ext}"

    @property
    def reproduction_report(self) -> str:
        return f"paper_tables/{self.name}/REPRODUCTION.md"

    @property
    def reproduction_html(self) -> str:
        """REPRODUCTION.md rendered (report/html.py): the form `snakemake --report` shows."""
        return f"paper_tables/{self.name}/REPRODUCTION.html"

    def log(self, name: str) -> str:
        return f"logs/{self.name}/{name}.log"

    # --- what the DAG produces ----------------------------------------------------------------
    def plotted_entries(self) -> list:
        """One-shot entries whose level is a fraction removed (plotted against sparsity)."""
        return [e for e in self.cfg.oneshot if registry.COMPRESSORS.fact(e.operator, "removes_fraction")]

    def table_kinds(self) -> tuple[str, ...]:
        """Tables after BNT exist only when BNT trials are configured (the SFW papers use none)."""
        return ("bnt", "nobnt") if self.cfg.bnt.trials > 0 else ("nobnt",)

    def checkpoints(self) -> list[str]:
        return [self.checkpoint(r.arch, r.method, r.seed) for r in self.runs()]

    def oneshot_results(self) -> list[str]:
        return [self.oneshot_result(r.arch, r.method, r.seed, e.operator)
                for r in self.runs() for e in self.cfg.oneshot]

    def finetune_results(self) -> list[str]:
        """One per run and one-shot entry with a ``finetune`` (none in most experiments)."""
        return [self.finetune_result(r.arch, r.method, r.seed, e.operator)
                for r in self.runs() for e in self.cfg.oneshot if e.finetune]

    def figures(self) -> list[str]:
        return [self.figure(a.name, e.operator, ext)
                for a in self.cfg.archs for e in self.plotted_entries() for ext in ("pdf", "png")]

    def has_sweeps(self) -> bool:
        """Some method entry names a family: a sweep whose best configuration is selected."""
        return any(m.family for m in self.cfg.methods)

    def selection_outputs(self) -> list[str]:
        if not self.has_sweeps():
            return []
        return [self.selection] + [self.selection_figure(a.name, e.operator, ext) for a in self.cfg.archs
                                   for e in self.plotted_entries() for ext in ("pdf", "png")]

    def tables(self) -> list[str]:
        return [self.table(a.name, e.operator, kind)
                for a in self.cfg.archs for e in self.cfg.oneshot for kind in self.table_kinds()]
