rule prepare_data:
    """Materialize the dataset as uint8 tensors (embedded sets need no network)."""
    output:
        data=DATA,
        info=DATA.replace(".pt", ".json"),
    log:
        f"logs/prepare_data/{CFG.dataset['name']}.log",
    shell:
        "{PYTHON} -m compressible prepare --config {RESOLVED} --out {output.data} > {log} 2>&1"
