"""``make up`` / ``make down`` for real: every UI starts on free ports in a temporary home, answers, and stops.

Runs ``python -m ml.pipeline.local_services`` as ``make up`` does (Airflow's api-server, scheduler,
dag-processor and triggerer, the MLflow UI, the Data Docs server), logs in to Airflow with the generated
password, waits for the dag-processor to parse the nightly DAG, then stops everything and checks that no
process it started (children included) is left.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support.local_stack import free_ports, services_cli, stack_env

pytestmark = pytest.mark.slow
COMPONENTS = ["api-server", "scheduler", "dag-processor", "triggerer", "mlflow", "docs"]
PARSE_BUDGET_S = 90


class Stack:
    def __init__(self, home: Path):
        self.home = home
        self.services = home / "services"
        self.ports = free_ports()
        self.env = stack_env(home, self.ports)

    def cli(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return services_cli(self.env, command, timeout)

    def pids(self) -> dict[str, int]:
        return {n: int((self.services / f"{n}.pid").read_text()) for n in COMPONENTS}

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['airflow']}{path}"

    def token(self) -> str:
        password = json.loads((self.services / "simple_auth_manager_passwords.json").read_text())["admin"]
        body = json.dumps({"username": "admin", "password": password}).encode()
        req = urllib.request.Request(self.api("/auth/token"), body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 201
            return json.loads(resp.read())["access_token"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("ui_home"))
    started = time.perf_counter()
    stack.up = stack.cli("up")
    stack.up_seconds = time.perf_counter() - started
    try:
        yield stack
    finally:
        stack.cli("down", timeout=120)  # a no-op once the last test stopped everything


def test_up_starts_every_component_and_prints_the_login(stack):
    out = stack.up.stdout + stack.up.stderr
    assert stack.up.returncode == 0, out[-4000:]
    password = json.loads((stack.services / "simple_auth_manager_passwords.json").read_text())["admin"]
    assert len(password) >= 16 and f"admin / {password}" in stack.up.stdout
    mode = stat.S_IMODE((stack.services / "simple_auth_manager_passwords.json").stat().st_mode)
    assert mode == 0o600
    for port in stack.ports.values():
        assert f"http://127.0.0.1:{port}" in stack.up.stdout
    for name, pid in stack.pids().items():
        assert psutil.pid_exists(pid), name
        assert (stack.services / f"{name}.log").exists()
    print(f"up took {stack.up_seconds:.1f} s")


def test_login_and_the_nightly_dag_is_listed(stack):
    token = stack.token()
    deadline = time.monotonic() + PARSE_BUDGET_S
    dag_ids: list[str] = []
    while time.monotonic() < deadline:
        req = urllib.request.Request(stack.api("/api/v2/dags"), headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            dag_ids = [d["dag_id"] for d in json.loads(resp.read())["dags"]]
        if "nightly_recommender" in dag_ids:
            break
        time.sleep(3)
    assert "nightly_recommender" in dag_ids, dag_ids


def test_the_api_refuses_without_a_login(stack):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(stack.api("/api/v2/dags"), timeout=30)
    assert err.value.code == 401


def test_mlflow_ui_and_data_docs_answer(stack):
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports['mlflow']}/health", timeout=30) as resp:
        assert resp.read().strip() == b"OK"
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports['mlflow']}/", timeout=30) as resp:
        assert b"MLflow" in resp.read()
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports['docs']}/", timeout=30) as resp:
        assert resp.status == 200
    # the server's job runner (six huey consumers) is off: the server and its one uvicorn worker
    family = psutil.Process(stack.pids()["mlflow"]).children(recursive=True)
    assert not any("huey" in " ".join(p.cmdline()) for p in family)


def test_up_again_starts_no_duplicates_and_keeps_the_password(stack):
    before, password = stack.pids(), (stack.services / "simple_auth_manager_passwords.json").read_text()
    again = stack.cli("up", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already running") == len(COMPONENTS)
    assert stack.pids() == before
    assert (stack.services / "simple_auth_manager_passwords.json").read_text() == password


def test_down_stops_every_process_and_removes_the_pid_files(stack):
    pids = stack.pids()
    family = set(pids.values())
    for pid in pids.values():
        family |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
    started = time.perf_counter()
    down = stack.cli("down", timeout=120)
    print(f"down took {time.perf_counter() - started:.1f} s")
    assert down.returncode == 0, down.stdout + down.stderr
    alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert not list(stack.services.glob("*.pid"))
    assert stack.cli("status").returncode == 3


def test_stop_kills_what_ignores_sigterm_with_its_children(tmp_path):
    """``down``'s escalation: a component (and a child that left its group) ignoring SIGTERM is SIGKILLed."""
    from ml.pipeline.local_services import stop

    script = "trap '' TERM; setsid sh -c \"trap '' TERM; sleep 120\" & sleep 120"
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 10
    while not psutil.Process(proc.pid).children(recursive=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(family) >= 2
    killed = stop({"stubborn": proc.pid}, timeout=1.0)
    proc.wait(timeout=10)
    assert proc.pid in killed
    assert not [pid for pid in family[1:] if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
