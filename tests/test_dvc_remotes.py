"""The published checkpoints come back from every kind of remote, byte for byte, and are never
retrained: the remote bundled in the repository (what a fresh clone pulls with no account and
no network), an S3 bucket (moto's S3 server on 127.0.0.1) and a static HTTP directory
(python's http.server on 127.0.0.1). Each reader is a fresh `git clone` with HOME inside the
test's temporary directory, running the commands of docs/running.md."""
from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from clones import ROOT, clone, commit, copy_project, digest, isolated_env, planned_jobs, run
from compressible.dvc_pull import published

BUNDLED = ROOT / "results/dvc-remote"
DEFAULT_RUNS = 8  # configs/default.yaml: 1 arch x 4 methods x 2 seeds


def remote_object(remote: Path, md5: str) -> Path:
    """Where DVC 3 keeps an object in a local, S3 or HTTP remote: files/md5/<2 hex>/<rest>."""
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def manifest(remote: Path, md5: str) -> dict[str, str]:
    """A pushed directory's files (relative path -> md5), from its .dir object in the remote."""
    return {e["relpath"]: e["md5"] for e in json.loads(remote_object(remote, md5).read_text())}


def assert_pushed_bytes(repo: Path, experiment: str = "default") -> None:
    """Every file of the pulled checkpoints directory equals the one in the bundled remote."""
    files = manifest(BUNDLED, published(ROOT)[experiment])
    out = repo / f"results/{experiment}/checkpoints"
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    for name, md5 in files.items():
        assert digest(out / name, "md5") == md5
        assert (out / name).read_bytes() == remote_object(BUNDLED, md5).read_bytes()


def assert_no_train_job(repo: Path, env: dict) -> None:
    dry = run("snakemake --cores all -n", repo, env)
    assert planned_jobs(dry, "train") == 0 and planned_jobs(dry, "oneshot") == DEFAULT_RUNS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- what the repository ships (fast) -----------------------------------------------------------
def test_every_dvc_stage_is_published():
    """A plain `dvc pull` fails on any stage without a dvc.lock entry: dvc.yaml lists only these."""
    listed = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["foreach"]
    assert sorted(listed) == sorted(published(ROOT)) and "default" in listed


def test_bundled_remote_holds_every_locked_object():
    for experiment, md5 in published(ROOT).items():
        files = manifest(BUNDLED, md5)
        weights = [n for n in files if n.endswith(".pt")]
        assert sorted(n.replace(".pt", ".json") for n in weights) == sorted(set(files) - set(weights))
        assert experiment != "default" or len(weights) == DEFAULT_RUNS
        for name, file_md5 in files.items():
            assert digest(remote_object(BUNDLED, file_md5), "md5") == file_md5, name


def test_pull_of_an_unpublished_experiment_names_the_published_ones(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "compressible", "pull", "oneshot_suite"], cwd=ROOT,
                          capture_output=True, text=True, env=isolated_env(tmp_path))
    assert proc.returncode != 0
    assert "no published checkpoints for oneshot_suite" in proc.stderr
    assert "train@oneshot_suite" in proc.stderr and "published: default" in proc.stderr


# --- fresh clones pulling from each kind of remote (slow) ---------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    return isolated_env(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def project(tmp_path_factory, env) -> Path:
    return copy_project(tmp_path_factory.mktemp("project"), env)


@pytest.mark.slow
@pytest.mark.parametrize("pull", ["dvc pull", "dvc pull train@default", "python -m compressible pull default"])
def test_fresh_clone_pulls_the_bundled_checkpoints(pull, project, env, tmp_path):
    repo = clone(project, tmp_path / "repo", env)
    assert not (repo / "results/default/checkpoints").exists()
    run(pull, repo, env)
    assert_pushed_bytes(repo)
    assert_no_train_job(repo, env)


@pytest.fixture
def lab(project, env, tmp_path) -> Path:
    """A lab's checkout holding the default's checkpoints (pulled from the bundled remote)."""
    repo = clone(project, tmp_path / "lab", env)
    run("dvc pull", repo, env)
    return repo


@pytest.fixture
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.slow
def test_s3_remote_round_trip(lab, s3_endpoint, env, tmp_path):
    import boto3

    s3env = dict(env, AWS_ACCESS_KEY_ID="lab-key", AWS_SECRET_ACCESS_KEY="lab-secret", AWS_DEFAULT_REGION="us-east-1")
    boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="lab-key", aws_secret_access_key="lab-secret",
                 region_name="us-east-1").create_bucket(Bucket="lab-checkpoints")
    # docs/running.md: publish through an S3 bucket (endpointurl only for an S3 service other than AWS).
    run("dvc remote add -d lab s3://lab-checkpoints/compressible", lab, s3env)
    run(f"dvc remote modify lab endpointurl {s3_endpoint}", lab, s3env)
    run("dvc push", lab, s3env)
    commit(lab, s3env, "checkpoints in the lab's bucket")
    reader = clone(lab, tmp_path / "reader", s3env)
    run("dvc pull", reader, s3env)
    assert "lab" in run("dvc remote default", reader, s3env)
    assert_pushed_bytes(reader)
    assert_no_train_job(reader, s3env)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would drown the test's output
        pass


@pytest.fixture
def http_site(tmp_path):
    """A static HTTP server on 127.0.0.1 serving one directory (what a lab's web server does)."""
    site = tmp_path / "site"
    site.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.slow
def test_http_remote_pull(lab, http_site, env, tmp_path):
    site, url = http_site
    # docs/running.md: push to a directory the web server serves, make its URL the default remote.
    run(f"dvc remote add --local site-dir {site} && dvc push -r site-dir", lab, env)
    assert remote_object(site, published(ROOT)["default"]).is_file()
    run(f"dvc remote add -d web {url}", lab, env)
    commit(lab, env, "checkpoints on the lab's web site")
    reader = clone(lab, tmp_path / "reader", env)
    run("dvc pull", reader, env)
    assert_pushed_bytes(reader)
    assert_no_train_job(reader, env)
