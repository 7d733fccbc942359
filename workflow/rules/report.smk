rule aggregate:
    """All one-shot results -> the tidy summary.csv (one row per measurement)."""
    input:
        ONESHOT_RESULTS,
    output:
        SUMMARY,
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
        FIGURES,
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
        TABLES,
    log:
        EXPERIMENT.log("tables"),
    shell:
        "{PYTHON} -m compressible tables --config {input.config} --summary {input.summary}"
        " --published " + PUBLISHED_DIR + " > {log} 2>&1"
