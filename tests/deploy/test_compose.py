"""docker-compose.yaml, checked without a Docker engine.

Debian's ``docker-compose`` 1.29 parses, merges and interpolates the file (``config``) without an engine;
the tests run it with ``.env.example`` as the env file and a clean environment (so a variable exported in
the developer's shell cannot hide a missing one), then check the resolved services. Nothing is started.
Note: 1.29's ``config`` prints every service whatever ``--profile`` says, so the profiles are checked on
the ``profiles`` key of each service.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_PASSWORD_ADMIN")
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
)
BASE_SERVICES = {"postgres", "redis", "mlflow", *AIRFLOW_SERVICES} - {"airflow-worker-gpu"}
STATE = "/var/lib/shop-reco"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, $NAME
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[?-])?|\$([A-Za-z_][A-Za-z0-9_]*)")


def compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    """``docker-compose --env-file ENV_FILE -f docker-compose.yaml ARGS`` from the repo root, clean environment."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose not found: install Debian's docker-compose 1.29 (apt-get install docker-compose; "
            "`make test` does it); it validates docker-compose.yaml without a Docker engine"
        )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    cmd = [binary, "--env-file", str(env_file), "-f", str(COMPOSE), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def env_example() -> dict[str, str]:
    """The variables .env.example defines, in order."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            out[key.strip()] = value.strip()
    return out


def compose_variables(text: str) -> dict[str, set[str]]:
    """Each variable docker-compose.yaml interpolates -> the operators it is used with (``:?``, ``:-``, ``''``).

    Whole-line comments are left out (compose does not interpolate them).
    """
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found: dict[str, set[str]] = {}
    i = 0
    while (i := text.find("$", i)) != -1:
        if text.startswith("$$", i):  # an escaped dollar, passed to the container's shell
            i += 2
            continue
        m = VARIABLE.match(text, i)
        assert m, f"docker-compose.yaml: a bare $ at {text[i : i + 20]!r}"
        found.setdefault(m.group(1) or m.group(3), set()).add(m.group(2) or "")
        i = m.end()
    return found


@pytest.fixture(scope="module")
def config() -> dict:
    """The resolved file with every profile (``--profile gpu --profile llm config``), parsed."""
    result = compose("--profile", "gpu", "--profile", "llm", "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_config_validates_with_the_example_env_file():
    result = compose("config", "--quiet")
    assert result.returncode == 0, result.stderr
    result = compose("config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == BASE_SERVICES | {"airflow-worker-gpu", "llm"}


def test_profiles_gate_the_gpu_worker_and_the_llm_server(config):
    services = config["services"]
    assert set(services) == BASE_SERVICES | {"airflow-worker-gpu", "llm"}
    profiled = {name: svc["profiles"] for name, svc in services.items() if "profiles" in svc}
    # `docker compose up` without profiles starts exactly BASE_SERVICES
    assert profiled == {"airflow-worker-gpu": ["gpu"], "llm": ["llm"]}


def test_airflow_components_and_their_commands(config):
    services = config["services"]
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-init": ["python", "-m", "ml.pipeline.local_services", "init"],
        "airflow-apiserver": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
        "airflow-worker": ["airflow", "celery", "worker", "-q", "default"],
        "airflow-worker-gpu": ["airflow", "celery", "worker", "-q", "gpu"],
    }
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0", name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://airflow:"), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False", name
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/shop-reco/dags", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager"), name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin", name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(f"{STATE}/services/"), name
        assert env["RECO_TRACKING__TRACKING_URI"] == "http://mlflow:5000", name
        assert env["RECO_TRACKING__UI_URL"] == "http://127.0.0.1:5000", name
        assert env["RECO_ORCHESTRATION__GPU_QUEUE"] == "default", name  # .env.example's value
        assert env["RECO_SYNTH__BACKEND"] == "embedded", name
        assert env["HF_HUB_OFFLINE"] == "1", name
        # only the init service reads the admin's password (it writes the login file)
        assert ("AIRFLOW_PASSWORD_ADMIN" in env) == (name == "airflow-init"), name
    assert services["airflow-init"]["environment"]["AIRFLOW_PASSWORD_ADMIN"] == "change-me-admin-password"
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}


def test_api_server_and_workers_have_health_checks(config):
    services = config["services"]
    api = services["airflow-apiserver"]["healthcheck"]["test"]
    assert api[:3] == ["CMD", "python", "-c"] and "http://localhost:8080/api/v2/monitor/health" in api[3]
    for name in ("airflow-worker", "airflow-worker-gpu"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] == "CMD-SHELL" and "inspect ping -d" in check[1], name
        assert services[name]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}, name
    assert "/health" in services["mlflow"]["healthcheck"]["test"][3]


def test_gpu_worker_consumes_the_gpu_queue_on_a_cuda_image(config):
    gpu = config["services"]["airflow-worker-gpu"]
    cpu = config["services"]["airflow-worker"]
    assert gpu["command"][-2:] == ["-q", "gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert gpu["build"]["args"] == {"TORCH_INDEX_URL": "https://download.pytorch.org/whl/cu128"}
    assert gpu["image"] == "shop-reco:gpu" and cpu["image"] == "shop-reco:latest"
    assert "deploy" not in cpu and "args" not in cpu["build"]
    # the build arg exists in the Dockerfile (an undeclared one would be ignored), torch first, CPU by default
    dockerfile = DOCKERFILE.read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile
    assert 'pip install torch==2.13.0 --index-url "${TORCH_INDEX_URL}"' in dockerfile
    assert dockerfile.index("torch==2.13.0") < dockerfile.index("-r requirements.txt")


def test_llm_server_serves_a_mounted_model_offline(config):
    llm = config["services"]["llm"]
    assert llm["image"] == "vllm/vllm-openai:latest"
    assert llm["command"][:2] == ["--model", "/models/llm"]
    assert llm["command"][llm["command"].index("--served-model-name") + 1] == "smollm2-135m-instruct"
    assert llm["volumes"] == [f"{ROOT}/var/models/SmolLM2-135M-Instruct:/models/llm:ro"]
    assert llm["environment"]["HF_HUB_OFFLINE"] == "1"
    assert llm["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    # the synthesis asks the server for the name it serves under
    assert config["services"]["airflow-worker"]["environment"]["RECO_SYNTH__MODEL"] == "smollm2-135m-instruct"


def test_published_ports_bind_localhost_only(config):
    published = {name: svc["ports"] for name, svc in config["services"].items() if "ports" in svc}
    assert published == {
        "airflow-apiserver": ["127.0.0.1:8080:8080/tcp"],
        "mlflow": ["127.0.0.1:5000:5000/tcp"],
        "llm": ["127.0.0.1:8000:8000/tcp"],
    }


def test_mlflow_server_on_postgresql_with_proxied_artifacts(config):
    mlflow = config["services"]["mlflow"]
    cmd = mlflow["command"]
    assert cmd[:2] == ["mlflow", "server"]

    def arg(flag):
        return cmd[cmd.index(flag) + 1]

    assert arg("--host") == "0.0.0.0" and arg("--port") == "5000" and arg("--workers") == "1"
    assert arg("--backend-store-uri") == "postgresql+psycopg2://airflow:change-me-postgres-password@postgres/mlflow"
    assert arg("--artifacts-destination") == f"{STATE}/mlflow-artifacts"
    assert {"mlflow:5000", "localhost:*", "127.0.0.1:*"} <= set(arg("--allowed-hosts").split(","))
    assert mlflow["environment"] == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # its database comes from the init script PostgreSQL runs on its first start
    postgres = config["services"]["postgres"]
    assert f"{ROOT}/docker/postgres-init.sql:/docker-entrypoint-initdb.d/10-mlflow.sql:ro" in postgres["volumes"]
    assert "CREATE DATABASE mlflow" in (ROOT / "docker" / "postgres-init.sql").read_text()


def test_state_volume_is_shared_by_airflow_and_mlflow(config):
    for name in (*AIRFLOW_SERVICES, "mlflow"):
        assert f"reco-state:{STATE}:rw" in config["services"][name]["volumes"], name
    for name in AIRFLOW_SERVICES:
        assert config["services"][name]["environment"]["RECO_PATHS__HOME"] == STATE, name


def test_no_secret_is_written_in_the_compose_file(config):
    text = COMPOSE.read_text()
    example = env_example()
    used = compose_variables(text)
    for name in SECRETS:
        assert example[name] and example[name] not in text, name
        assert used[name] == {":?"}, f"{name} must be required (${{{name}:?...}}) wherever it is used"
    # credentials in URLs and secret-looking keys only ever come from variables
    for password in re.findall(r"://[^:/\s]+:([^@\s]+)@", text):
        assert password.startswith("${"), password
    raw = yaml.safe_load(text)
    for name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD(?!S_FILE)|SECRET|FERNET|API_KEY|TOKEN", key):
                assert str(value).startswith("${"), f"{name}: {key}"
    # ... and reach the services: the resolved file holds .env.example's values
    env = config["services"]["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == example["AIRFLOW_JWT_SECRET"]
    assert env["AIRFLOW__CORE__FERNET_KEY"] == example["AIRFLOW_FERNET_KEY"]
    assert config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == example["POSTGRES_PASSWORD"]


def test_every_variable_is_documented_in_the_env_example():
    used = set(compose_variables(COMPOSE.read_text()))
    defined = env_example()
    assert used == set(defined), f"only in compose: {used - set(defined)}; only in .env.example: {set(defined) - used}"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("# "), f".env.example: no comment above {line!r}"


@pytest.mark.parametrize("secret", SECRETS)
def test_a_missing_secret_stops_compose_with_its_name(tmp_path, secret):
    env_file = tmp_path / "env"
    kept = [line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith(f"{secret}=")]
    env_file.write_text("\n".join(kept) + "\n")
    result = compose("config", "--quiet", env_file=env_file)
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr, result.stderr


def test_env_file_is_git_ignored():
    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored(".env")
    assert not ignored(".env.example")
