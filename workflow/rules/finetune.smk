rule finetune:
    """Prune one checkpoint at every level of one operator as the oneshot rule does, train each
    pruned model with its mask fixed (method masked; CrAM Sec. 4.2, App. D) and evaluate it."""
    input:
        checkpoint=EXPERIMENT.checkpoint(*WILDCARD_RUN),
        data=ancient(DATA),
        config=ancient(RESOLVED),
    output:
        EXPERIMENT.finetune_result(*WILDCARD_RUN, "{operator}"),
    params:
        settings=finetune_settings,
    threads: CFG.training.threads
    resources:
        gpu=min(CFG.training.gpus, 1),
    log:
        EXPERIMENT.log("finetune/{arch}-{method}-s{seed}-{operator}"),
    shell:
        gpu_claim(CFG.training.gpus, 1, CFG.training.jobs_per_gpu) +
        "{PYTHON} -m compressible finetune --config {input.config} --checkpoint {input.checkpoint:q}"
        " --data {input.data} --arch {wildcards.arch:q} --method {wildcards.method:q}"
        " --seed {wildcards.seed} --operator {wildcards.operator} --out {output:q} > {log:q} 2>&1"
