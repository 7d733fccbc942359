from compressible.launch import launcher


rule train:
    """One training run. Inputs are ancient(): a checkpoint restored by `dvc pull` is never
    retrained because the data was prepared (or the config rewritten) after it; a change of
    the run's own training settings reruns it through the params rerun-trigger (its hash)."""
    input:
        data=ancient(DATA),
        config=ancient(RESOLVED),
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
        "{params.launcher} train --config {input.config} --arch {wildcards.arch:q}"
        " --method {wildcards.method:q} --seed {wildcards.seed} --data {input.data}"
        " --out {output.checkpoint:q} --resume {params.resume:q} > {log:q} 2>&1"
