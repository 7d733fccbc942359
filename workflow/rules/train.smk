rule train:
    """One training run. Inputs are ancient(): a checkpoint restored by `dvc pull` is never
    retrained because the data was prepared (or the config rewritten) after it; a change of
    the run's own settings reruns it through the params rerun-trigger."""
    input:
        data=ancient(DATA),
        config=ancient(RESOLVED),
    output:
        checkpoint=f"{RESULTS}/checkpoints/{{arch}}-{{method}}-s{{seed}}.pt",
        info=f"{RESULTS}/checkpoints/{{arch}}-{{method}}-s{{seed}}.json",
    params:
        spec=lambda w: spec_hash(run_spec(CFG, w.arch, w.method, int(w.seed))),
    threads: CFG["training"].get("threads", 1)
    resources:
        gpu=CFG["training"].get("gpus", 0),
    log:
        f"{LOGS}/train/{{arch}}-{{method}}-s{{seed}}.log",
    shell:
        "python -m compressible train --config {input.config} --arch {wildcards.arch}"
        " --method {wildcards.method} --seed {wildcards.seed} --data {input.data}"
        " --out {output.checkpoint} > {log} 2>&1"
