# Reproduction report: the published numbers and claims the config names under `reproduces`
# (configs/published/<paper>.yaml) beside ours, with a verdict each. Only when `reproduces` is
# non-empty; a name that is not published stops here, before any job runs.
from compressible.report.published import PublishedError, resolve_references

try:
    resolve_references(CFG.reproduces, PUBLISHED_DIR)
except PublishedError as err:
    raise WorkflowError(f"invalid config: {err}") from None

REPRODUCTION = [EXPERIMENT.reproduction_report, EXPERIMENT.reproduction_html] if CFG.reproduces else []


rule reproduction:
    """Published vs ours: mean ± std, Δ, reproduced / deviates / not run; claims hold or not."""
    input:
        summary=SUMMARY,
        config=RESOLVED,
        published=PUBLISHED,
    output:
        markdown=EXPERIMENT.reproduction_report,
        # the HTML report offers Markdown only as a download: its rendering is what it shows
        html=in_report(EXPERIMENT.reproduction_html, "Reproduction", "reproduction"),
    log:
        EXPERIMENT.log("reproduction"),
    shell:
        "{PYTHON} -m compressible reproduce --summary {input.summary} --config {input.config}"
        " --published " + PUBLISHED_DIR + " --out {output.markdown} --html {output.html} > {log} 2>&1"
