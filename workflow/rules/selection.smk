# Best-configuration selection (compression-aware SFW Figs. 2 and 4): for configs whose method
# entries form sweeps (`family:`), the best entry of each family per level and over all levels.
SELECTION = EXPERIMENT.selection_outputs()


rule select_best:
    """summary.csv -> best_configurations.csv (+ one figure per arch and plotted operator)."""
    input:
        summary=SUMMARY,
        config=RESOLVED,
    output:
        SELECTION,
    log:
        EXPERIMENT.log("select_best"),
    shell:
        "{PYTHON} -m compressible select --summary {input.summary} --config {input.config}"
        " --out {output[0]} > {log} 2>&1"
