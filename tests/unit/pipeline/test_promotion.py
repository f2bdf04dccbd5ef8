"""The promotion rule: the challenger is chosen on validation and takes the alias only with a measured win."""

import json

import numpy as np
import pandas as pd
import pytest

from ml.config import Settings
from ml.pipeline import promotion
from ml.pipeline.layout import RunFolder
from ml.pipeline.promotion import FIRST, HOLD, KEEP, PROMOTE


def _rows(model, values, history):
    n = len(values)
    return pd.DataFrame(
        {
            "model": model,
            "view": "discover",
            "user_id": [f"u{i}" for i in range(n)],
            "history_items": history,
            "ndcg@10": values,
            "recall@10": values,
        }
    )


@pytest.fixture
def quick():
    return Settings().with_overrides({"eval": {"bootstrap_resamples": 500}})


def test_challenger_is_the_best_on_validation_fusion_scored_by_its_best_weights(tmp_path):
    run = RunFolder(tmp_path)
    fits = {
        "pop": {"valid": {"discover": {"ndcg@10": 0.02}}},
        "als": {"valid": {"discover": {"ndcg@10": 0.10}}},
        "fusion": {"weight_search": {"discover": [{"ndcg@10": 0.08}, {"ndcg@10": 0.12}]}},
    }
    for key, doc in fits.items():
        run.fit_record(key).parent.mkdir(parents=True)
        run.fit_record(key).write_text(json.dumps(doc))
    challenger, scores = promotion.choose_challenger(run, ["pop", "als", "fusion"], "discover")
    assert challenger == "fusion" and scores == {"pop": 0.02, "als": 0.10, "fusion": 0.12}
    with pytest.raises(ValueError, match="no candidate"):
        promotion.choose_challenger(run, ["pop"], "repeat")


def test_comparison_table_pairs_the_same_users_by_segment(quick):
    # 6 users; the champion hits users 0-2, the challenger every user: delta 0.5 overall;
    # sparse (history <= 3 items) = users 0, 1, 4 -> champion 2/3, challenger 1: delta 1/3
    champion = _rows("als", [1, 1, 1, 0, 0, 0], [1, 2, 5, 9, 3, 20])
    challenger = _rows("fusion", [1, 1, 1, 1, 1, 1], [1, 2, 5, 9, 3, 20]).iloc[::-1]  # order does not matter
    table = promotion.comparison_table(champion, challenger, quick, "champion v1", "fusion")
    cell = {(r["segment"], r["metric"]): r for r in table}
    assert cell["overall", "ndcg@10"]["delta"] == pytest.approx(0.5)
    assert cell["overall", "ndcg@10"]["n_users"] == 6
    assert cell["sparse", "ndcg@10"]["delta"] == pytest.approx(1 / 3)
    assert cell["rest", "ndcg@10"]["delta"] == pytest.approx(2 / 3)
    assert {r["view"] for r in table} == {"discover"}  # no repeat rows given


def _decide(settings, table, champion=1, gates=None, challenger_cfg=None, champion_cfg=None):
    challenger_cfg = challenger_cfg or {"model": "fusion", "params": {"x": 1}}
    champion_cfg = champion_cfg or {"model": "als", "params": {"als": {"factors": 8}}}
    return promotion.decide(
        settings,
        challenger_cfg["model"],
        challenger_cfg,
        {"fusion": 0.12},
        gates or {"data:interactions": True},
        champion,
        champion_cfg if champion else None,
        table,
    )


def _table(settings, champion_values, challenger_values):
    history = [5] * len(champion_values)
    return promotion.comparison_table(
        _rows("a", champion_values, history), _rows("b", challenger_values, history), settings, "champion", "b"
    )


def test_a_clear_win_is_promoted(quick):
    table = _table(quick, [0.0] * 30 + [1.0] * 10, [1.0] * 40)  # +0.75, every resample above zero
    d = _decide(quick, table)
    assert d.action == PROMOTE and d.serve["model"] == "fusion" and d.moves_alias
    assert d.primary["delta"] == pytest.approx(0.75) and d.primary["ci_low"] > 0
    assert "promoted" in d.reasons[-1]


def test_a_win_inside_the_noise_or_below_the_margin_is_refused(quick):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 40).astype(float)
    b = a.copy()
    b[0] = 1.0 if a[0] == 0 else b[0]  # one user better: a tiny delta whose interval includes zero
    d = _decide(quick, _table(quick, a, b))
    assert d.action == KEEP and d.serve["model"] == "als"  # the champion's configuration, refreshed
    assert "interval includes zero" in d.reasons[-1]

    strict = quick.with_overrides({"promotion": {"margin": 0.9}})
    clear = _table(strict, [0.0] * 30 + [1.0] * 10, [1.0] * 40)
    d = _decide(strict, clear)
    assert d.action == KEEP and "below the margin 0.9" in d.reasons[-1]


def test_the_first_champion_needs_only_the_gates(quick):
    d = _decide(quick, [], champion=None)
    assert d.action == FIRST and d.serve["model"] == "fusion" and d.champion_config is None


def test_a_failed_gate_or_a_dry_run_moves_nothing(quick):
    table = _table(quick, [0.0] * 40, [1.0] * 40)
    failed = _decide(quick, table, gates={"data:interactions": True, "synthetic": False})
    assert failed.action == HOLD and failed.serve is None and not failed.moves_alias
    assert "gate failed: synthetic" in failed.reasons
    dry = _decide(quick.with_overrides({"promotion": {"dry_run": True}}), table)
    assert dry.action == PROMOTE and not dry.moves_alias and dry.to_dict()["moves_alias"] is False


def test_the_champions_own_configuration_is_kept_not_promoted(quick):
    cfg = {"model": "als", "params": {"als": {"factors": 8}}, "weights": {}}
    d = _decide(quick, _table(quick, [0.0] * 40, [0.0] * 40), challenger_cfg=cfg, champion_cfg=cfg)
    assert d.action == KEEP and "refreshed" in d.reasons[-1]


def test_configurations_compare_without_learned_weights_and_rebuild_settings():
    base = Settings()
    a = promotion.model_config("als", base)
    b = promotion.model_config("als", base.with_overrides({"models": {"als": {"factors": 8}}}))
    assert not promotion.same_config(a, b)
    assert promotion.same_config({**a, "weights": {"x": 1}}, {**a, "weights": {"x": 2}})
    rebuilt = promotion.settings_for(b, base)
    assert rebuilt.models.als.factors == 8 and promotion.same_config(promotion.model_config("als", rebuilt), b)


def test_the_report_lists_reasons_and_the_table(quick):
    d = _decide(quick, _table(quick, [0.0] * 30 + [1.0] * 10, [1.0] * 40))
    text = promotion.report_markdown(d)
    assert text.startswith("# Promotion decision: promote")
    assert "| discover | overall | ndcg@10 | 0.2500 | 1.0000 | +0.7500 |" in text
