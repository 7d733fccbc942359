# Aggregation, figures and tables; the outputs `snakemake --report report.html` shows are marked
# with in_report (common.smk): category, caption (workflow/report/) and labels.
def figure_outputs():
    """FIGURES, the PNGs marked for the HTML report (its viewer shows them in place; each PDF
    beside its PNG is the same figure)."""
    pngs = {EXPERIMENT.figure(a.name, e.operator, "png"): dict(arch=a.name, operator=e.operator)
            for a in CFG.archs for e in EXPERIMENT.plotted_entries()}
    return [in_report(f, "Figures", "figure", pngs[f]["arch"], figure="accuracy vs sparsity", **pngs[f])
            if f in pngs else f for f in FIGURES]


def table_outputs():
    """TABLES, each marked for the HTML report with its architecture, operator and BNT."""
    kinds = {"bnt": "after", "nobnt": "before"}
    return [in_report(EXPERIMENT.table(a.name, e.operator, kind), "Tables", "table", a.name,
                      arch=a.name, operator=e.operator, BNT=kinds[kind])
            for a in CFG.archs for e in CFG.oneshot for kind in EXPERIMENT.table_kinds()]


rule aggregate:
    """All one-shot (and finetune) results -> the tidy summary.csv (one row per measurement)."""
    input:
        ONESHOT_RESULTS + FINETUNE_RESULTS,
    output:
        in_report(SUMMARY, "Results", "summary"),
    log:
        EXPERIMENT.log("aggregate"),
    shell:
        "{PYTHON} -m compressible aggregate --out {output} {input} > {log} 2>&1"


rule figures:
    """Accuracy vs sparsity, mean ± std over seeds, one line per method (PDF + PNG)."""
    input:
        summary=SUMMARY,
        config=RESOLVED,
        published=PUBLISHED,
    output:
        figure_outputs(),
    log:
        EXPERIMENT.log("figures"),
    shell:
        "{PYTHON} -m compressible figures --config {input.config} --summary {input.summary}"
        " --published " + PUBLISHED_DIR + " > {log} 2>&1"


rule tables:
    """booktabs LaTeX tables for \\input: methods x levels, before and after BNT."""
    input:
        summary=SUMMARY,
        config=RESOLVED,
        published=PUBLISHED,
    output:
        table_outputs(),
    log:
        EXPERIMENT.log("tables"),
    shell:
        "{PYTHON} -m compressible tables --config {input.config} --summary {input.summary}"
        " --published " + PUBLISHED_DIR + " > {log} 2>&1"
