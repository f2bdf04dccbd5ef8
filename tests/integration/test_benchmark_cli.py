"""``python -m ml benchmark`` on a small sequential file, leave-one-out, with every model."""

import json

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.cli import main


def _sequences(path, n_users=80, n_items=40, length=12, seed=0):
    """Users walk a cycle over items (i -> i+1): order is everything, integer timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(0, n_items)
        for t in range(length):
            rows.append((f"u{u}", f"i{(start + t) % n_items}", t))
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)


def test_leave_one_out_benchmark_writes_recomputable_outputs(tmp_path, capsys):
    events = tmp_path / "seq.csv"
    _sequences(events)
    out = tmp_path / "bench"
    code = main(
        [
            "benchmark",
            "--events",
            str(events),
            "--protocol",
            "leave-one-out",
            "--models",
            "pop,rebuy,als,bert4rec,fusion",
            "--out",
            str(out),
            "--max-epochs",
            "3",
            "--seed",
            "1",
            "--compare",
            "pop,rebuy",
        ]
    )
    assert code == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["protocol"]["protocol"] == "leave-one-out"
    assert doc["protocol"]["test_events"] == 80 and doc["protocol"]["valid_events"] == 80
    assert set(doc["models"]) == {"pop", "rebuy", "als", "bert4rec", "fusion"}
    # leave-one-out holds out the last event in the split's order: BERT4Rec trains on that order
    assert doc["models"]["bert4rec"]["training"]["shuffle_baskets"] is False
    for entry in doc["models"].values():
        assert entry["fit_seconds"] is not None
        for k in (10, 20):
            assert f"ndcg@{k}" in entry["views"]["discover"]["overall"]
    recs = pd.read_parquet(out / "recommendations.parquet")
    truth = pd.read_parquet(out / "ground_truth.parquet")
    assert list(recs.columns) == [C.MODEL, "view", C.USER, C.RANK, C.ITEM, C.SCORE]
    assert recs.groupby([C.MODEL, "view", C.USER]).size().max() == 20
    assert len(truth) == 80 and set(truth.columns) >= {C.USER, C.ITEM}
    # recompute one figure independently from the written files: HR@10 of pop, discover view
    pop = recs[(recs[C.MODEL] == "pop") & (recs["view"] == "discover") & (recs[C.RANK] <= 10)]
    hits = pop.merge(truth[~truth["repeat"]], on=[C.USER, C.ITEM])[C.USER].nunique()
    evaluated = doc["models"]["pop"]["views"]["discover"]["overall"]["users"]
    assert abs(hits / evaluated - doc["models"]["pop"]["views"]["discover"]["overall"]["hr@10"]) < 1e-9
    # the paired comparison, recomputed from the written lists: rebuy's and pop's HR@10 per discover user
    record = next(r for r in doc["comparisons"] if r["slice"] == "discover/overall" and r["metric"] == "recall@10")
    assert (record["a"], record["b"], record["n_users"]) == ("pop", "rebuy", evaluated)
    assert record["a_value"] == doc["models"]["pop"]["views"]["discover"]["overall"]["recall@10"]
    assert record["ci_low"] <= record["delta"] <= record["ci_high"] and 0 <= record["p_value"] <= 1
    printed = capsys.readouterr().out
    assert "ndcg@10" in printed and "95% interval" in printed and "rebuy - pop" in printed
    training = printed.split("training (time-to-quality")[1].splitlines()
    assert next(line for line in training if line.startswith("bert4rec ")).split()[-1] == "fixed"


def test_compare_needs_models_that_are_benchmarked(tmp_path, capsys):
    events = tmp_path / "seq.csv"
    _sequences(events, n_users=10)
    args = ["benchmark", "--events", str(events), "--models", "pop,rebuy", "--out", str(tmp_path / "o")]
    assert main([*args, "--compare", "pop,als"]) == 2
    assert "not among --models" in capsys.readouterr().err
    assert main([*args, "--compare", "pop"]) == 2
    assert not (tmp_path / "o").exists()


def test_seeded_benchmark_reports_spread_over_seeds_and_seed_averaged_comparisons(tmp_path, capsys):
    events = tmp_path / "seq.csv"
    _sequences(events)
    out = tmp_path / "seeds"
    args = ["benchmark", "--events", str(events), "--protocol", "leave-one-out", "--models", "pop,als,bert4rec"]
    code = main([*args, "--out", str(out), "--seeds", "1,2,3", "--max-epochs", "2", "--compare", "pop,als"])
    assert code == 0
    doc = json.loads((out / "seeds.json").read_text())
    assert doc["seeds"] == [1, 2, 3] and doc["bert4rec"]["max_minutes"] is None  # epochs bound it, not the clock
    assert doc["bert4rec"]["max_epochs"] == doc["sasrec"]["max_epochs"] == 2  # --max-epochs bounds both
    per_seed = [json.loads((out / f"seed_{s}" / "metrics.json").read_text()) for s in (1, 2, 3)]
    als = doc["models"]["als"]["discover"]["overall"]["ndcg@10"]
    assert als["values"] == [d["models"]["als"]["views"]["discover"]["overall"]["ndcg@10"] for d in per_seed]
    assert als["mean"] == np.mean(als["values"])
    assert doc["models"]["pop"]["discover"]["overall"]["ndcg@10"]["sd"] == 0.0  # popularity has no seed
    record = next(r for r in doc["comparisons"] if r["slice"] == "discover/overall" and r["metric"] == "ndcg@10")
    assert record["seeds"] == [1, 2, 3]
    assert record["b_value"] == pytest.approx(als["mean"])  # every user's value averaged over the seeds
    assert "+-" in capsys.readouterr().out


def test_seeds_must_be_integers(tmp_path, capsys):
    events = tmp_path / "seq.csv"
    _sequences(events, n_users=10)
    code = main(["benchmark", "--events", str(events), "--models", "pop", "--out", str(tmp_path / "o"), "--seeds", "a"])
    assert code == 2 and "--seeds takes integers" in capsys.readouterr().err
