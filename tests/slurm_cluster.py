"""A one-node SLURM cluster for the tests, from Debian's `slurm-wlm` and `munge` packages.

Every file the daemons use (munge key and socket, slurm.conf, state, spool, logs, pid files) lies
under one temporary directory, and the ports are free ones picked at start. One global path is
touched: /etc/slurm/slurm.conf, SLURM's default config path, becomes a symlink to the temporary
slurm.conf while the cluster runs (only when no config is there; removed at the end), because the
plugin's job step drops SLURM_CONF before it calls srun inside the job. No slurmdbd: accounting is
off, as on a cluster without accounting. The daemons are stopped by their process ids.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("mungekey", "munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "sinfo")
PARTITION = "compute"
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def unavailable_reason() -> str | None:
    """Why no cluster can be started on this machine, or None."""
    if os.geteuid() != 0:
        return "a one-node SLURM cluster needs root (slurmd starts jobs as their user)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (f"SLURM/munge not installed ({', '.join(missing)} missing); as root on Debian/Ubuntu, "
                "`bash workflow/scripts/in-venv.sh --with-slurm pytest` installs them")
    if (DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink()) and not stale_link(DEFAULT_CONF):
        return f"this machine has a SLURM config ({DEFAULT_CONF}); the test does not replace it"
    return None


def stale_link(path: Path) -> bool:
    """A link left by an interrupted test run: its config is gone or its slurmctld is not running."""
    if not path.is_symlink():
        return False
    pid_file = path.resolve().parent / "slurmctld.pid"
    return not pid_file.exists() or not Path("/proc", pid_file.read_text().strip()).exists()


@dataclass
class Cluster:
    root: Path
    env: dict
    partition: str
    cpus: int
    memory_mb: int

    def scontrol_job(self, job_id: str) -> str:
        return subprocess.run(["scontrol", "show", "job", job_id], env=self.env, check=True,
                              capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> dict:
    """This machine as slurmd sees it (CPUs, boards, sockets, cores, threads, RealMemory)."""
    line = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return dict(field.split("=", 1) for field in line.split())


def slurm_conf(root: Path, hardware: dict, gpus: int) -> str:
    """This machine as the one node; linuxproc/none plugins, so no cgroups are needed."""
    node = " ".join(f"{k}={v}" for k, v in hardware.items() if k != "UpTime")
    gres = f" Gres=gpu:testgpu:{gpus}" if gpus else ""
    return "\n".join([
        f"ClusterName=test{os.getpid()}", f"SlurmctldHost={hardware['NodeName']}(127.0.0.1)",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={root}/munge/munge.socket",
        "SlurmUser=root", "SlurmdUser=root", "MpiDefault=none",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log", f"SlurmdLogFile={root}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
        # finished jobs stay visible to squeue for 10 minutes (the profile's status command)
        "MinJobAge=600", "ReturnToService=2",
        *(["GresTypes=gpu"] if gpus else []),
        f"{node} NodeAddr=127.0.0.1{gres} State=UNKNOWN",
        # the tests' partition is not the default one, so a job found there was sent there
        f"PartitionName=main Nodes={hardware['NodeName']} Default=YES MaxTime=INFINITE State=UP",
        f"PartitionName={PARTITION} Nodes={hardware['NodeName']} MaxTime=INFINITE State=UP",
    ]) + "\n"


def write_files(root: Path, gpus: int) -> dict:
    """The directory tree, a fresh munge key, slurm.conf and (with GPUs) gres.conf."""
    for sub in ("munge", "key", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "key").chmod(0o700)  # munged refuses a key others can read
    subprocess.run(["mungekey", "--create", "--force", f"--keyfile={root}/key/munge.key"], check=True)
    hardware = node_hardware()
    (root / "slurm.conf").write_text(slurm_conf(root, hardware, gpus))
    if gpus:  # fake GPUs: SLURM only needs a file per device to count and hand out
        devices = [root / f"fake-gpu{i}" for i in range(gpus)]
        for device in devices:
            device.touch()
        (root / "gres.conf").write_text("".join(
            f"NodeName={hardware['NodeName']} Name=gpu Type=testgpu File={d}\n" for d in devices))
    return hardware


def start(root: Path, argv: list[str], env: dict) -> subprocess.Popen:
    out = open(root / "log" / f"{Path(argv[0]).name}.out", "w")
    return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_until(check, what: str, root: Path, procs: list[subprocess.Popen], timeout: float = 30.0) -> None:
    """Poll ``check``; a daemon that exited or a timeout raises with the daemons' logs."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((root / "log").iterdir()))
            raise RuntimeError(f"{what} not reached within {timeout:.0f} s\n{logs}")
        time.sleep(0.2)


def node_idle(env: dict) -> bool:
    proc = subprocess.run(["sinfo", "--noheader", "-o", "%t"], env=env, capture_output=True, text=True)
    return proc.returncode == 0 and set(proc.stdout.split()) == {"idle"}


def stop(procs: list[subprocess.Popen]) -> None:
    """Stop the daemons this module started, newest first, by their process ids."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def default_conf_link(conf: Path):
    """/etc/slurm/slurm.conf -> ``conf`` while the cluster runs (see the module docstring)."""
    if stale_link(DEFAULT_CONF):
        DEFAULT_CONF.unlink()
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.symlink_to(conf)
    try:
        yield
    finally:
        DEFAULT_CONF.unlink()


@contextmanager
def slurm_cluster(root: Path, gpus: int = 0):
    """munged, slurmctld and slurmd in the foreground as child processes; yields a Cluster."""
    hardware = write_files(root, gpus)
    env = dict(os.environ, SLURM_CONF=str(root / "slurm.conf"))
    procs: list[subprocess.Popen] = []
    with default_conf_link(root / "slurm.conf"), stopping(procs):
        procs.append(start(root, ["munged", "--foreground", "--force", f"--socket={root}/munge/munge.socket",
                                  f"--key-file={root}/key/munge.key", f"--pid-file={root}/munge/munged.pid",
                                  f"--seed-file={root}/key/munged.seed", f"--log-file={root}/log/munged.log"], env))
        wait_until(lambda: (root / "munge/munge.socket").exists(), "munged socket", root, procs)
        procs.append(start(root, ["slurmctld", "-D", "-i"], env))
        procs.append(start(root, ["slurmd", "-D"], env))
        wait_until(lambda: node_idle(env), "an idle node", root, procs)
        yield Cluster(root, env, PARTITION, int(hardware["CPUs"]), int(hardware["RealMemory"]))


@contextmanager
def stopping(procs: list[subprocess.Popen]):
    try:
        yield
    finally:
        stop(procs)
