"""What ``make up`` starts and with which stores, decided from the environment alone (nothing is started)."""

from __future__ import annotations

import json
import stat

import pytest

from ml.config import get_settings
from ml.pipeline import local_services as ls

CELERY = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow@db.internal/airflow",
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RECO_PATHS__HOME", str(tmp_path))
    for var in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        monkeypatch.delenv(var, raising=False)
    for var in ("RECO_TRACKING__TRACKING_URI", "RECO_TRACKING__SERVER_STORE_URI", "RECO_ORCHESTRATION__GPU_QUEUE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def names(settings) -> list[str]:
    return [c.name for c in ls.components(settings)]


def test_one_machine_runs_no_celery_worker_and_mlflow_shows_the_local_sqlite_store(home):
    settings = get_settings()
    assert "celery-worker" not in names(settings)
    mlflow = next(c for c in ls.components(settings) if c.name == "mlflow")
    store = mlflow.argv[mlflow.argv.index("--backend-store-uri") + 1]
    assert store == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    assert mlflow.argv[mlflow.argv.index("--default-artifact-root") + 1] == (home / "mlflow" / "artifacts").as_uri()
    assert "--artifacts-destination" not in mlflow.argv


def test_the_celery_executor_adds_a_worker_for_the_default_and_the_gpu_queue(home, monkeypatch):
    for key, value in CELERY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECO_ORCHESTRATION__GPU_QUEUE", "gpu")
    settings = get_settings()
    assert names(settings)[:5] == ["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"]
    worker = next(c for c in ls.components(settings) if c.name == "celery-worker")
    assert worker.argv[-4:] == ["worker", "--queues", "default,gpu", "--skip-serve-logs"]
    assert worker.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == CELERY["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_one_queue_when_gpu_work_stays_in_the_default_queue(home, monkeypatch):
    for key, value in CELERY.items():
        monkeypatch.setenv(key, value)
    worker = next(c for c in ls.components(get_settings()) if c.name == "celery-worker")
    assert worker.argv[worker.argv.index("--queues") + 1] == "default"


def test_a_tracking_server_keeps_its_store_in_postgres_and_proxies_artifacts(home, monkeypatch):
    monkeypatch.setenv("RECO_TRACKING__TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("RECO_TRACKING__SERVER_STORE_URI", "postgresql+psycopg2://mlflow@db.internal/mlflow")
    monkeypatch.setenv("RECO_TRACKING__SERVER_ARTIFACTS", "s3://shop-artifacts/mlflow")
    args = ls.mlflow_store_args(get_settings(), home / "unused")
    assert args == [
        "--backend-store-uri",
        "postgresql+psycopg2://mlflow@db.internal/mlflow",
        "--artifacts-destination",
        "s3://shop-artifacts/mlflow",
    ]


def test_login_takes_the_password_from_the_environment_and_generates_the_others(tmp_path):
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "pw.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW_PASSWORD_ADMIN": "from-the-environment",
    }
    first = ls.ensure_login(env)
    assert first["admin"] == "from-the-environment" and len(first["viewer"]) >= 16
    assert json.loads((tmp_path / "pw.json").read_text()) == first
    assert stat.S_IMODE((tmp_path / "pw.json").stat().st_mode) == 0o600
    env["AIRFLOW_PASSWORD_ADMIN"] = "rotated"
    second = ls.ensure_login(env)
    assert second == {"admin": "rotated", "viewer": first["viewer"]}  # the generated one is kept
    del env["AIRFLOW_PASSWORD_ADMIN"]
    assert ls.ensure_login(env) == second  # without the variable, the stored password stays


def test_a_failed_migration_says_so_with_the_end_of_its_log(tmp_path):
    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody@127.0.0.1:1/none",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "PATH": "/usr/bin:/bin",
    }
    with pytest.raises(RuntimeError, match="airflow db migrate failed"):
        ls.ensure_airflow_db(env, tmp_path / "services")
