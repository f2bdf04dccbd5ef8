"""Distributed mode for real: the nightly DAG on a Celery worker, with PostgreSQL, Redis and an MLflow server.

The same ``python -m ml.pipeline.local_services up`` as ``make up``, configured by environment only:
Airflow's CeleryExecutor with its metadata and Celery results in PostgreSQL (``reco_airflow_test``), the
Redis broker (database 15 of the server on 127.0.0.1:6379), and the MLflow tracking server on PostgreSQL
(``reco_mlflow_test``) proxying a file artifact store. Every component is a real process bound to
127.0.0.1. GPU work goes to the ``gpu`` queue (``RECO_ORCHESTRATION__GPU_QUEUE``), which the one worker
here also consumes, as a worker on a GPU machine would. A run of the nightly DAG on the tiny slice (cheap
models, synthesis and backtest off) is triggered through the REST API and must succeed; then the
champion must be in the MLflow server's PostgreSQL store and the day's recommendations written. The test
creates its databases and drops them afterwards.

PostgreSQL (trust auth for ``postgres`` on 127.0.0.1) and Redis must run: ``make test`` starts them
(``tests/support/services.sh``). ``RECO_TEST_PG`` / ``RECO_TEST_REDIS`` point the test at other servers.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.support.local_stack import free_ports, services_cli, stack_env

pytestmark = pytest.mark.slow
PG = os.environ.get("RECO_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("RECO_TEST_REDIS", "redis://127.0.0.1:6379") + "/15"
AIRFLOW_DB, MLFLOW_DB = "reco_airflow_test", "reco_mlflow_test"
DAG_ID, AS_OF = "nightly_recommender", "2010-06-23"
CONF = {"as_of": AS_OF, "models": ["pop", "rebuy"], "synthesis": False, "backtest": False}
GPU_TASKS = {"synthesize", "train_bert4rec"}
RUN_BUDGET_S = 900


def _pg(database: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(f"{PG}/{database}", connect_timeout=10)
    conn.autocommit = True
    return conn


def _query(database: str, sql: str) -> list[tuple]:
    with _pg(database) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _recreate_databases(drop_only: bool = False) -> None:
    conn = _pg()
    try:
        with conn.cursor() as cur:
            for name in (AIRFLOW_DB, MLFLOW_DB):
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                if not drop_only:
                    cur.execute(f"CREATE DATABASE {name}")
    finally:
        conn.close()


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()


class Cluster:
    """The environment of a distributed deployment on this machine, and the REST calls the test makes."""

    def __init__(self, home: Path):
        self.home = home
        self.ports = free_ports()
        pg_host = PG.removeprefix("postgresql://")
        self.password = secrets.token_urlsafe(16)
        self.artifacts = home / "mlflow-server-artifacts"
        self.env = stack_env(
            home,
            self.ports,
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg2://{pg_host}/{AIRFLOW_DB}",
            AIRFLOW__CELERY__BROKER_URL=REDIS,
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+postgresql+psycopg2://{pg_host}/{AIRFLOW_DB}",
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
            AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",  # only the triggered run, no scheduled night
            AIRFLOW_PASSWORD_ADMIN=self.password,
            RECO_ORCHESTRATION__GPU_QUEUE="gpu",
            RECO_TRACKING__TRACKING_URI=f"http://127.0.0.1:{self.ports['mlflow']}",
            RECO_TRACKING__SERVER_STORE_URI=f"postgresql+psycopg2://{pg_host}/{MLFLOW_DB}",
            RECO_TRACKING__SERVER_ARTIFACTS=str(self.artifacts),
            RECO_SOURCE__REPLAY="false",
            RECO_EVAL__BOOTSTRAP_RESAMPLES="200",
        )
        self.up = None
        self.run_id = None
        self.run_state = None

    def cli(self, command: str, timeout: float = 420) -> subprocess.CompletedProcess:
        return services_cli(self.env, command, timeout)

    def rest(self, method: str, path: str, body: dict | None = None) -> dict:
        if not hasattr(self, "_token"):
            login = json.dumps({"username": "admin", "password": self.password}).encode()
            req = urllib.request.Request(self._url("/auth/token"), login, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                self._token = json.loads(resp.read())["access_token"]
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self._url(path), data, headers, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['airflow']}{path}"

    def log(self, name: str, lines: int = 40) -> str:
        path = self.home / "services" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        _recreate_databases()
        _flush_redis()
    except Exception as exc:  # noqa: BLE001 - any connection error: say which server is missing
        pytest.fail(f"PostgreSQL ({PG}) and Redis ({REDIS}) must run for this test (make test starts them): {exc}")
    cluster = Cluster(tmp_path_factory.mktemp("cluster_home"))
    cluster.up = cluster.cli("up")
    try:
        yield cluster
    finally:
        cluster.cli("down", timeout=120)
        _recreate_databases(drop_only=True)
        _flush_redis()


@pytest.fixture(scope="module")
def triggered(cluster):
    """The nightly DAG triggered through the REST API, waited for until it ends."""
    assert cluster.up.returncode == 0, (cluster.up.stdout + cluster.up.stderr)[-4000:]
    deadline = time.monotonic() + 120
    while True:  # the dag-processor parses the DAG folder after start-up
        try:
            cluster.rest("GET", f"/api/v2/dags/{DAG_ID}")
            break
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(3)
    cluster.rest("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    started = time.monotonic()
    run = cluster.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": CONF})
    cluster.run_id = run["dag_run_id"]
    state = run["state"]
    while state not in ("success", "failed") and time.monotonic() - started < RUN_BUDGET_S:
        time.sleep(5)
        state = cluster.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{cluster.run_id}")["state"]
    cluster.run_state, cluster.run_seconds = state, time.monotonic() - started
    print(f"distributed run {cluster.run_id}: {state} after {cluster.run_seconds:.0f} s")
    return cluster


def test_the_worker_consumes_the_default_and_the_gpu_queue(cluster):
    assert cluster.up.returncode == 0, (cluster.up.stdout + cluster.up.stderr)[-4000:]
    assert "celery-worker  started" in cluster.up.stdout
    banner = cluster.log("celery-worker", 200)
    assert ".> default " in banner and ".> gpu " in banner
    assert REDIS in banner and AIRFLOW_DB in banner  # the broker and the result store


def test_a_run_triggered_through_the_rest_api_succeeds_on_celery(triggered):
    if triggered.run_state != "success":
        states = triggered.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{triggered.run_id}/taskInstances")
        failed = [(t["task_id"], t["state"]) for t in states["task_instances"] if t["state"] != "success"]
        pytest.fail(f"run {triggered.run_state}: {failed}\nworker log:\n{triggered.log('celery-worker')}")


def test_every_task_went_through_celery_and_gpu_work_through_the_gpu_queue(triggered):
    rows = _query(
        AIRFLOW_DB,
        f"SELECT task_id, state, queue, external_executor_id FROM task_instance WHERE run_id = '{triggered.run_id}'",
    )
    assert len(rows) == 19, rows
    assert {state for _, state, _, _ in rows} == {"success"}
    assert {task for task, _, queue, _ in rows if queue == "gpu"} == GPU_TASKS
    assert {queue for task, _, queue, _ in rows if task not in GPU_TASKS} == {"default"}
    # each task instance is a Celery task whose result the worker stored in PostgreSQL
    celery_ids = {ext for _, _, _, ext in rows}
    deadline = time.monotonic() + 60  # the worker stores the last task's result after the run ended
    while True:
        stored = dict(_query(AIRFLOW_DB, "SELECT task_id, status FROM celery_taskmeta"))
        statuses = {stored.get(ext) for ext in celery_ids}
        if statuses == {"SUCCESS"} or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert statuses == {"SUCCESS"}, statuses


def test_the_champion_is_registered_in_the_mlflow_servers_postgres_store(triggered):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=triggered.env["RECO_TRACKING__TRACKING_URI"])
    champion = client.get_model_version_by_alias("shop-recommender", "champion")
    assert int(champion.version) == 1 and champion.tags["decision"] == "first_champion"
    aliases = _query(MLFLOW_DB, "SELECT name, alias, version FROM registered_model_aliases")
    assert aliases == [("shop-recommender", "champion", 1)]
    # the workers logged artifacts through the server, which keeps them in its own store
    assert champion.source.startswith(("models:/", "mlflow-artifacts:/")), champion.source
    assert any(p.name == "MLmodel" for p in triggered.artifacts.rglob("MLmodel"))
    assert not (triggered.home / "mlflow" / "mlflow.db").exists()  # no local SQLite store was used


def test_the_days_recommendations_were_written(triggered):
    lists = pd.read_parquet(triggered.home / "serving" / f"date={AS_OF}" / "recommendations.parquet")
    assert len(lists) > 0 and lists["user_id"].nunique() > 10
