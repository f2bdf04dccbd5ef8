"""The online model server for real: `mlflow models serve` on the champion alias answers known customers,
unknown customers with a basket, and unknown customers without one.

The served model is the tiny hand-made one (``u0`` bought i0 and i1, ``u1`` i0 and i2, ``u2`` i0, i1, i3,
in that order): Rebuy serves "repeat", Popularity (distinct buyers 3, 2, 1, 1) "discover".
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.config import Settings
from ml.data.interactions import Interactions
from ml.models.popularity import Popularity
from ml.models.rebuy import Rebuy
from ml.serve.batch import batch_recommendations
from ml.serve.online import champion_uri, invocations_url, serve_command, serve_env
from ml.tracking.pyfunc import SOURCE_FALLBACK, SOURCE_MODEL, log_recommender
from tests.support.ports import free_port

pytestmark = pytest.mark.slow
STARTUP_S = 60
NAME = "test-shop-recommender"


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    """A fresh platform home whose MLflow store holds the tiny served model, version 1 = champion."""
    import mlflow
    from mlflow import MlflowClient

    home = tmp_path_factory.mktemp("home")
    settings = Settings().with_overrides(
        {"paths": {"home": str(home)}, "serve": {"port": free_port()}, "tracking": {"registered_model": NAME}}
    )
    settings.paths.mlflow.mkdir(parents=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    exp = mlflow.create_experiment("serving", artifact_location=(settings.paths.mlflow / "artifacts").as_uri())
    history = Interactions.from_arrays([0, 0, 1, 1, 2, 2, 2], [0, 1, 0, 2, 0, 1, 3], np.arange(7), n_users=3, n_items=4)
    Rebuy().fit(history).save(home / "rebuy")
    Popularity().fit(history).save(home / "pop")
    catalog = pd.DataFrame({C.ITEM: ["i0", "i1", "i2", "i3"], C.TITLE: ["Mug", "Teapot", "Tray", "Jug"]})
    with mlflow.start_run(experiment_id=exp):
        info = log_recommender(
            {"repeat": home / "rebuy", "discover": home / "pop"},
            np.array(["u0", "u1", "u2"]),
            np.array(["i0", "i1", "i2", "i3"]),
            history,
            catalog,
            home / "scratch",
            registered_name=NAME,
        )
    MlflowClient().set_registered_model_alias(NAME, settings.tracking.champion_alias, info.registered_model_version)
    return settings


@pytest.fixture(scope="module")
def server(settings, tmp_path_factory):
    """The champion served by `mlflow models serve` (its own process group, killed at the end)."""
    log = (tmp_path_factory.mktemp("server") / "serve.log").open("w+")
    proc = subprocess.Popen(
        serve_command(settings), env=serve_env(settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = invocations_url(settings).rsplit("/", 1)[0]
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"mlflow models serve exited with {proc.returncode}: {log.read()[-3000:]}")
            try:
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve not answering /ping after {STARTUP_S} s")
            time.sleep(0.5)
        yield invocations_url(settings)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI runs uvicorn as a child: stop the whole group
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def ask(url: str, body: dict) -> httpx.Response:
    return httpx.post(url, json=body, timeout=30)


def by_customer(predictions: list[dict]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for row in predictions:
        out.setdefault(row["user_id"], []).append((row["item_id"], row["source"]))
    return out


def test_serve_command_targets_the_champion(settings):
    cmd = serve_command(settings)
    assert cmd[1:] == [
        "models", "serve", "-m", f"models:/{NAME}@champion", "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(settings.serve.port),
    ]  # fmt: skip
    assert serve_env(settings, {"PATH": "/usr/bin"})["MLFLOW_TRACKING_URI"] == settings.mlflow_uri


def test_server_answers_known_new_and_anonymous_customers(server):
    body = {
        "dataframe_records": [{"user_id": "u2"}, {"user_id": "walk-in", "items": ["i2", "zzz"]}, {"user_id": "ghost"}],
        "params": {"n": 2, "view": "repeat"},
    }
    answer = ask(server, body)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert list(rows[0]) == ["user_id", "rank", "item_id", "title", "score", "source"]
    assert by_customer(rows) == {
        "u2": [("i3", SOURCE_MODEL), ("i1", SOURCE_MODEL)],  # own items, the later purchase first
        "walk-in": [("i2", SOURCE_MODEL), ("i0", SOURCE_MODEL)],  # their basket's i2, then by popularity
        "ghost": [("i0", SOURCE_FALLBACK), ("i1", SOURCE_FALLBACK)],
    }
    assert [r["rank"] for r in rows] == [1, 2] * 3 and rows[0]["title"] == "Jug"
    assert rows[4]["score"] == pytest.approx(1.0) and rows[5]["score"] == pytest.approx(2 / 3)

    body = {
        "dataframe_records": [{"user_id": "u0"}, {"user_id": "walk-in", "items": ["i2"]}, {"user_id": "ghost"}],
        "params": {"n": 5, "view": "discover"},
    }
    rows = ask(server, body).json()["predictions"]
    assert by_customer(rows) == {
        "u0": [("i2", SOURCE_MODEL), ("i3", SOURCE_MODEL)],  # only two items u0 lacks
        "walk-in": [("i0", SOURCE_MODEL), ("i1", SOURCE_MODEL), ("i3", SOURCE_MODEL)],  # i2 is in the basket
        "ghost": [(i, SOURCE_FALLBACK) for i in ("i0", "i1", "i2", "i3")],
    }


def test_server_defaults_and_bad_requests(server):
    rows = ask(server, {"dataframe_records": [{"user_id": "u1"}]}).json()["predictions"]
    assert [r["item_id"] for r in rows] == ["i1", "i3"]  # discover by default; 10 asked, 2 left
    answer = ask(server, {"dataframe_records": [{"user_id": "u1"}], "params": {"view": "buy-again"}})
    assert answer.status_code == 400
    assert "view must be one of ['discover', 'repeat']" in answer.json()["message"]


def test_batch_lists_from_the_loaded_champion(settings):
    import mlflow

    model = mlflow.pyfunc.load_model(champion_uri(settings))
    out = batch_recommendations(model, ["u0"], n=2)
    assert out.groupby("view")[C.ITEM].apply(list).to_dict() == {"repeat": ["i1", "i0"], "discover": ["i2", "i3"]}
