"""The planner: its job matrix and hours add up, recomputed here from the config by hand."""
from __future__ import annotations

import json

import pytest

from compressible.config import Method, load_config, validate_config
from compressible.planner import (StepTime, closure_passes, dataset_facts, macs_per_image, plan,
                                  step_seconds, summary)

TINY = "configs/tiny.yaml"


def table(device: str = "gpu-x", sgd: float = 0.01, sam: float | None = None) -> list[StepTime]:
    flops = macs_per_image('{"name": "resnet20", "width": 16}', 10, (3, 32, 32))
    rows = [StepTime(device, "resnet20", "sgd", "fp32", 128, flops, sgd)]
    if sam is not None:
        rows.append(StepTime(device, "resnet20", "sam", "fp32", 128, flops, sam))
    return rows


def test_two_pass_methods_count_two_passes():
    assert closure_passes("sgd", "{}") == 1
    assert closure_passes("sam", '{"rho": 0.05}') == 2
    assert closure_passes("cram_plus_multi", "{}") == 2


def test_step_time_scales_with_flops_and_batch():
    rows = table()
    flops = rows[0].macs_per_image
    sgd = Method("SGD", "sgd", {}, None)
    assert step_seconds(rows, "gpu-x", sgd, "fp32", flops, 128) == pytest.approx(0.01)
    assert step_seconds(rows, "gpu-x", sgd, "fp32", 2 * flops, 64) == pytest.approx(0.01)
    sam = Method("SAM", "sam", {"rho": 0.05}, None)
    assert step_seconds(rows, "gpu-x", sam, "fp32", flops, 128) == pytest.approx(0.02)  # 2 passes
    assert step_seconds(table(sam=0.03), "gpu-x", sam, "fp32", flops, 128) == pytest.approx(0.03)  # measured
    assert step_seconds(rows, "cpu", sgd, "fp32", flops, 128) is None  # nothing measured there
    assert step_seconds(rows, "gpu-x", sgd, "bf16", flops, 128) is None


def test_plan_of_tiny_adds_up():
    cfg = load_config(TINY)
    rows = table(sgd=0.02)
    jobs = plan(cfg, "gpu-x", rows)
    train, test, shape, classes = dataset_facts(cfg.dataset)
    assert (train, test, shape, classes) == (cfg.dataset["train_subset"], cfg.dataset["test_subset"], (1, 28, 28), 10)
    runs = len(cfg.archs) * len(cfg.methods) * len(cfg.seeds)
    trains = [j for j in jobs if j.rule == "train"]
    oneshots = [j for j in jobs if j.rule == "oneshot"]
    assert len(trains) == runs and len(oneshots) == runs * len(cfg.oneshot)
    arch = cfg.archs[0]
    flops = macs_per_image(f'{{"name": "{arch.name}", "width": {arch.width}}}', classes, shape)
    per_image = 0.02 / 128 * flops / rows[0].macs_per_image  # SGD seconds per training image
    for job in trains:
        method = cfg.method(job.run.method)
        epochs = method.epochs or cfg.training.epochs
        steps = epochs * (train // cfg.training.batch_size)
        passes = closure_passes(method.name, json.dumps(method.params, sort_keys=True))
        hours = (steps * cfg.training.batch_size * per_image * passes + epochs * test * per_image / 3) / 3600
        assert job.steps == steps and job.epochs == epochs
        assert job.hours == pytest.approx(hours, rel=1e-9)
    bnt = cfg.bnt
    for job in oneshots:
        levels = len(cfg.entry(job.name.rsplit("-", 1)[1]).levels)
        images = test + levels * ((1 + bnt.trials) * test + bnt.trials * bnt.batches * bnt.batch_size)
        assert job.images_evaluated == images
        assert job.hours == pytest.approx(images * per_image / 3 / 3600, rel=1e-9)
    rows_out = summary(jobs, parallel=2)
    assert rows_out[-1]["hours"] == pytest.approx(sum(j.hours for j in jobs))
    assert rows_out[-1]["steps"] == sum(j.steps for j in trains)
    assert rows_out[-1]["wall"] == pytest.approx(max(max(j.hours for j in jobs), sum(j.hours for j in jobs) / 2))


def test_plan_command_prints_the_matrix_and_says_when_nothing_was_measured(capsys):
    from compressible.cli import main

    assert main(["plan", "--configfile", str(TINY), "--device", "no-such-gpu"]) == 0
    out = capsys.readouterr().out
    assert "plan: tiny on no-such-gpu" in out and "not measured" in out
    assert "none measured on no-such-gpu: run benchmarks/bench_epoch.py --record there" in out


def test_the_recorded_table_predicts_the_cpu(capsys):
    from compressible.cli import main

    assert main(["plan", "--configfile", str(TINY), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "not measured" not in out, out


def test_finetune_jobs_count_their_epochs_at_every_level():
    """CrAM App. D's sparse finetune: per (run, entry with finetune) its epochs at every level
    (method masked: one pass, costed as SGD's step), then the dense model and each level evaluated."""
    cfg = load_config(TINY)
    assert not [j for j in plan(cfg, "gpu-x", table()) if j.rule == "finetune"]  # none configured
    raw = cfg.resolved | {"oneshot": [dict(cfg.resolved["oneshot"][0], finetune={"epochs": 2})]}
    cfg = validate_config(raw)
    rows = table(sgd=0.02)
    jobs = [j for j in plan(cfg, "gpu-x", rows) if j.rule == "finetune"]
    train, test, shape, classes = dataset_facts(cfg.dataset)
    arch = cfg.archs[0]
    per_image = 0.02 / 128 * macs_per_image(f'{{"name": "{arch.name}", "width": {arch.width}}}', classes, shape) \
        / rows[0].macs_per_image
    levels = len(cfg.oneshot[0].levels)
    assert len(jobs) == len(cfg.archs) * len(cfg.methods) * len(cfg.seeds)
    for job in jobs:
        steps = levels * 2 * (train // cfg.training.batch_size)
        assert (job.epochs, job.steps, job.images_evaluated) == (2, steps, test * (1 + levels))
        hours = (steps * cfg.training.batch_size * per_image + test * (1 + levels) * per_image / 3) / 3600
        assert job.hours == pytest.approx(hours, rel=1e-9)
