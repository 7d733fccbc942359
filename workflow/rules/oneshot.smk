rule oneshot:
    """Compress one checkpoint at every level of one operator; evaluate before BNT and after
    each BNT trial (each trial on its own seeded calibration subset)."""
    input:
        checkpoint=EXPERIMENT.checkpoint(*WILDCARD_RUN),
        data=ancient(DATA),
        config=ancient(RESOLVED),
    output:
        EXPERIMENT.oneshot_result(*WILDCARD_RUN, "{operator}"),
    params:
        settings=oneshot_settings,
    threads: CFG.training.threads
    resources:
        gpu=min(CFG.training.gpus, 1),  # one process, one device, whatever training.gpus says
    log:
        EXPERIMENT.log("oneshot/{arch}-{method}-s{seed}-{operator}"),
    shell:
        gpu_claim(CFG.training.gpus, 1, CFG.training.jobs_per_gpu) +
        "{PYTHON} -m compressible oneshot --config {input.config} --checkpoint {input.checkpoint:q}"
        " --data {input.data} --arch {wildcards.arch:q} --method {wildcards.method:q}"
        " --seed {wildcards.seed} --operator {wildcards.operator} --out {output:q} > {log:q} 2>&1"
