# Best-configuration selection (compression-aware SFW Figs. 2 and 4): for configs whose method
# entries form sweeps (`family:`), the best entry of each family per level and over all levels.
SELECTION = EXPERIMENT.selection_outputs()


def selection_outputs():
    """SELECTION marked for the HTML report: the CSV beside summary.csv, the PNGs beside the
    accuracy-vs-sparsity figures."""
    pngs = {EXPERIMENT.selection_figure(a.name, e.operator, "png"): dict(arch=a.name, operator=e.operator)
            for a in CFG.archs for e in EXPERIMENT.plotted_entries()}
    marked = {EXPERIMENT.selection: in_report(EXPERIMENT.selection, "Results", "selection")}
    marked.update({f: in_report(f, "Figures", "selection_figure", labels["arch"], figure="best configuration", **labels)
                   for f, labels in pngs.items()})
    return [marked.get(f, f) for f in SELECTION]


rule select_best:
    """summary.csv -> best_configurations.csv (+ one figure per arch and plotted operator)."""
    input:
        summary=SUMMARY,
        config=RESOLVED,
    output:
        selection_outputs(),
    log:
        EXPERIMENT.log("select_best"),
    shell:
        "{PYTHON} -m compressible select --summary {input.summary} --config {input.config}"
        " --out {output[0]} > {log} 2>&1"
