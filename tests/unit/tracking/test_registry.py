"""The served model's registry entries: one version per pipeline run, the champion alias and its audit trail."""

import json

import mlflow
import pytest

from ml.tracking import registry
from ml.tracking.runs import configure


@pytest.fixture
def logged(settings):
    """Two logged (not registered) artifacts standing for two nights' refit models."""
    configure(settings)
    uris = []
    for night in ("a", "b", "c"):
        with mlflow.start_run(run_name=night) as run:
            mlflow.log_text(night, "model/MLmodel")
            uris.append(f"runs:/{run.info.run_id}/model")
    return uris


def test_no_champion_before_the_first_promotion(settings):
    assert registry.champion(settings) is None
    assert registry.alias_history(settings) == []


def test_register_is_once_per_pipeline_run_and_carries_its_config(settings, logged):
    config = {"model": "als", "params": {"als": {"factors": 8}}}
    v1 = registry.register(settings, logged[0], "night-1", {registry.CONFIG_TAG: json.dumps(config)})
    again = registry.register(settings, logged[0], "night-1", {registry.CONFIG_TAG: json.dumps(config)})
    v2 = registry.register(settings, logged[1], "night-2", {})
    assert (int(v1.version), int(again.version), int(v2.version)) == (1, 1, 2)
    assert registry.config_of(v1) == config
    assert registry.version_of_run(settings, "night-2").version == v2.version


def test_alias_moves_are_recorded_and_rollback_goes_back(settings, logged):
    for i, uri in enumerate(logged, start=1):
        registry.register(settings, uri, f"night-{i}", {})
    registry.move_champion(settings, 1, why="first", by="tester")
    registry.move_champion(settings, 2, why="better", by="tester")
    assert registry.move_champion(settings, 2, why="retried task", by="tester")["seq"] == 2  # no second event
    registry.move_champion(settings, 3, why="better still", by="tester")
    assert int(registry.champion(settings).version) == 3

    event = registry.rollback(settings, None, why="bad lists", by="ops")
    assert int(registry.champion(settings).version) == 2
    assert event == {**event, "version": 2, "previous": 3, "by": "ops", "why": "rollback: bad lists"}
    registry.rollback(settings, 1, why="audit", by="ops")
    history = registry.alias_history(settings)
    assert [(e["version"], e["previous"]) for e in history] == [(1, None), (2, 1), (3, 2), (2, 3), (1, 2)]
    assert int(registry.champion(settings).version) == 1


def test_rollback_without_an_earlier_champion_is_refused(settings, logged):
    registry.register(settings, logged[0], "night-1", {})
    registry.move_champion(settings, 1, why="first")
    with pytest.raises(ValueError, match="no earlier champion"):
        registry.rollback(settings, None, why="nothing to go back to")


def test_forced_moves_are_marked(settings, logged):
    registry.register(settings, logged[0], "night-1", {})
    assert registry.move_champion(settings, 1, why="by hand", forced=True)["forced"] is True
