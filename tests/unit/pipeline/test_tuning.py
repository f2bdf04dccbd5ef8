"""The validation-only search: the test period never reaches it, every trial is kept and tracked."""

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ml import columns as C
from ml.config import Settings
from ml.pipeline.tuning import ValidationNight, tune_als
from tests.support.synth import bundled_events

SPLIT = {"validation_start": "2011-09-01", "test_start": "2011-10-01"}


@pytest.fixture(scope="module")
def events():
    return bundled_events()[0]


def search_settings(tmp_path) -> Settings:
    return Settings().with_overrides({"paths": {"home": str(tmp_path / "home")}, "split": SPLIT})


def test_the_validation_night_never_reads_the_test_period(events, tmp_path):
    night = ValidationNight(events, search_settings(tmp_path))
    cut = night.cut
    assert (night.validation_start, night.test_start) == (pd.Timestamp("2011-09-01"), pd.Timestamp("2011-10-01"))
    latest = max(int(cut.history.frame["ts"].max()), int(cut.target.frame["ts"].max()))
    assert latest < pd.Timestamp("2011-10-01").value
    # customers first seen in the test period do not even exist for the search
    test_only = set(events.loc[events[C.TIMESTAMP] >= "2011-10-01", C.USER]) - set(
        events.loc[events[C.TIMESTAMP] < "2011-10-01", C.USER]
    )
    assert test_only and not test_only & set(cut.user_ids)


def test_changing_the_test_period_changes_no_trial(events, tmp_path):
    settings = search_settings(tmp_path)
    first = tune_als(events, settings, 2, tmp_path / "a", track=False)
    later = events[events[C.TIMESTAMP] >= "2011-10-01"].assign(**{C.ITEM: "other"})  # scramble the test period
    scrambled = pd.concat([events[events[C.TIMESTAMP] < "2011-10-01"], later])
    second = tune_als(scrambled, settings, 2, tmp_path / "b", track=False)
    assert [t["value"] for t in first["trials"]] == [t["value"] for t in second["trials"]]


def test_the_first_trial_is_the_configured_setting_and_the_best_is_kept(events, tmp_path):
    settings = search_settings(tmp_path)
    doc = tune_als(events, settings, 3, tmp_path / "out", track=True)
    als = settings.models.als
    assert doc["current"]["params"]["alpha"] == als.alpha and doc["current"]["params"]["window_days"] == als.window_days
    assert doc["best"]["value"] == max(t["value"] for t in doc["trials"])
    assert json.loads((tmp_path / "out" / "tuning.json").read_text())["best"] == doc["best"]
    mlflow.set_tracking_uri(settings.mlflow_uri)
    runs = MlflowClient().search_runs([mlflow.get_experiment_by_name(settings.tracking.experiment).experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == doc["mlflow_run_id"]]
    assert len(children) == 3
    assert {r.data.metrics["value"] for r in children} == {t["value"] for t in doc["trials"]}
