# Helpers and validation. The config is checked against workflow/schemas/config.schema.yaml and
# every name (dataset, arch, method and its parameters, operator and its levels) against the
# registries here, at parse time: a bad config stops before any job runs.
import json
from pathlib import Path

from snakemake.utils import validate

from compressible.cli import magnitude_entries, table_kinds
from compressible.config import ConfigError, run_spec, spec_hash, validate_config

validate(config, schema="../schemas/config.schema.yaml")
try:
    CFG = validate_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None

EXP = CFG["experiment"]
RESULTS = f"results/{EXP}"
LOGS = f"logs/{EXP}"
DATA = f"resources/data/{CFG['dataset']['name']}.pt"
RUNS = [(a["name"], m["label"], s) for a in CFG["archs"] for m in CFG["methods"] for s in CFG["seeds"]]


def write_if_changed(path, text):
    """The resolved config the jobs read; rewritten only when it changes (stable mtime)."""
    path = Path(path)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(path)


RESOLVED = write_if_changed(f"{RESULTS}/config.resolved.json", json.dumps(CFG, indent=2, sort_keys=True) + "\n")


def checkpoint_path(arch, method, seed):
    return f"{RESULTS}/checkpoints/{arch}-{method}-s{seed}.pt"


def operator_entry(operator):
    return next(e for e in CFG["oneshot"] if e["operator"] == operator)


CHECKPOINTS = [checkpoint_path(*run) for run in RUNS]
ONESHOT_RESULTS = [
    f"{RESULTS}/oneshot/{a}-{m}-s{s}/{e['operator']}.json" for a, m, s in RUNS for e in CFG["oneshot"]
]
SUMMARY = f"{RESULTS}/summary.csv"
FIGURES = [
    f"figures/{EXP}/accuracy_vs_sparsity_{a['name']}_{e['operator']}.{ext}"
    for a in CFG["archs"] for e in magnitude_entries(CFG) for ext in ("pdf", "png")
]
TABLES = [
    f"paper_tables/{EXP}/{a['name']}_{e['operator']}_{kind}.tex"
    for a in CFG["archs"] for e in CFG["oneshot"] for kind in table_kinds(CFG)
]

wildcard_constraints:
    arch="[A-Za-z0-9_]+",
    method="[A-Za-z0-9_+.-]+",
    seed="[0-9]+",
    operator="[A-Za-z0-9_]+",
