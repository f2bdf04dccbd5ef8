"""The integration tests' one shared tiny-slice pipeline: two replayed nights of the nightly DAG in real Airflow.

Night 1 (2010-06-23) trains popularity and re-buy, synthesis off, with a 4-week backtest: it makes
the first champion. Night 2 (2010-06-30) adds ALS and synthesis (a small budget): the challenger meets
the champion. Every test that needs a real DAG run reads these two runs instead of running its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

NIGHTS = (
    ("2010-06-23", {"models": ["pop", "rebuy"], "synthesis": False, "backtest": True}),
    ("2010-06-30", {"models": ["pop", "rebuy", "als"], "synthesis": True, "backtest": False}),
)


@dataclass
class Nights:
    home: Path
    env: dict
    procs: list  # one CompletedProcess per night

    @property
    def days(self) -> list[str]:
        return [day for day, _ in NIGHTS]

    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"


@pytest.fixture(scope="session")
def nightly_runs(airflow_db, tmp_path_factory) -> Nights:
    home = tmp_path_factory.mktemp("nightly_home")
    env = {
        **os.environ,
        "RECO_PATHS__HOME": str(home),
        # a small synthesis budget keeps night 2 short; interaction synthesis still runs end to end
        "RECO_SYNTH__MAX_USERS": "40",
        "RECO_SYNTH__ENRICH_MAX_ITEMS": "20",
        # a 4-week backtest of the cheap models (the default replays 12 weeks with the text control too)
        "RECO_EVAL__BACKTEST__SPAN_DAYS": "28",
        "RECO_EVAL__BACKTEST__MODELS": '["pop", "rebuy", "als", "newest", "fusion"]',
        "RECO_EVAL__BOOTSTRAP_RESAMPLES": "500",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "pools", "set", "gpu", "1", "gpu"], env=env, check=True, capture_output=True)
    procs = []
    for day, conf in NIGHTS:
        proc = subprocess.run(
            [airflow, "dags", "test", "nightly_recommender", day, "-c", json.dumps({"as_of": day, **conf})],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        procs.append(proc)
        if proc.returncode != 0:
            break
    return Nights(home, env, procs)
