"""`python -m ml synth`: writes the four outputs and the report; exit 3 if the gate refuses, 4 if the server is down."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest

from ml import columns as C
from ml.cli import main
from ml.data.lake import stage_partitioned
from ml.data.prepare import CATALOG_FILE, INTERACTIONS
from tests.support.synth import bundled_sample, model_folder

pytestmark = pytest.mark.slow


@pytest.fixture
def lake(tmp_path, monkeypatch):
    """A small lake of real rows and an isolated home using the cached embedded model."""
    data, catalog = bundled_sample()
    model = model_folder()
    events = pd.concat([data.train, data.valid, data.test], ignore_index=True)
    folder = tmp_path / "lake"
    stage_partitioned(events, folder, INTERACTIONS)
    (folder / CATALOG_FILE).parent.mkdir(parents=True)
    catalog.to_parquet(folder / CATALOG_FILE)
    monkeypatch.setenv("RECO_PATHS__HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECO_SYNTH__MODEL_DIR", str(model))
    monkeypatch.setenv("RECO_SYNTH__TORCH_THREADS", "1")
    monkeypatch.setenv("RECO_SYNTH__ENRICH_MAX_ITEMS", "0")
    return folder


def test_synth_command_writes_outputs_and_a_report_that_counts_them(lake, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "synth",
                "--lake",
                str(lake),
                "--out",
                str(out),
                "--max-users",
                "4",
                "--seed",
                "3",
                "--enrich-max-items",
                "1",
            ]
        )
        == 0
    )
    for name in (
        "synthetic_interactions.parquet",
        "items_enriched.parquet",
        "synthetic_rejected.parquet",
        "synth_report.json",
    ):
        assert (out / name).exists()
    report = json.loads((out / "synth_report.json").read_text())
    counts = report["interactions"]
    assert report["gate"]["success"]
    syn = pd.read_parquet(out / "synthetic_interactions.parquet")
    rejected = pd.read_parquet(out / "synthetic_rejected.parquet")
    assert counts["generated"] == len(syn) + len(rejected)
    lineage = [C.USER, C.ITEM, C.TIMESTAMP, C.SOURCE, "generator", "prompt_version", "seed", C.SCORE]
    assert list(syn.columns) == [*lineage, C.WEIGHT, "context_only"]
    assert (syn["seed"] == 3).all() and len(syn) == counts["accepted"]
    # the default strategy: pseudo-history before each customer's first order, context only, no language model
    assert report["strategy"] == "prior" and syn["context_only"].all()
    assert (syn["generator"] == "reverse-basket-transitions").all() and (syn["prompt_version"] == "none").all()
    assert '"gate": true' in capsys.readouterr().out


def test_gate_refusal_exits_3_and_still_writes_the_report(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("RECO_SYNTH__MAX_KL_POPULARITY", "0")
    out = tmp_path / "out"
    assert main(["synth", "--lake", str(lake), "--out", str(out), "--max-users", "8"]) == 3
    report = json.loads((out / "synth_report.json").read_text())
    assert not report["gate"]["success"] and any("popularity" in f for f in report["gate"]["failures"])


def test_unreachable_server_exits_4(lake, tmp_path, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RECO_SYNTH__BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("RECO_SYNTH__MODEL", "served")
    monkeypatch.setenv("RECO_SYNTH__MAX_RETRIES", "1")
    monkeypatch.setenv("RECO_SYNTH__BACKOFF_S", "0.01")
    assert (
        main(
            [
                "synth",
                "--lake",
                str(lake),
                "--backend",
                "openai",
                "--strategy",
                "expansion",
                "--out",
                str(tmp_path / "o"),
                "--max-users",
                "2",
                "--enrich-max-items",
                "0",
            ]
        )
        == 4
    )
    assert "unavailable after 2 attempt(s)" in capsys.readouterr().err


def test_backfill_enriches_the_catalog_chunk_by_chunk_and_resumes(tmp_path):
    from ml.pipeline.enrich_command import backfill
    from ml.synth.enrichment import cache_path
    from tests.support.synth import sample_settings, shared_generator

    _, catalog = bundled_sample()
    five = catalog.sort_values(C.ITEM).head(5)
    settings = sample_settings(tmp_path)
    lines = []
    first = backfill(five, shared_generator(), settings, chunk=2, max_minutes=0, progress=lines.append)
    assert (first["chunks"], first["enriched"], first["remaining"], first["from_cache_before"]) == (1, 2, 3, 0)
    assert len(pd.read_parquet(cache_path(settings))) == 2  # the chunk is cached as soon as it is done
    rest = backfill(five, shared_generator(), settings, chunk=2, progress=lines.append)
    assert (rest["chunks"], rest["enriched"], rest["remaining"], rest["from_cache_before"]) == (2, 3, 0, 2)
    assert rest["ok"] + sum(rest["rejected"].values()) == 3 and len(lines) == 3 and "0 left" in lines[-1]
    again = backfill(five, shared_generator(), settings, chunk=2)
    assert (again["chunks"], again["enriched"], again["remaining"]) == (0, 0, 0)  # a finished backfill costs nothing


def test_backfill_command_exits_5_while_products_remain(lake, capsys):
    assert main(["enrich-backfill", "--lake", str(lake), "--chunk", "1", "--max-minutes", "0"]) == 5
    doc = json.loads(capsys.readouterr().out)
    assert doc["enriched"] == 1 and doc["remaining"] > 0


def test_an_unknown_strategy_is_refused_before_any_data_is_read(tmp_path, capsys):
    missing = tmp_path / "no-lake"  # never read: the strategy is checked first
    assert main(["synth", "--lake", str(missing), "--out", str(tmp_path / "o"), "--strategy", "random_prior"]) == 2
    assert "synth.strategies.nightly = 'random_prior'" in capsys.readouterr().err
