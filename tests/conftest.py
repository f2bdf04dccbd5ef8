"""Test-wide set-up: an isolated Airflow home and platform home, migrated once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# one home per pytest-xdist worker (make test runs two): each has its own Airflow metadata DB
TEST_HOME = ROOT / "var" / "test" / os.environ.get("PYTEST_XDIST_WORKER", "main")

# Airflow reads its configuration at import: set it before any test imports airflow.
os.environ["AIRFLOW_HOME"] = str(TEST_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{TEST_HOME / 'airflow' / 'airflow.db'}"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("RECO_SETTINGS_FILE", None)


@pytest.fixture
def settings(tmp_path):
    """Default settings with all local state under a fresh temporary folder."""
    from ml.config import Settings

    return Settings().with_overrides({"paths": {"home": str(tmp_path / "home")}})


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (SQLite) for DAG tests."""
    (TEST_HOME / "airflow").mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return TEST_HOME / "airflow"
