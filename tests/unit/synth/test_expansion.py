"""The synthesis stage on real rows with the embedded model: valid, grounded, leak-free, reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.pipeline.training import synthetic_events
from ml.synth.candidates import CandidateIndex
from ml.synth.expansion import PriorCache, continuation, plan_users, prior_store, propose, propose_by_likelihood
from ml.synth.pipeline import FILES, synthesize
from ml.synth.quality import SYNTHETIC_COLUMNS, eligible_items, gate_synthetic
from tests.support.synth import INJECTION, bundled_sample, sample_settings, shared_encoder, shared_generator

EXPANSION = {"strategies": {"nightly": "expansion"}}  # these tests read the expansion's synthetic interactions


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One synthesis run on real sparse users (12 of them, 2 items enriched)."""
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path_factory.mktemp("synth"), max_users=12, enrich_max_items=2, seed=5, **EXPANSION)
    return (
        data,
        catalog,
        settings,
        synthesize(data, catalog, settings, backend=shared_generator(), encoder=shared_encoder()),
    )


def test_prior_scores_persist_across_runs_and_are_keyed_by_model_and_prompt(tmp_path):
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path, max_users=4)
    tasks, _ = plan_users(data, catalog, CandidateIndex(data.train, catalog, None), settings)
    gen = shared_generator()
    store = prior_store(settings, gen)
    assert store.parent == tmp_path / "cache" / "synth_prior" and "next_purchase_prior-v2" in store.name
    first, _, info = propose(tasks, gen, settings)
    titles = {c.title for t in tasks for c in t.candidates}
    n_titles = len({continuation(t) for t in titles})
    assert info == {"prior_cached": 0, "prior_computed": n_titles} and store.exists()
    again, _, info = propose(tasks, gen, settings)
    assert info == {"prior_cached": n_titles, "prior_computed": 0}
    pd.testing.assert_frame_equal(first, again)
    cached = PriorCache(gen, store)
    some = tasks[0].candidates[:3]
    np.testing.assert_allclose(
        cached.get(some), gen.score(cached.prefix, [continuation(c.title) for c in some]), rtol=0.02
    )
    assert cached.computed == 0
    assert prior_store(settings, gen.with_options()) == store  # same weights, dtype and device


def test_likelihood_choice_only_returns_the_users_candidates(tmp_path):
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path, max_users=6)
    tasks, info = plan_users(data, catalog, CandidateIndex(data.train, catalog, None), settings)
    gen = shared_generator()
    frame = propose_by_likelihood(tasks, gen, 3, PriorCache(gen))
    assert info["users_planned"] == len(tasks) == 6
    for task in tasks:
        rows = frame[frame[C.USER] == task.user_id]
        assert set(rows[C.ITEM]) <= {c.item_id for c in task.candidates}
        assert rows[C.RANK].tolist() == [1, 2, 3] and rows[C.SCORE].is_monotonic_decreasing
        assert not set(rows[C.ITEM]) & set(task.history)


def test_every_accepted_interaction_is_a_real_item_inside_the_training_window(run):
    data, catalog, _, result = run
    syn = result.interactions
    assert list(syn.columns) == SYNTHETIC_COLUMNS and len(syn) > 0
    assert set(syn[C.ITEM]) <= eligible_items(data, catalog)
    last = data.train.groupby(C.USER)[C.TIMESTAMP].max()
    assert (syn[C.TIMESTAMP] < data.training_cut).all()
    assert (syn[C.TIMESTAMP] > syn[C.USER].map(last)).all()
    assert (syn[C.SOURCE] == "synthetic").all() and (syn["generator"] == "embedded:SmolLM2-135M-Instruct").all()
    assert (syn["prompt_version"] == "next_purchase_score@1").all() and (syn["seed"] == 5).all()
    assert (syn[C.WEIGHT] == 1.0).all() and not syn["context_only"].any()
    assert syn.groupby(C.USER).size().max() <= 3


def test_report_counts_match_the_files_written(run):
    """Every proposal is in exactly one of the two frames, and the report counts what they hold."""
    report, result = run[3].report, run[3]
    counts = report["interactions"]
    assert counts["accepted"] == len(result.interactions) > 0
    assert counts["generated"] == len(result.interactions) + len(result.rejected)
    assert counts["rejected"] == {r: int((result.rejected["reject_reason"] == r).sum()) for r in counts["rejected"]}
    assert counts["validity_rate"] == 1.0  # scoring only ever names a candidate
    items = report["items"]
    assert items["attempted"] == 2 and items["ok"] == int((result.items["status"] == "ok").sum())
    assert report["distribution"]["rows"] == len(result.interactions) and report["users"]["users_planned"] == 12


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path, max_users=5, seed=5, **EXPANSION)

    def once(s):
        return synthesize(data, catalog, s, backend=shared_generator(), encoder=shared_encoder()).interactions

    first = once(settings)
    pd.testing.assert_frame_equal(first, once(settings))
    other = once(settings.with_overrides({"synth": {"seed": 6}}))
    assert not other[[C.USER, C.TIMESTAMP]].equals(first[[C.USER, C.TIMESTAMP]])


def test_gated_result_joins_training_without_changing_vocabulary_or_evaluation(run, tmp_path):
    data, catalog, settings, result = run
    assert gate_synthetic(result, data, catalog, settings)["success"]
    extra = synthetic_events(data, result.interactions, weight=0.5)
    assert len(extra) == len(result.interactions) and (extra.n_users, extra.n_items) == (data.n_users, data.n_items)
    assert set(extra.frame["weight"]) == {1.0}  # each row's own weight (synth.weight), not the fallback
    assert not extra.frame["context_only"].any()  # expansion rows are training targets
    paths = result.save(tmp_path)
    assert set(paths) == set(FILES) and all(
        pd.read_parquet(paths[k]) is not None for k in ("interactions", "items", "rejected")
    )


def test_hostile_titles_do_not_change_what_is_produced_beyond_the_schema(tmp_path):
    data, catalog = bundled_sample()
    hostile = catalog.copy()
    top = hostile.sort_values(C.POPULARITY, ascending=False)[C.ITEM].head(40)
    hostile.loc[hostile[C.ITEM].isin(top), C.TITLE] = INJECTION
    settings = sample_settings(tmp_path, max_users=6, enrich_max_items=2, seed=3, **EXPANSION)
    result = synthesize(data, hostile, settings, backend=shared_generator(), use_text_neighbours=False)
    assert set(result.interactions[C.ITEM]) <= eligible_items(data, hostile)
    assert gate_synthetic(result, data, hostile, settings)["success"]
    items = result.items
    assert set(items["status"]) <= {"ok", "unparseable", "category_contradicts_title", "description_unrelated"}
    assert items.loc[items["status"] != "ok", ["category", "description"]].isna().all().all()
