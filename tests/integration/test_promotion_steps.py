"""Promotion and serving are safe to rerun and fail closed: on two replayed nights of the bundled data.

Night 1 trains popularity and re-buy (the first champion); night 2 adds ALS (a clearly better
configuration, promoted). Then the failure paths: a failed gate, a crash in the refit, a model that
fails its smoke check: none registers a version or moves the alias, and the champion keeps serving.
"""

import mlflow
import pandas as pd
import pytest

from ml.pipeline import promotion_steps as ps
from ml.pipeline.publish import SmokeCheckError, full_data, smoke_check
from ml.serve.batch import read_batch
from ml.tracking import registry
from ml.tracking.runs import configure
from tests.support.nightly import prepare_night, publish_night

NIGHT_1, NIGHT_2, NIGHT_3 = "2010-06-16", "2010-06-23", "2010-06-30"


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    from ml.config import Settings

    home = tmp_path_factory.mktemp("home")
    settings = Settings().with_overrides({"paths": {"home": str(home)}, "eval": {"bootstrap_resamples": 500}})
    first = prepare_night(settings, NIGHT_1, ["pop", "rebuy"], "night-1")
    one = publish_night(settings, NIGHT_1, first)
    second = prepare_night(settings, NIGHT_2, ["pop", "rebuy", "als"], "night-2")
    two = publish_night(settings, NIGHT_2, second)
    return settings, {"one": one, "two": two, "second": second}


def _versions(settings):
    configure(settings)
    return mlflow.tracking.MlflowClient().search_model_versions(f"name = '{settings.tracking.registered_model}'")


def test_a_first_champion_then_a_promotion_with_its_interval(nights):
    settings, r = nights
    one, two = r["one"], r["two"]
    assert one["decision"]["action"] == "first_champion" and one["registered"]["version"] == 1
    assert two["decision"]["action"] == "promote" and two["decision"]["challenger"] == "als"
    primary = two["decision"]["primary"]
    assert primary["delta"] > 0 and primary["ci_low"] > 0 and primary["a"] == "champion v1"
    assert int(registry.champion(settings).version) == 2
    version = registry.champion(settings)
    assert version.tags["decision"] == "promote" and "interval is above zero" in version.tags["reasons"]
    assert registry.config_of(version)["model"] == "als"


def test_rerunning_register_and_recommend_replaces_and_never_duplicates(nights):
    settings, r = nights
    two = r["two"]
    before = (
        len(_versions(settings)),
        len(registry.alias_history(settings)),
        len(read_batch(settings.paths.serving, NIGHT_2)),
    )
    again = ps.register_step(
        settings, NIGHT_2, two["decision"], two["refitted"], two["smoke"], "night-2", r["second"]["parent"]
    )
    served = ps.recommend_step(settings, NIGHT_2, again)
    after = (
        len(_versions(settings)),
        len(registry.alias_history(settings)),
        len(read_batch(settings.paths.serving, NIGHT_2)),
    )
    assert again["version"] == 2 and after == before
    assert served["rows"] == before[2]


def test_the_lists_come_from_the_champion_version_in_both_views(nights):
    settings, _ = nights
    lists = read_batch(settings.paths.serving, NIGHT_2)
    assert set(lists["model_version"]) == {2} and set(lists["view"]) == {"repeat", "discover"}
    assert (lists.groupby(["user_id", "view"]).size() <= settings.serve.top_k).all()
    assert lists["title"].str.len().gt(0).mean() > 0.95
    night_1 = read_batch(settings.paths.serving, NIGHT_1)
    assert set(night_1["model_version"]) == {1}


def test_a_failed_gate_keeps_the_champion_serving(nights):
    settings, r = nights
    failed = {**r["second"]["gated"], "interactions": {"success": False}}
    third = {**r["second"], "key": "night-3-failed-gate"}
    result = publish_night(settings, NIGHT_2, third, gated=failed)
    assert result["decision"]["action"] == "hold" and "gate failed: data:interactions" in result["decision"]["reasons"]
    assert result["refitted"]["skipped"] and result["registered"]["moved"] is False
    assert int(registry.champion(settings).version) == 2 and len(_versions(settings)) == 2
    assert result["served"]["version"] == 2  # the old champion still writes the day's lists


def test_a_crash_in_the_refit_registers_nothing(nights):
    settings, r = nights
    decision = {**r["two"]["decision"], "serve": {"model": "no_such_model", "params": {}}}
    with pytest.raises(ValueError, match="unknown model"):
        ps.refit_step(settings, NIGHT_2, decision, r["second"]["parent"], "night-crash")
    assert len(_versions(settings)) == 2 and int(registry.champion(settings).version) == 2


class _Silent:
    """A model that answers nothing: what a broken refit looks like from outside."""

    def predict(self, frame, params=None):
        return pd.DataFrame(columns=["user_id", "rank", "item_id", "title", "score", "source"])


def test_the_smoke_check_refuses_a_model_that_answers_nothing_and_passes_the_champion(nights):
    settings, _ = nights
    from ml.data.prepare import read_lake_catalog, read_lake_interactions

    events = read_lake_interactions(settings.paths.lake, NIGHT_2)
    data = full_data(events, read_lake_catalog(settings.paths.lake), NIGHT_2, settings.split.window_days)
    with pytest.raises(SmokeCheckError, match="no list for 52 of 52 customers"):
        smoke_check(_Silent(), data, 10)
    configure(settings)
    champion = mlflow.pyfunc.load_model(f"models:/{settings.tracking.registered_model}@champion")
    assert smoke_check(champion, data, 10)["checked_users"] == 52


def test_rollback_restores_the_first_version(nights):
    settings, _ = nights
    event = registry.rollback(settings, None, why="test", by="tester")
    assert event["version"] == 1 and int(registry.champion(settings).version) == 1
    registry.move_champion(settings, 2, why="back", by="tester")


def test_a_worse_challenger_is_refused_and_the_champion_configuration_refreshed(nights):
    settings, _ = nights
    third = prepare_night(settings, NIGHT_3, ["pop", "rebuy"], "night-3")  # ALS not trained tonight
    result = publish_night(settings, NIGHT_3, third)
    decision = result["decision"]
    assert decision["action"] == "keep_champion" and decision["challenger"] == "pop"
    assert "fitted again on today's split" in decision["reasons"][0]  # the champion's ALS, with its own settings
    assert decision["primary"]["ci_high"] < 0 and "the challenger is worse" in decision["reasons"][-1]
    assert decision["serve"]["model"] == "als" and result["registered"]["moved"]
    refreshed = registry.champion(settings)
    assert refreshed.tags["as_of"] == NIGHT_3 and registry.config_of(refreshed)["model"] == "als"


def test_a_generator_outage_trains_on_real_data_only_and_says_so(nights):
    settings, r = nights
    from mlflow.tracking import MlflowClient

    from ml.pipeline import steps

    offline = settings.with_overrides(
        {
            "synth": {
                "backend": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m",
                "max_retries": 0,
                "timeout_s": 2,
            }
        }
    )
    synth = steps.synthesize_step(offline, NIGHT_2)
    assert synth["status"] == "unavailable" and "127.0.0.1:9" in synth["reason"]
    parent = r["second"]["parent"]
    gate = steps.gate_synthetic_step(offline, NIGHT_2, synth, parent)
    assert gate == {"passed": False, "path": None, "failures": [f"synthesis unavailable: {synth['reason']}"]}
    trained = steps.train_task_step(offline, NIGHT_2, "als", ["als"], parent, "night-2", gate)
    assert [t["model"] for t in trained] == ["als"]  # no real+synthetic variant
    configure(settings)
    assert MlflowClient().get_run(parent).data.tags["synthetic_status"] == "unavailable"


def test_a_synthetic_configuration_refits_only_with_gated_synthetic_data(nights):
    settings, r = nights
    from ml.pipeline.promotion import model_config

    decision = {**r["two"]["decision"], "serve": model_config("als_synth", settings)}
    ungated = {"passed": False, "path": None, "failures": ["synthetic gate failed"]}
    with pytest.raises(ValueError, match="needs today's gated synthetic interactions"):
        ps.refit_step(settings, NIGHT_2, decision, r["second"]["parent"], "night-ungated", synthetic_gate=ungated)
    assert all(v.tags.get("pipeline_key") != "night-ungated" for v in _versions(settings))
