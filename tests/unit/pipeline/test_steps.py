"""Pipeline steps as the DAG calls them: gates stop the run, reruns replace, the summary reads well."""

import json

import pandas as pd
import pytest

from ml import columns as C
from ml.data.lake import publish_partitions, read_partitioned, stage_partitioned, staging_dir
from ml.errors import GateFailedError
from ml.pipeline import steps
from ml.pipeline.airflow_params import PARAM_SETTINGS, as_of_date, selected_models, settings_from_params
from ml.pipeline.report import summary_text
from tests.support.real_rows import II_ROWS, ii_frame, v1_frame, write_online_retail


@pytest.fixture
def small_settings(settings, tmp_path):
    folder = write_online_retail(
        tmp_path / "src", ii_frame(*II_ROWS), v1_frame("cross_file_overlap", "kept_v1", "guest_zero", "kept_later")
    )
    return settings.with_overrides({"paths": {"bundled_data": str(folder)}})


def test_ingest_clean_and_gate_pass_on_real_rows(small_settings):
    ingested = steps.ingest_step(small_settings, "2011-12-09")
    cleaned = steps.clean_step(small_settings, "2011-12-09")
    assert cleaned["rows_in"] == ingested["rows"] == cleaned["rows_kept"] + cleaned["rows_quarantined"]
    gated = steps.gate_step(small_settings, "2011-12-09")
    assert gated["interactions"]["success"] and gated["catalog"]["success"]


def test_gate_stops_the_run_on_corrupted_interactions(small_settings):
    steps.ingest_step(small_settings, "2011-12-09")
    steps.clean_step(small_settings, "2011-12-09")
    lake = small_settings.paths.lake / "interactions"
    bad = read_partitioned(lake)
    bad.loc[0, C.PRICE] = -1.0
    bad.loc[1, C.USER] = None
    with staging_dir(small_settings.paths.lake) as staging:
        publish_partitions(stage_partitioned(bad, staging, "interactions"), lake)
    with pytest.raises(GateFailedError) as err:
        steps.gate_step(small_settings, "2011-12-09")
    message = str(err.value)
    assert "price" in message and "user_id" in message


def test_gate_fails_when_data_is_stale_for_the_as_of_date(small_settings):
    steps.ingest_step(small_settings, "2011-12-09")
    steps.clean_step(small_settings, "2011-12-09")
    with pytest.raises(GateFailedError, match="timestamp"):
        steps.gate_step(small_settings, "2012-03-01")  # newest interaction is three months old


def test_rerunning_clean_for_a_date_replaces_its_output(small_settings):
    steps.ingest_step(small_settings, "2011-12-09")
    first = steps.clean_step(small_settings, "2011-12-09")
    second = steps.clean_step(small_settings, "2011-12-09")
    assert first == second
    assert len(read_partitioned(small_settings.paths.lake / "interactions")) == second["rows_kept"]
    report = json.loads((small_settings.paths.lake / "reports" / "2011-12-09.json").read_text())
    assert report["rows_kept"] == second["rows_kept"]


def test_summary_names_counts_metrics_and_places():
    text = summary_text(
        {
            "clean": {
                "rows_in": 10,
                "rows_kept": 7,
                "rows_quarantined": 3,
                "quarantine_by_reason": {"guest_checkout": 3},
            },
            "evaluate": {
                "models": {"als": {"repeat/ndcg@10": 0.3, "discover/ndcg@10": 0.1}},
                "metrics_path": "/x/metrics.json",
            },
            "where": {"MLflow UI": "make mlflow-ui"},
        }
    )
    assert "kept 7" in text and "guest_checkout 3" in text and "0.3000" in text and "make mlflow-ui" in text


def test_run_params_choose_as_of_models_and_settings():
    assert as_of_date({"as_of": "2011-06-30"}, logical_date=pd.Timestamp("2026-01-01")) == "2011-06-30"
    assert as_of_date({}, logical_date=pd.Timestamp("2011-12-09T02:00")) == "2011-12-09"
    with pytest.raises(ValueError):
        as_of_date({})
    assert selected_models({"models": ["als"]}) == ["als"]
    with pytest.raises(ValueError, match="unknown models"):
        selected_models({"models": ["gpt"]})
    s = settings_from_params(
        {"test_days": 60, "bert_max_epochs": 3, "bert_item_text": "none", "bert_max_minutes": None}
    )
    assert s.split.test_days == 60 and s.models.bert4rec.max_epochs == 3 and s.models.bert4rec.item_text == "none"
    assert s.models.bert4rec.max_minutes == 60.0  # an empty form field leaves the setting as configured


def test_every_form_param_maps_onto_an_existing_setting():
    from ml.config import Settings

    for param, dotted in PARAM_SETTINGS.items():
        node = Settings().model_dump()
        for part in dotted.split("."):
            assert part in node, f"{param} -> {dotted}"
            node = node[part]
