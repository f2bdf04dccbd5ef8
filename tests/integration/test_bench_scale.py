"""bench/bench_scale.py end to end on a 150-customer sample at 1x and 2x: every stage runs, the JSON holds
one measured row per scale and stage, and 2x is exactly the 1x shop with every customer copied once more."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["prepare", "split", "als", "bert4rec", "evaluate", "refit", "batch"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench_scale")
    out = tmp / "bench_scale.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--sample-customers", "150", "--scales", "1,2"]
        + ["--work", str(tmp / "work"), "--out", str(out), "--jobs", "2"],  # two scales at once: counts, not timings
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, json.loads(out.read_text()) if out.exists() else None, tmp / "work"


def test_every_stage_of_every_scale_is_measured(bench):
    proc, doc, _ = bench
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {(r["scale"], r["stage"]): r for r in doc["rows"]}
    assert sorted(rows) == sorted((k, s) for k in (1, 2) for s in STAGES)
    for row in rows.values():
        assert row["status"] == "ok"
        assert row["wall_s"] > 0 and row["work_s"] > 0
        assert row["peak_rss_mib"] > 0 and row["peak_rss_mib"] >= row["base_rss_mib"] > 0
    assert set(doc["exponents"]) == set(STAGES)
    assert "growth exponents" in proc.stdout and "bert4rec" in proc.stdout


def test_two_x_is_every_customer_copied_once_more(bench):
    _, doc, work = bench
    one, two = ({s["scale"]: s for s in doc["scales"]}[k] for k in (1, 2))
    assert two["interactions"] == 2 * one["interactions"] > 0
    assert two["customers"] == 2 * one["customers"] > 0
    assert two["raw_rows"] == 2 * one["raw_rows"]
    assert one["customers"] <= 150  # a sampled customer whose every line is quarantined drops out
    assert two["items"] == one["items"]  # the same catalog
    reports = [json.loads((work / f"x{k}" / "lake" / "report.json").read_text()) for k in (1, 2)]
    assert reports[1]["quarantine_by_reason"] == {r: 2 * c for r, c in reports[0]["quarantine_by_reason"].items()}
    # the copies' customers are new ids (the original + 100000), each with the original's lines
    import pandas as pd

    lakes = [pd.read_parquet(work / f"x{k}" / "lake" / "interactions") for k in (1, 2)]
    users = [set(lake["user_id"].astype(str)) for lake in lakes]
    assert users[0] < users[1]
    copies = users[1] - users[0]
    assert copies == {str(int(u) + 100_000) for u in users[0]}
    first = sorted(users[0])[0]
    own = lakes[1][lakes[1]["user_id"].astype(str) == first]
    copy = lakes[1][lakes[1]["user_id"].astype(str) == str(int(first) + 100_000)]
    assert len(own) == len(copy) > 0
    assert sorted(own["item_id"]) == sorted(copy["item_id"])
    assert set(own["order_id"]).isdisjoint(copy["order_id"])  # invoices do not merge


def test_every_stage_left_its_output(bench):
    _, doc, work = bench
    for k in (1, 2):
        d = work / f"x{k}"
        assert (d / "dataset" / "train.parquet").exists()
        assert (d / "run" / "metrics.json").exists()
        batch = pd_read(next((d / "serving").glob("date=*/recommendations.parquet")))
        batch_row = next(r for r in doc["rows"] if r["scale"] == k and r["stage"] == "batch")
        assert len(batch) == batch_row["facts"]["rows"] > 0
        assert set(batch["view"]) == {"repeat", "discover"}
        assert batch.groupby(["user_id", "view"]).size().max() <= 10


def pd_read(path):
    import pandas as pd

    return pd.read_parquet(path)
