"""The device engine: device resolution at the job's start, data held on the device with batch-wise
augmentation, bf16 autocast, checkpoints in CPU tensors, provenance, progress lines."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest
import torch
import yaml

from compressible.checkpoint import load_checkpoint
from compressible.config import Arch, ConfigError, Method, load_config
from compressible.data import save_prepared, train_batches
from compressible.data.batches import augment
from compressible.device import DeviceError, autocast, describe, memory_format, resolve_device
from compressible.models import build_model
from compressible.progress import EpochClock, clock
from compressible.training.loop import train_run

from test_train import SGD, spec

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
needs_no_cuda = pytest.mark.skipif(CUDA, reason="checks the error on a machine without CUDA; this one has it")


def reference_augment(images: torch.Tensor, padding: int, dy, dx, flips) -> torch.Tensor:
    """Crop and flip one image at a time, from the same draws: an independent reference."""
    out = []
    for img, y0, x0, flip in zip(images.float() / 255, dy.tolist(), dx.tolist(), flips.tolist()):
        padded = torch.nn.functional.pad(img, (padding,) * 4)
        crop = padded[:, y0:y0 + img.shape[1], x0:x0 + img.shape[2]]
        out.append(crop.flip(2) if flip else crop)
    return torch.stack(out)


def test_batchwise_augmentation_matches_a_per_image_reference(splits):
    splits = dataclasses.replace(splits, crop_padding=2, flip=True)  # both augmentations on
    images = splits.train_images[:16]
    got = augment(images, splits, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the order augment makes them
    p = splits.crop_padding
    dy, dx = torch.randint(0, 2 * p + 1, (16,), generator=g), torch.randint(0, 2 * p + 1, (16,), generator=g)
    flips = torch.rand(16, generator=g) < 0.5
    mean, std = torch.tensor(splits.mean).view(1, -1, 1, 1), torch.tensor(splits.std).view(1, -1, 1, 1)
    want = (reference_augment(images, p, dy, dx, flips) - mean) / std
    assert p > 0 and splits.flip and flips.any() and not flips.all()
    assert torch.equal(got, want)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_batches_on_the_device_equal_those_on_the_cpu(splits, device):
    on = splits.to(torch.device(device))
    cpu_batches = list(train_batches(splits, 32, torch.Generator().manual_seed(0)))
    dev_batches = list(train_batches(on, 32, torch.Generator().manual_seed(0)))
    assert len(cpu_batches) == len(splits.train_labels) // 32
    for (xa, ya), (xb, yb) in zip(cpu_batches, dev_batches):
        assert xb.device.type == device and torch.equal(ya, yb.cpu())
        assert torch.allclose(xa, xb.cpu(), atol=1e-6)  # the same crops, flips and order


def test_resolve_device_names_what_is_allowed():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    with pytest.raises(DeviceError, match="allowed are auto, cpu, cuda, cuda:N"):
        resolve_device("gpu")


@needs_no_cuda
def test_cuda_without_a_gpu_stops_at_the_start():
    with pytest.raises(DeviceError, match="finds no CUDA device"):
        resolve_device("cuda")


def test_device_cuda_is_a_valid_config_without_a_gpu(tmp_path):
    """The submit host checks the config; only the job itself needs the GPU."""
    raw = yaml.safe_load(open("configs/tiny.yaml"))
    raw["training"].update(device="cuda:1", precision="bf16", compile=True, jobs_per_gpu=4)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    assert (cfg.training.device, cfg.training.precision, cfg.training.jobs_per_gpu) == ("cuda:1", "bf16", 4)
    raw["training"]["device"] = "gpu0"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="device"):
        load_config(path)


@needs_no_cuda
def test_a_cuda_train_job_without_a_gpu_fails_before_training(tmp_path, splits):
    raw = yaml.safe_load(open("configs/tiny.yaml"))
    raw["training"]["device"] = "cuda"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    save_prepared(splits, tmp_path / "data.pt")
    run = subprocess.run([sys.executable, "-m", "compressible", "train", "--config", str(tmp_path / "c.yaml"),
                          "--arch", "resnet20", "--method", "SGD", "--seed", "0", "--data", str(tmp_path / "data.pt"),
                          "--out", str(tmp_path / "w.pt")], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "training.device='cuda' but this job finds no CUDA device" in run.stderr
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_checkpoints_hold_cpu_tensors_and_provenance_names_the_device(tmp_path, splits, device):
    save_prepared(splits, tmp_path / "data.pt")
    one = dataclasses.replace(spec(SGD, epochs=1), training=dataclasses.replace(spec(SGD).training, epochs=1, device=device))
    info = train_run(one, tmp_path / "data.pt", tmp_path / "w.pt")
    payload = torch.load(tmp_path / "w.pt", map_location="meta", weights_only=True)
    assert all(t.device.type == "meta" for t in payload["model"].values())  # stored on CPU (mapped)
    raw = torch.load(tmp_path / "w.pt", weights_only=True)["model"]
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in raw.values())
    assert info["device"]["type"] == device and info["device"]["precision"] == "fp32"
    if device == "cuda":
        assert info["device"]["gpu"] == torch.cuda.get_device_name() and info["device"]["cuda"]
    load_checkpoint(tmp_path / "w.pt")  # rebuilds on the CPU


def test_bf16_changes_the_forward_pass_only():
    """Under autocast the convolutions compute in bf16 (the logits differ from fp32 by more than
    float rounding), while the parameters and their gradients stay fp32."""
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, in_channels=3, width=4)
    x, cpu = torch.randn(8, 3, 16, 16), torch.device("cpu")
    with autocast(cpu, "bf16"):
        low = model(x)
        loss = torch.nn.functional.cross_entropy(low, torch.arange(8) % 10)
    loss.backward()
    full = model(x)
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert 1e-4 < (low.float() - full).abs().max() < 0.5
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())


def test_bf16_training_trains_and_is_hashed(tmp_path, splits):
    save_prepared(splits, tmp_path / "data.pt")
    fp32, bf16 = spec(SGD), spec(SGD)
    bf16 = dataclasses.replace(bf16, training=dataclasses.replace(bf16.training, precision="bf16"))
    info = train_run(bf16, tmp_path / "data.pt", tmp_path / "w.pt")
    assert info["device"]["precision"] == "bf16" and info["final_test_accuracy"] > 50.0  # chance is 25 %
    assert fp32.hash() != bf16.hash()
    moved = dataclasses.replace(fp32, training=dataclasses.replace(fp32.training, device="cuda", compile=True))
    assert moved.hash() == fp32.hash()  # device and compile: the same run, elsewhere or faster


def test_channels_last_only_for_convolutional_models_on_cuda():
    conv, mlp = build_model("resnet20", width=4), torch.nn.Linear(3, 2)
    assert memory_format(torch.device("cpu"), conv) == torch.contiguous_format
    assert memory_format(torch.device("cuda", 0), conv) == torch.channels_last
    assert memory_format(torch.device("cuda", 0), mlp) == torch.contiguous_format


def test_describe_records_precision_and_threads():
    info = describe(torch.device("cpu"), "bf16")
    assert info["type"] == "cpu" and info["precision"] == "bf16" and info["threads"] == torch.get_num_threads()
    json.dumps(info)  # provenance is JSON


def test_training_logs_one_line_per_epoch(tmp_path, splits, capsys):
    save_prepared(splits, tmp_path / "data.pt")
    train_run(spec(SGD, epochs=3), tmp_path / "data.pt", tmp_path / "w.pt")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    pattern = (r"epoch \d/3  train loss [\d.]+  test acc [\d.]+%  lr [\d.e-]+  [\d,]+ img/s  "
               r"elapsed \d+:\d\d:\d\d  remaining \d+:\d\d:\d\d")
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert lines[-1].endswith("remaining 0:00:00")


def test_epoch_clock_extrapolates_the_epochs_done():
    import time

    c = EpochClock(epochs=10, started=time.perf_counter() - 20.0)  # 20 s since the job started
    c.seconds = [4.0, 4.0]  # two epochs timed, 4 s of training each
    line = c.line(2, 0.5, 91.25, 0.1, 40_000)
    assert "10,000 img/s" in line and "test acc 91.25%" in line
    assert "elapsed 0:00:20" in line and "remaining 0:01:20" in line  # 10 s an epoch, 8 to go
    assert clock(3725) == "1:02:05"


def small_convnet(num_classes: int = 10, in_channels: int = 3, width: int = 4) -> torch.nn.Module:
    """Conv, batch norm (its train and eval graphs, its running statistics), ReLU, pooling and a
    linear head: every kind of layer the ResNets compile, in a graph small enough that
    torch.compile's C++ build of it takes seconds, not the half minute of a ResNet-20's."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


@pytest.mark.slow  # torch.compile's C++ build
def test_compiled_training_matches_eager_within_float_rounding(tmp_path, splits, monkeypatch):
    """torch.compile reorders float arithmetic, nothing else: after a few steps the weights of the
    same run agree to float rounding, and the checkpoint holds the plain module's names."""
    import shutil

    from compressible.registry import MODELS

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on the CPU needs a C compiler (none on PATH)")
    monkeypatch.setitem(MODELS._builders, "small_convnet", small_convnet)  # this test's only
    save_prepared(splits, tmp_path / "data.pt")
    eager = dataclasses.replace(spec(SGD, epochs=1), arch=Arch("small_convnet", 4, None))
    compiled = dataclasses.replace(eager, training=dataclasses.replace(eager.training, compile=True))
    train_run(eager, tmp_path / "data.pt", tmp_path / "e.pt")
    info = train_run(compiled, tmp_path / "data.pt", tmp_path / "c.pt")
    a, b = (load_checkpoint(tmp_path / f"{n}.pt").state_dict() for n in ("e", "c"))
    assert a.keys() == b.keys() and info["device"]["compiled"] is True
    for name in a:
        if a[name].is_floating_point():
            gap = (a[name] - b[name]).norm() / a[name].norm().clamp_min(1e-12)
            assert gap < 1e-3, (name, float(gap))


def test_deterministic_mode_leaves_new_tensors_unfilled():
    """No NaN fill behind every empty_like/clone (a full write per allocation on CUDA)."""
    from compressible.runtime import make_deterministic
    make_deterministic(0)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_deterministic_kernels_without_loading_the_compiler_unless_compiled():
    """The kernels' flag is on, warn-only, in every job; torch.compile's own flag (and the compiler
    stack it imports, about 1 s per job) only in a compiled run."""
    from compressible.runtime import make_deterministic

    probe = ("import sys, torch; from compressible.runtime import make_deterministic; make_deterministic(0); "
             "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
             "'torch._inductor' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "False"]
    import torch._inductor.config as compiler
    compiler.deterministic = False
    make_deterministic(0, compiled=True)
    assert compiler.deterministic is True and torch.is_deterministic_algorithms_warn_only_enabled()


def test_tf32_is_explicit_and_its_default_keeps_the_run_hashes():
    from compressible.device import use_tf32
    for enabled in (False, True):
        use_tf32(enabled)
        assert torch.backends.cudnn.allow_tf32 is enabled and torch.backends.cuda.matmul.allow_tf32 is enabled
    run = spec(SGD)
    assert run.training.tf32 is True and "tf32" not in run.hashed()["training"]  # as before the setting
    off = dataclasses.replace(run, training=dataclasses.replace(run.training, tf32=False))
    assert off.hashed()["training"]["tf32"] is False and off.hash() != run.hash()
    assert describe(torch.device("cpu"), "fp32", False).get("tf32") is None  # recorded where it applies: CUDA
