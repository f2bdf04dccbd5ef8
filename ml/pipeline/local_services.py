"""``make up`` / ``make down``: the platform's UIs on one machine, each a separate process bound to 127.0.0.1.

Usage: ``python -m ml.pipeline.local_services up|down|status|init``

``up`` starts what is not already running: the Airflow ``api-server`` (UI and REST API), ``scheduler``,
``dag-processor`` and ``triggerer`` (all with one environment, the Makefile's), the MLflow UI (``mlflow
server``, one worker, its job runner switched off) and a static server for the Great Expectations Data Docs.

**Distributed mode is the same command with another environment** (no code changes): with
``AIRFLOW__CORE__EXECUTOR=CeleryExecutor``, a PostgreSQL ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``,
``AIRFLOW__CELERY__BROKER_URL`` (Redis) and ``AIRFLOW__CELERY__RESULT_BACKEND``, ``up`` also starts a Celery
worker for the ``default`` queue and ``orchestration.gpu_queue``; with ``RECO_TRACKING__TRACKING_URI`` set to
this MLflow server and ``RECO_TRACKING__SERVER_STORE_URI`` a PostgreSQL URI, the MLflow server keeps runs and
the registry there and proxies artifacts (``tracking.server_artifacts``) so workers need no path to them.
``init`` prepares such a deployment once: migrates Airflow's database, writes the login, creates the ``gpu``
pool (docker-compose.yaml's init service runs it).
It waits until Airflow and MLflow answer, then prints the URLs and the login. On the bundled data the
components run the live demo shop (``RECO_SOURCE__REPLAY=true``, :mod:`ml.pipeline.replay`): unpausing
``nightly_recommender`` releases one more day of the bundled history per night. ``down`` stops every component
by its own PID, with its process group and its descendants (SIGTERM, then SIGKILL after a timeout). ``status``
lists what runs.

State lives in ``settings.paths.services`` (``var/services``): ``<name>.pid``, ``<name>.log`` and the login
of Airflow's simple auth manager (``simple_auth_manager_passwords.json``, mode 0600): each user's password is
``AIRFLOW_PASSWORD_<USER>`` from the environment when set, else a random one generated once and kept across
restarts.

Ports (environment): ``RECO_UI_AIRFLOW_PORT`` (8080), ``RECO_UI_MLFLOW_PORT`` (5000), ``RECO_UI_DOCS_PORT``
(8081). The MLflow UI URL the Airflow plugin's links open is ``tracking.ui_url``, else
``http://127.0.0.1:<RECO_UI_MLFLOW_PORT>``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ml.config import PROJECT_ROOT, Settings, get_settings

HOST = "127.0.0.1"
DAG_ID = "nightly_recommender"
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"
PORT_ENV = {"airflow": ("RECO_UI_AIRFLOW_PORT", 8080), "mlflow": ("RECO_UI_MLFLOW_PORT", 5000)}
PORT_ENV["docs"] = ("RECO_UI_DOCS_PORT", 8081)
READY_TIMEOUT_S = 240.0  # api-server, scheduler, dag-processor, triggerer and MLflow all start at once on 2 cores
STOP_TIMEOUT_S = 20.0  # SIGTERM to SIGKILL (MLflow's job consumers, when on, take ~10 s to exit)


def port(name: str) -> int:
    """The port of ``airflow``, ``mlflow`` or ``docs`` (environment ``RECO_UI_<NAME>_PORT``)."""
    env, default = PORT_ENV[name]
    return int(os.environ.get(env, default))


def mlflow_ui_url(settings: Settings) -> str:
    """The MLflow UI that links open: ``tracking.ui_url``, else the local UI ``make up`` starts."""
    return (settings.tracking.ui_url or f"http://{HOST}:{port('mlflow')}").rstrip("/")


def docs_url() -> str:
    """The Data Docs' front page on the static server."""
    return f"http://{HOST}:{port('docs')}/index.html"


@dataclass
class Component:
    """One service: its command, where its PID and log go, and how to tell it answers."""

    name: str
    argv: list[str]
    url: str
    ready: Callable[[], bool] | None = None  # None: ``up`` does not wait for it
    env: dict[str, str] = field(default_factory=dict)

    def pid_file(self, services: Path) -> Path:
        return services / f"{self.name}.pid"

    def log_file(self, services: Path) -> Path:
        return services / f"{self.name}.log"


def airflow_env(settings: Settings) -> dict[str, str]:
    """The one environment every Airflow component gets: the Makefile's exports, then the UI's settings.

    Values already in the environment (``make up`` exports the Makefile's) win over these defaults,
    except the API's host, port and execution-API URL, which follow the port ``up`` binds.
    """
    home = settings.paths.home.resolve()
    services = settings.paths.services.resolve()
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # components spawn ``airflow ...`` themselves
    airflow_home = Path(env.get("AIRFLOW_HOME") or home / "airflow")
    defaults = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",  # the default 32 starts 32 idle workers on this 2-core machine
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",  # distributed mode: task processes per Celery worker
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(services / PASSWORDS_FILE),
        "RECO_PATHS__HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    if settings.source.kind == "online-retail":  # the live demo shop: one more bundled day per scheduled night
        defaults["RECO_SOURCE__REPLAY"] = "true"
    for key, value in defaults.items():
        env.setdefault(key, value)
    api_port = port("airflow")
    env["AIRFLOW__API__HOST"] = HOST
    env["AIRFLOW__API__PORT"] = str(api_port)
    # LocalExecutor's task processes report to the execution API of this api-server
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://{HOST}:{api_port}/execution/"
    for name, (var, _) in PORT_ENV.items():
        env[var] = str(port(name))  # the plugin in the api-server builds its links from these
    if not settings.tracking.ui_url:
        env["RECO_TRACKING__UI_URL"] = mlflow_ui_url(settings)
    return env


def components(settings: Settings) -> list[Component]:
    """Every service, in start order (the slow api-server first)."""
    bin_dir = Path(sys.executable).parent
    airflow = str(bin_dir / "airflow")
    env = airflow_env(settings)
    api = f"http://{HOST}:{port('airflow')}"
    mlflow_url = f"http://{HOST}:{port('mlflow')}"
    artifacts = (settings.paths.mlflow / "artifacts").resolve()
    docs = (settings.paths.quality / "data_docs").resolve()
    # MLflow 3.17's server starts a job runner with six huey consumers (GenAI scorers, ~1.9 GB RSS here)
    # unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION is false; nothing in this platform submits server jobs
    mlflow_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_argv = [str(bin_dir / "mlflow"), "server", "--workers", "1", "--host", HOST, "--port", str(port("mlflow"))]
    mlflow_argv += mlflow_store_args(settings, artifacts)
    celery = []
    if env["AIRFLOW__CORE__EXECUTOR"].endswith("CeleryExecutor"):
        queues = ",".join(dict.fromkeys(["default", settings.orchestration.gpu_queue]))
        # no log server (it listens on every interface); on one machine the api-server reads the log files
        argv = [airflow, "celery", "worker", "--queues", queues, "--skip-serve-logs"]
        log = settings.paths.services / "celery-worker.log"
        celery = [
            Component("celery-worker", argv, f"queues {queues}", lambda: _logged(log, r"celery@\S+ ready\."), env)
        ]
    return [
        Component(
            "api-server",
            [airflow, "api-server", "--host", HOST, "--port", str(port("airflow")), "--workers", "1"],
            api,
            lambda: _answers(f"{api}/api/v2/monitor/health"),
            env,
        ),
        # no log servers: they listen on every interface (0.0.0.0:8793/8794), and on one machine the api-server
        # reads the task and trigger logs from their files
        Component("scheduler", [airflow, "scheduler", "--skip-serve-logs"], "", None, env),
        Component("dag-processor", [airflow, "dag-processor"], "", None, env),
        Component("triggerer", [airflow, "triggerer", "--skip-serve-logs"], "", None, env),
        *celery,
        Component("mlflow", mlflow_argv, mlflow_url, lambda: _answers(f"{mlflow_url}/health"), mlflow_env),
        Component(
            "docs",
            [sys.executable, "-m", "http.server", "--bind", HOST, "--directory", str(docs), str(port("docs"))],
            docs_url(),
            lambda: _answers(f"http://{HOST}:{port('docs')}/"),
            env,
        ),
    ]


def mlflow_store_args(settings: Settings, artifacts: Path) -> list[str]:
    """The MLflow server's store: ``tracking.server_store_uri`` (else the local SQLite file) and its artifacts.

    With a tracking server (``tracking.tracking_uri`` set) clients log through it, so it proxies the artifact
    store (``--artifacts-destination``: ``tracking.server_artifacts`` or ``artifacts``). Without one the
    pipeline writes the SQLite store and the artifact folder itself and the server only shows them.
    """
    store = settings.tracking.server_store_uri or f"sqlite:///{settings.paths.mlflow.resolve() / 'mlflow.db'}"
    if settings.tracking.tracking_uri:
        return [
            "--backend-store-uri",
            store,
            "--artifacts-destination",
            settings.tracking.server_artifacts or str(artifacts),
        ]
    return ["--backend-store-uri", store, "--default-artifact-root", artifacts.as_uri()]


# ---------------------------------------------------------------- processes


def _psutil():
    import psutil  # an Airflow dependency; imported here so ``--help`` stays fast

    return psutil


def running_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file`` if that process still runs (and is the one started then, not a reused PID)."""
    psutil = _psutil()
    try:
        pid = int(pid_file.read_text().strip())
        proc = psutil.Process(pid)
        # a PID reused by a later process was created after the PID file was written
        if proc.create_time() > pid_file.stat().st_mtime + 2 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return pid
    except (OSError, ValueError, psutil.Error):
        return None


def _family(pid: int) -> list:
    """The process, its descendants and every member of its process group (task processes leave the group)."""
    psutil = _psutil()
    found = {}
    try:
        leader = psutil.Process(pid)
        found[pid] = leader
        for child in leader.children(recursive=True):
            found[child.pid] = child
    except psutil.Error:
        pass
    for proc in psutil.process_iter():
        try:
            if proc.pid not in found and os.getpgid(proc.pid) == pid:
                found[proc.pid] = proc
        except (OSError, psutil.Error):
            continue
    return list(found.values())


def _signal(procs: list, sig: int) -> None:
    psutil = _psutil()
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def stop(pids: dict[str, int], timeout: float = STOP_TIMEOUT_S) -> list[int]:
    """SIGTERM each component with its family (in the order given), SIGKILL what is left after ``timeout``.

    Returns:
        The PIDs that had to be killed.
    """
    psutil = _psutil()
    families = {name: _family(pid) for name, pid in pids.items()}
    everyone = {p.pid: p for fam in families.values() for p in fam}
    for name, pid in pids.items():
        try:
            os.killpg(pid, signal.SIGTERM)  # the group leader and its group (start_new_session=True)
        except OSError:
            pass
        _signal(families[name], signal.SIGTERM)  # and descendants that moved to their own group
    _, alive = psutil.wait_procs(list(everyone.values()), timeout=timeout)
    alive = [p for p in alive if _alive(p)]
    killed = [p.pid for p in alive]
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    _signal(alive, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    return killed


def _alive(proc) -> bool:
    """Whether ``proc`` still runs (a zombie does not)."""
    psutil = _psutil()
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _port_free(number: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, number))
            return True
        except OSError:
            return False


def _answers(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _logged(path: Path, pattern: str) -> bool:
    """Whether a line of ``path``'s end matches ``pattern`` (Celery's worker logs ``celery@<host> ready.``)."""
    return any(re.search(pattern, line) for line in _tail(path, 200).splitlines())


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- login and Airflow set-up


def ensure_login(env: dict[str, str]) -> dict[str, str]:
    """Each configured user's password (mode 0600 file): ``AIRFLOW_PASSWORD_<USER>`` when set, else the stored one,
    else a random one generated once.

    Airflow's simple auth manager reads the same file (``simple_auth_manager_passwords_file``).
    """
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    users = [u.split(":")[0].strip() for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",") if u.strip()]
    passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
    given = {u: env[f"AIRFLOW_PASSWORD_{u.upper()}"] for u in users if env.get(f"AIRFLOW_PASSWORD_{u.upper()}")}
    missing = [u for u in users if u not in passwords and u not in given]
    if missing or not path.exists() or any(passwords.get(u) != p for u, p in given.items()):
        passwords.update(given)
        passwords.update({u: secrets.token_urlsafe(16) for u in missing})
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(passwords) + "\n")
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return {u: passwords[u] for u in users}


def ensure_airflow_db(env: dict[str, str], services: Path, always: bool = False) -> None:
    """Migrate Airflow's metadata DB: a SQLite file that does not exist yet, a database server every time
    (``airflow db migrate`` is idempotent), or any when ``always``.

    Raises:
        RuntimeError: the migration failed; the message holds the end of its log.
    """
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    sqlite = conn.startswith("sqlite:///")
    if sqlite and Path(conn.removeprefix("sqlite:///")).exists() and not always:
        return
    if sqlite:
        Path(conn.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    services.mkdir(parents=True, exist_ok=True)
    log = services / "migrate.log"
    print(f"migrating the Airflow DB (log: {log}) ...", flush=True)
    with open(log, "w") as fh:
        airflow = str(Path(sys.executable).with_name("airflow"))
        done = subprocess.run([airflow, "db", "migrate"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed (exit {done.returncode}); the end of {log}:\n{_tail(log)}")


def api_token(base: str, username: str, password: str) -> str:
    """A JWT from the simple auth manager (``POST /auth/token``)."""
    body = json.dumps({"username": username, "password": password}).encode()
    req = urllib.request.Request(f"{base}/auth/token", body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["access_token"]


GPU_POOL_DESCRIPTION = "Slots of GPU work (sequence models, synthesis): how many share a GPU"


def ensure_gpu_pool(base: str, token: str, settings: Settings) -> None:
    """The pool GPU tasks run in (``orchestration.gpu_pool``; a run triggered from the UI needs it)."""
    orchestration = settings.orchestration
    pool = {"name": orchestration.gpu_pool, "slots": orchestration.gpu_pool_slots, "description": GPU_POOL_DESCRIPTION}
    body = json.dumps(pool).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    req = urllib.request.Request(f"{base}/api/v2/pools", body, headers, method="POST")
    try:
        urllib.request.urlopen(req, timeout=30).close()
    except urllib.error.HTTPError as exc:
        if exc.code != 409:  # 409: it exists already
            raise


# ---------------------------------------------------------------- commands


def up(settings: Settings) -> int:
    """Start every component not yet running, wait until they answer, print URLs and login."""
    services = settings.paths.services
    services.mkdir(parents=True, exist_ok=True)
    comps = components(settings)
    env = comps[0].env
    logins = ensure_login(env)
    (settings.paths.quality / "data_docs").mkdir(parents=True, exist_ok=True)
    settings.paths.mlflow.joinpath("artifacts").mkdir(parents=True, exist_ok=True)
    try:
        ensure_airflow_db(env, services)
    except RuntimeError as exc:
        print(exc)
        return 1

    started: dict[str, int] = {}
    for comp in comps:
        pid = running_pid(comp.pid_file(services))
        if pid is not None:
            print(f"{comp.name:14s} already running (pid {pid})")
            continue
        bound = _port_of(comp)
        if bound is not None and not _port_free(bound):
            print(f"{comp.name}: port {bound} is taken by another process; stop it or set {_port_var(comp)}")
            stop(started)
            _remove_pid_files(services, started)
            return 1
        with open(comp.log_file(services), "ab") as log:
            proc = subprocess.Popen(
                comp.argv,
                env=comp.env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: ``down`` signals the whole group
            )
        comp.pid_file(services).write_text(f"{proc.pid}\n")
        started[comp.name] = proc.pid
        print(f"{comp.name:14s} started (pid {proc.pid}, log {comp.log_file(services)})", flush=True)

    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = [c for c in comps if c.ready is not None]
    while waiting:
        for comp in list(waiting):
            if comp.ready():
                waiting.remove(comp)
            elif running_pid(comp.pid_file(services)) is None:
                print(f"{comp.name} exited; the end of {comp.log_file(services)}:\n{_tail(comp.log_file(services))}")
                stop(started)
                _remove_pid_files(services, started)
                return 1
        if waiting and time.monotonic() > deadline:
            names = ", ".join(c.name for c in waiting)
            print(f"{names} did not answer within {READY_TIMEOUT_S:.0f} s; see the logs in {services}")
            stop(started)
            _remove_pid_files(services, started)
            return 1
        if waiting:
            time.sleep(1.0)

    api = f"http://{HOST}:{port('airflow')}"
    user, password = next(iter(logins.items()))
    try:
        ensure_gpu_pool(api, api_token(api, user, password), settings)
    except (OSError, urllib.error.URLError, KeyError, ValueError) as exc:
        print(f"warning: could not log in to Airflow or create the gpu pool ({exc})")
    print()
    print(f"Airflow     {api}  (login {user} / {password}; stored in {env[_PW_VAR]})")
    print(f"  the DAG   {api}/dags/{DAG_ID}  (Trigger opens the run form)")
    print(f"MLflow      {mlflow_ui_url(settings)}")
    print(f"Data Docs   {docs_url()}")
    if env.get("RECO_SOURCE__REPLAY", "").lower() == "true":
        print("live demo shop: unpause nightly_recommender and each night replays one more day of the bundled")
        print(
            f"  history (anchor in {settings.paths.home / 'replay' / 'anchor.json'}; RECO_SOURCE__REPLAY=false to stop)"
        )
    print(f"stop with `make down` (or python -m ml.pipeline.local_services down); logs in {services}")
    return 0


_PW_VAR = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"


def _port_of(comp: Component) -> int | None:
    return {"api-server": port("airflow"), "mlflow": port("mlflow"), "docs": port("docs")}.get(comp.name)


def _port_var(comp: Component) -> str:
    return {"api-server": PORT_ENV["airflow"][0], "mlflow": PORT_ENV["mlflow"][0]}.get(comp.name, PORT_ENV["docs"][0])


def _remove_pid_files(services: Path, names) -> None:
    for name in names:
        (services / f"{name}.pid").unlink(missing_ok=True)


STOP_ORDER = ["scheduler", "triggerer", "dag-processor", "celery-worker", "api-server", "mlflow", "docs"]


def down(settings: Settings) -> int:
    """Stop every component by its PID (scheduler first, so it starts nothing new) and remove the PID files."""
    services = settings.paths.services
    pids = {}
    for name in STOP_ORDER:
        pid_file = services / f"{name}.pid"
        pid = running_pid(pid_file) if pid_file.exists() else None
        if pid is not None:
            pids[name] = pid
        elif pid_file.exists():
            print(f"{name:14s} not running (stale PID file removed)")
            pid_file.unlink()
    if not pids:
        print("nothing runs")
        return 0
    killed = stop(pids)
    _remove_pid_files(services, pids)
    for name, pid in pids.items():
        print(f"{name:14s} stopped (pid {pid})")
    if killed:
        print(f"killed after {STOP_TIMEOUT_S:.0f} s: pids {killed}")
    return 0


def status(settings: Settings) -> int:
    """List each component: its PID and URL, or that it is stopped. Exit 0 when everything runs, else 3."""
    services = settings.paths.services
    all_up = True
    for comp in components(settings):
        pid = running_pid(comp.pid_file(services))
        all_up &= pid is not None
        state = f"running (pid {pid})" if pid is not None else "stopped"
        print(f"{comp.name:14s} {state:22s} {comp.url}")
    return 0 if all_up else 3


def init(settings: Settings) -> int:
    """Prepare a deployment once (docker-compose's init service): migrate the DB, write the login, the GPU pool."""
    env = airflow_env(settings)
    ensure_airflow_db(env, settings.paths.services, always=True)
    logins = ensure_login(env)
    orchestration = settings.orchestration
    airflow = str(Path(sys.executable).with_name("airflow"))
    pool = [airflow, "pools", "set", orchestration.gpu_pool, str(orchestration.gpu_pool_slots), GPU_POOL_DESCRIPTION]
    subprocess.run(pool, env=env, check=True, capture_output=True)
    print(
        f"Airflow DB migrated; users {', '.join(logins)} (passwords in {env[_PW_VAR]}); pool {orchestration.gpu_pool}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "init"])
    args = parser.parse_args(argv)
    settings = get_settings()
    return {"up": up, "down": down, "status": status, "init": init}[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
