"""``python -m ml.pipeline.local_services`` run as ``make up`` runs it, in a temporary home on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def stack_env(home: Path, ports: dict[str, int], **overrides: str) -> dict[str, str]:
    """This process's environment for a stack in ``home`` on ``ports`` (airflow, mlflow, docs), then
    ``overrides``; the developer's own tracking URI and login settings are left out."""
    env = {
        **os.environ,
        "RECO_PATHS__HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "RECO_UI_AIRFLOW_PORT": str(ports["airflow"]),
        "RECO_UI_MLFLOW_PORT": str(ports["mlflow"]),
        "RECO_UI_DOCS_PORT": str(ports["docs"]),
    }
    for key in ("RECO_TRACKING__UI_URL", "RECO_TRACKING__TRACKING_URI", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"):
        env.pop(key, None)
    env.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", None)
    return {**env, **overrides}


def free_ports() -> dict[str, int]:
    """One free port for each of the stack's servers."""
    return {"airflow": free_port(), "mlflow": free_port(), "docs": free_port()}


def services_cli(env: dict[str, str], command: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -m ml.pipeline.local_services COMMAND`` with ``env``, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ml.pipeline.local_services", command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
