"""The SLURM profile on a real one-node cluster (tests/slurm_cluster.py), never assumed.

The tiny experiment through `snakemake --profile workflow/profiles/slurm` writes the same
summary.csv and LaTeX tables as a local run (the one tests/test_workflow.py reads, built once per
pytest run), with every train/oneshot job a SLURM job; a job that
fails on the cluster is reported with its SLURM log; a GPU request reaches sbatch as the plugin's
--gpus, and fails at submission on a cluster without GPUs. Each run works on a copy of the
project. The profile is used as shipped, except that memory and CPUs per GPU are capped to what
the test node has.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slurm_cluster import Cluster, slurm_cluster, unavailable_reason
from clones import copy_files, prepared_data, tiny_runs

# one worker: one cluster at a time (see the fixtures below)
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm")]

CONFIG = ["--configfile", "configs/tiny.yaml"]
PROFILE = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/profiles/slurm/config.yaml").read_text())
# Status checks every second instead of the profile's 40 s (a real cluster's scheduler needs
# the breathing room; this one does not); successful jobs keep their SLURM logs for the checks.
SLURM = ["--profile", "workflow/profiles/slurm", "--slurm-init-seconds-before-status-checks", "1",
         "--seconds-between-status-checks", "1", "--slurm-keep-successful-logs"]
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def skip_without_slurm() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """resources/data prepared once (a local job), copied into every project below."""
    skip_without_slurm()
    return prepared_data(tmp_path_factory)


# One cluster at a time (they share SLURM's default config path): class-scoped fixtures.
@pytest.fixture(scope="class")
def cluster(tmp_path_factory):
    skip_without_slurm()
    with slurm_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="class")
def gpu_cluster(tmp_path_factory):
    skip_without_slurm()
    with slurm_cluster(tmp_path_factory.mktemp("gpu_cluster"), gpus=1) as running:
        yield running


def job_env(cluster: Cluster, **extra: str) -> dict:
    """The venv's snakemake; the partition through SBATCH_PARTITION, as a lab would set it."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{cluster.env['PATH']}"
    return dict(cluster.env, PATH=path, SBATCH_PARTITION=cluster.partition, **extra)


def fit_profile(project: Path, cluster: Cluster) -> None:
    """Cap mem_mb and cpus_per_gpu to the test node; every other key stays as shipped."""
    path = project / "workflow/profiles/slurm/config.yaml"
    profile = yaml.safe_load(path.read_text())
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], cluster.memory_mb // 4)
        if "cpus_per_gpu" in resources:
            resources["cpus_per_gpu"] = min(resources["cpus_per_gpu"], cluster.cpus)
    path.write_text(yaml.safe_dump(profile, sort_keys=False))


def project_copy(dest: Path, dataset: Path) -> Path:
    copy_files(dest)
    shutil.copytree(dataset, dest / "resources/data")
    return dest


def slurm_project(dest: Path, cluster: Cluster, dataset: Path) -> Path:
    project_copy(dest, dataset)
    fit_profile(dest, cluster)
    return dest


def gpu_config(project: Path) -> list[str]:
    """configs/tiny.yaml reduced to one training run that asks for one GPU (training.gpus)."""
    cfg = yaml.safe_load((project / "configs/tiny.yaml").read_text())
    cfg.update(experiment="tiny_gpu", methods=cfg["methods"][:1], seeds=[0])
    cfg["training"]["gpus"] = 1
    (project / "configs/tiny_gpu.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # the target first: --configfile takes every argument that follows it
    return ["results/tiny_gpu/checkpoints/resnet20-SGD-s0.pt", "--configfile", "configs/tiny_gpu.yaml"]


def snakemake(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def succeed(args: list[str], cwd: Path, env: dict) -> str:
    proc = snakemake(args, cwd, env)
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def slurm_logs(project: Path) -> dict[str, list[Path]]:
    """The plugin's SLURM logs, .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log, by rule."""
    logs: dict[str, list[Path]] = {}
    for log in sorted((project / ".snakemake/slurm_logs").glob("rule_*/*/*.log")):
        logs.setdefault(log.parent.parent.name.removeprefix("rule_"), []).append(log)
    return logs


class Background:
    """`snakemake <args>` started now; its exit status and stdout + stderr when waited for. The
    output goes to files, so that runs going on together never block on a full pipe."""

    def __init__(self, args: list[str], cwd: Path, env: dict):
        self.files = [cwd.with_name(f"{cwd.name}.{stream}") for stream in ("stdout", "stderr")]
        with open(self.files[0], "w") as out, open(self.files[1], "w") as err:
            self.process = subprocess.Popen(["snakemake", *args], cwd=cwd, env=env, stdout=out, stderr=err)
        self.started = time.monotonic()

    def wait(self) -> tuple[int, str]:
        returncode = self.process.wait(timeout=600)
        return returncode, "".join(f.read_text() for f in self.files)

    def wait_for_submission(self) -> None:
        """Until the first job is submitted (or snakemake ended): what the test waits for is queued first."""
        deadline = time.monotonic() + 60
        while self.process.poll() is None and time.monotonic() < deadline:
            if SUBMITTED.search(self.files[1].read_text()):
                return
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture(scope="class")
def submitted(cluster, dataset, tmp_path_factory):
    """The three runs on the cluster without GPUs, started together, each on its own copy of the
    project. Each mostly waits for the plugin's status checks (1 s, then 10 s longer after each
    check that finds no job finished), so together they take about as long as the longest alone.
    The failing job goes first: behind the tiny experiment's eight jobs on the node's few CPUs its
    two attempts would wait for the longer status-check intervals."""
    root = tmp_path_factory.mktemp("submitted")
    runs = {"failed": start_failed_job(cluster, dataset, root / "failed")}
    runs["failed"][1].wait_for_submission()
    runs.update(tiny=start_tiny(cluster, dataset, root / "tiny"), gpu=start_gpu_request(cluster, dataset, root / "gpu"))
    # the local reference, built meanwhile unless another worker has built it or is building it
    runs["tiny"] = (tiny_runs(tmp_path_factory).outputs, *runs["tiny"])
    yield runs
    for run in (r for started in runs.values() for r in started if isinstance(r, Background)):
        run.stop()  # a run no test waited for (deselected, or its test failed early)


class TestClusterWithoutGpus:
    def test_tiny_experiment_through_slurm_equals_a_local_run(self, cluster, submitted):
        tiny_through_slurm_equals_local(cluster, *submitted["tiny"])

    def test_failed_cluster_job_is_reported_with_its_slurm_log(self, submitted):
        failed_job_reports_its_slurm_log(*submitted["failed"])

    def test_gpu_request_fails_at_submission(self, cluster, submitted):
        gpu_request_fails_at_submission(cluster, *submitted["gpu"])


class TestClusterWithGpu:
    def test_gpu_request_reaches_sbatch(self, gpu_cluster, dataset, tmp_path):
        gpu_request_reaches_sbatch(gpu_cluster, dataset, tmp_path)


def start_tiny(cluster: Cluster, dataset: Path, root: Path) -> tuple[Path, Background]:
    """The tiny experiment through SLURM."""
    remote = slurm_project(root / "slurm", cluster, dataset)
    return remote, Background([*SLURM, *CONFIG], remote, job_env(cluster))


def tiny_through_slurm_equals_local(cluster: Cluster, local: Path, remote: Path, run: Background) -> None:
    returncode, out = run.wait()
    assert returncode == 0, f"snakemake through SLURM failed:\n{out}"
    print(f"tiny experiment through SLURM: {time.monotonic() - run.started:.0f} s (other runs alongside)")

    logs = slurm_logs(remote)
    assert sorted(logs) == ["oneshot", "train"]  # data, aggregate, figures, tables, reproduction ran locally
    assert len(logs["train"]) == 4 and len(logs["oneshot"]) == 4  # 1 arch x 2 methods x 2 seeds
    submitted = dict(SUBMITTED.findall(out))
    assert f"slurm_partition={cluster.partition}" in out  # the profile read SBATCH_PARTITION
    assert len(submitted) == 8 and {Path(p) for p in submitted.values()} == {p for v in logs.values() for p in v}
    limits = {"train": "TimeLimit=1-00:00:00", "oneshot": "TimeLimit=04:00:00"}  # the profile's runtime
    for rule, files in logs.items():
        for log in files:
            info = cluster.scontrol_job(log.stem)
            assert "JobState=COMPLETED" in info and f"Partition={cluster.partition}" in info
            assert limits[rule] in info and f"Comment=rule_{rule}_wildcards_" in info

    outputs = ["results/tiny/summary.csv", *sorted(str(p.relative_to(local)) for p in (local / "paper_tables/tiny").iterdir())]
    assert len(outputs) == 5  # summary, before/after BNT tables, REPRODUCTION.md and its HTML
    for name in outputs:
        assert (remote / name).read_bytes() == (local / name).read_bytes(), name


def start_failed_job(cluster: Cluster, dataset: Path, root: Path) -> tuple[Path, Background]:
    project = slurm_project(root, cluster, dataset)
    # An unreadable dataset: prepare_data's outputs exist, so the job starts and fails on the node.
    (project / "resources/data/mnist_embedded.pt").write_bytes(b"not a tensor file")
    return project, Background(["results/tiny/checkpoints/resnet20-SGD-s0.pt", *SLURM, *CONFIG], project,
                               job_env(cluster))


def failed_job_reports_its_slurm_log(project: Path, run: Background) -> None:
    returncode, out = run.wait()
    assert returncode != 0
    logs = slurm_logs(project)["train"]
    assert len(logs) == 2  # the profile's retries: 1 -> resubmitted once
    for log in logs:
        assert f"SLURM-job '{log.stem}' failed, SLURM status is: 'FAILED'" in out
        assert str(log) in out  # the error names the SLURM log ...
        assert "Error in rule train" in log.read_text()  # ... which holds the job's own report


def start_gpu_request(cluster: Cluster, dataset: Path, root: Path) -> tuple[Path, Background]:
    project = slurm_project(root, cluster, dataset)
    return project, Background([*gpu_config(project), *SLURM], project, job_env(cluster))


def gpu_request_fails_at_submission(cluster: Cluster, project: Path, run: Background) -> None:
    returncode, out = run.wait()
    assert returncode != 0
    assert "SLURM sbatch failed" in out and " --gpus=1" in out and f" -p {cluster.partition} " in out
    assert "sbatch: error: Invalid generic resource (gres) specification" in out  # SLURM's own words
    assert "train" not in slurm_logs(project)  # nothing ran


def gpu_request_reaches_sbatch(gpu_cluster: Cluster, dataset: Path, tmp_path: Path) -> None:
    project = slurm_project(tmp_path / "project", gpu_cluster, dataset)
    env = job_env(gpu_cluster, COMPRESSIBLE_GPU_MODEL="testgpu")
    succeed([*gpu_config(project), *SLURM], project, env)
    (log,) = slurm_logs(project)["train"]
    info = gpu_cluster.scontrol_job(log.stem)
    cpus_per_gpu = min(PROFILE["set-resources"]["train"]["cpus_per_gpu"], gpu_cluster.cpus)  # capped to the node
    assert "JobState=COMPLETED" in info
    assert "TresPerJob=gres:gpu:testgpu:1" in info  # gpu=1 and gpu_model -> --gpus=testgpu:1
    assert f"CpusPerTres=gres:gpu:{cpus_per_gpu}" in info and f"NumCPUs={cpus_per_gpu}" in info
