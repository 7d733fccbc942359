# compressible: train once, compress one-shot at many levels, evaluate with and without BNT,
# then tabulate and plot (CrAM, SFW-pruning, compression-aware SFW).
#
#   snakemake --cores all                                   # the embedded default (configs/default.yaml)
#   snakemake --cores all --configfile configs/<paper>.yaml # any other experiment
#   snakemake --profile workflow/profiles/slurm --configfile configs/<paper>.yaml   # on a SLURM cluster
#   snakemake --report report.html [--configfile …]          # afterwards: one self-contained HTML file

from compressible import strict_yaml

# With no --configfile, the embedded default. (Not the `configfile:` directive: Snakemake would
# deep-merge the default into every other config, leaking keys such as report settings.)
if not config:
    with open("configs/default.yaml") as handle:
        config.update(strict_yaml.load(handle))  # a key given twice is refused

# The HTML report's front page; the results it holds are marked in the rules (in_report, common.smk).
report: "workflow/report/workflow.rst"

include: "workflow/rules/common.smk"     # config validation, paths, helpers
include: "workflow/rules/data.smk"       # prepare_data: dataset -> resources/data/<dataset>.pt
include: "workflow/rules/train.smk"      # train: one (arch, method, seed) -> checkpoint (DVC-tracked)
include: "workflow/rules/oneshot.smk"    # oneshot: compress at each level, evaluate, BNT trials
include: "workflow/rules/finetune.smk"   # finetune: the pruned models trained with their masks fixed
include: "workflow/rules/report.smk"     # aggregate -> summary.csv; figures; LaTeX tables
include: "workflow/rules/reproduction.smk"  # published numbers beside ours -> REPRODUCTION.md
include: "workflow/rules/selection.smk"  # sweeps: best configuration per level and overall

# On a cluster these run on the submit host: downloads need its network, the rest takes seconds.
localrules: all, train_all, prepare_data, aggregate, figures, tables, reproduction, select_best


rule all:
    input:
        SUMMARY,
        FIGURES,
        TABLES,
        REPRODUCTION,
        SELECTION,
    default_target: True


rule train_all:
    """Only the training runs (what `dvc repro train_<experiment>` builds)."""
    input:
        CHECKPOINTS,
