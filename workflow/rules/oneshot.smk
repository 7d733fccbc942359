rule oneshot:
    """Compress one checkpoint at every level of one operator; evaluate before BNT and after
    each BNT trial (each trial on its own seeded calibration subset)."""
    input:
        checkpoint=f"{RESULTS}/checkpoints/{{arch}}-{{method}}-s{{seed}}.pt",
        data=ancient(DATA),
        config=ancient(RESOLVED),
    output:
        f"{RESULTS}/oneshot/{{arch}}-{{method}}-s{{seed}}/{{operator}}.json",
    params:
        settings=lambda w: json.dumps([operator_entry(w.operator), CFG["bnt"], CFG["prunable"]], sort_keys=True),
    threads: CFG["training"].get("threads", 1)
    resources:
        gpu=CFG["training"].get("gpus", 0),
    log:
        f"{LOGS}/oneshot/{{arch}}-{{method}}-s{{seed}}-{{operator}}.log",
    shell:
        "python -m compressible oneshot --config {input.config} --checkpoint {input.checkpoint}"
        " --data {input.data} --operator {wildcards.operator} --seed {wildcards.seed}"
        " --out {output} > {log} 2>&1"
