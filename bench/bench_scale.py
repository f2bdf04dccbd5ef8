"""Measured growth: the bundled data scaled up by resampling customers, stage by stage, on this machine.

Each scale ``k`` (``--scales 1,4,16``) is the bundled Online Retail export with every customer copied
``k`` times under new, distinct customer ids (copy ``j`` adds ``j * 100000`` to the id) and distinct
invoice numbers (``j * 10**7`` added to the number, the ``C``/``A`` prefix kept), written in the
bundled files' own Parquet schema, so the project's real reader and cleaning rules run on it and every
rule quarantines exactly ``k`` times as many rows (guest lines are copied too and stay guests; the
cross-file overlap of December 2010 maps onto itself copy by copy). Products stay the same catalog.
Copy 0 is the original, so 1x is the bundled data itself. ``--sample-customers N`` first keeps the rows
of N customers drawn with ``--seed`` (guest lines are dropped then) for a quick run.

Stages, each in its own child process (``bench/bench_scale.py _stage NAME --dir DIR``) that reads its
inputs from files the previous stages wrote under ``--work``:

  prepare   ml.data.prepare.prepare on the scaled files (what ``RECO_PATHS__BUNDLED_DATA=<raw>
            python -m ml data prepare --source online-retail`` runs): read, clean, quarantine, lake
  split     ml.data.prepare.split_lake: the temporal split over the lake and its vocabulary, saved
            (model matrices are built inside each model's own stage: ALS's CSR + BM25 is in ``als``)
  als       ml.models.als.ALS with its default settings (``models.als``: 30-day window, 64 factors,
            30 iterations), fitted on train + validation: the model the test period is scored with
  bert4rec  ml.models.bert4rec.model.Bert4Rec from the default settings, one epoch (``max_epochs=1``)
            on CPU, item ids only (no text vectors), ``torch`` threads = the machine's cores; the
            epoch's validation pass included (at most ``val_max_users`` users)
  evaluate  ml.pipeline.evaluation.evaluate_models on ALS: full-ranking metrics of both views on the
            test period, segments, cold items, lists and per-user rows written
  refit     ml.pipeline.publish.full_data + refit: ALS refit on every event up to the last day over
            every customer and product, staged as the served model's artifacts (no MLflow logging)
  batch     the nightly batch job without MLflow: ml.tracking.pyfunc.RecommenderModel.from_artifacts
            (the class mlflow.pyfunc.load_model returns), ml.serve.batch.active_customers,
            batch_recommendations (top ``serve.top_k`` = 10 of both views) and write_batch

Wall time is the child's whole life (interpreter start and imports included); work time is the stage
itself, from the end of its imports; cpu is the work's CPU seconds (all threads, user + system, from
``getrusage`` in the child: much less disturbed than wall time when other processes share the cores).
Peak RSS is the child's own high-water mark, from ``os.wait4``'s rusage (``ru_maxrss``) when it exits
(the parent imports neither pandas nor ``ml``: a child's ``ru_maxrss`` starts from its parent's RSS);
base RSS is its ``ru_maxrss`` when its imports are done. ``--repeat R`` runs each stage R times and
keeps the fastest run (the highest peak RSS). A child whose resident memory (polled with psutil) passes
``--max-rss-gib`` or that runs past ``--max-stage-minutes`` is stopped, and that is recorded as where
the machine stops; the stages after it at that scale are skipped.

Growth exponents ``b`` (``t ~ n^b``, n = cleaned interactions) between consecutive scales, for work
time, cpu, wall time, peak RSS and peak RSS above the base; then per stage the scale at which, with the
last pair's exponents, peak RSS (base + the part above it growing as n^b) would reach
``--ram-limit-gib`` and work time ``--time-budget-min``.

    .venv/bin/python bench/bench_scale.py                       # 1x, 4x, 16x: about 15 minutes here
    .venv/bin/python bench/bench_scale.py --repeat 2            # best of two runs per stage: about 30
    .venv/bin/python bench/bench_scale.py --sample-customers 150 --scales 1,2 --work /tmp/s --out /tmp/s.json
    .venv/bin/python bench/bench_scale.py --scales 4 --stages als,evaluate   # rerun stages on kept files

Prints figures only; the table is also written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = ROOT / "var" / "bench" / "scale"
STAGES = ("prepare", "split", "als", "bert4rec", "evaluate", "refit", "batch")
NEEDS = {
    "split": "prepare",
    "als": "split",
    "bert4rec": "split",
    "evaluate": "als",
    "refit": "prepare",
    "batch": "refit",
}
USER_OFFSET = 100_000  # customer ids of the bundled data are below 18,288
ORDER_OFFSET = 10**7  # invoice numbers are six digits
FILES = {  # the bundled files (ml.data.sources.ONLINE_RETAIL_FILES): invoice column, customer column
    "online_retail_ii_2009_2010.parquet": ("Invoice", "Customer ID"),
    "online_retail_2010_2011.parquet": ("InvoiceNo", "CustomerID"),
}
MIB = 1024 * 1024
FAR = 10_000  # extrapolations beyond this many times the data are printed as "beyond"


# -- the scaled raw data ---------------------------------------------------------------------------


def sample_customers(folder: Path, n: int, seed: int):
    """``n`` customer ids (floats, as the files hold them) drawn from both bundled files, seeded."""
    import numpy as np
    import pyarrow.parquet as pq

    ids = set()
    for name, (_, user_col) in FILES.items():
        column = pq.read_table(folder / name, columns=[user_col])[user_col].to_numpy(zero_copy_only=False)
        ids.update(float(u) for u in column[~np.isnan(column) & (column != 0)])
    ids = np.array(sorted(ids))
    return np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False)


def _copy_columns(table, invoice_col: str, user_col: str, j: int):
    """Copy ``j`` of a bundled table: invoice numbers + j * 10**7 (prefix kept), customers + j * 100000."""
    import numpy as np
    import pyarrow as pa

    if j == 0:
        return table
    invoice = table[invoice_col]
    if pa.types.is_integer(invoice.type):
        new_invoice = pa.array(invoice.to_numpy() + j * ORDER_OFFSET, invoice.type)
    else:
        text = invoice.to_pandas()
        parts = text.str.extract(r"^([A-Za-z]*)(\d+)$")
        if parts[1].isna().any():
            bad = text[parts[1].isna()].iloc[0]
            raise ValueError(f"{invoice_col} {bad!r} is not a prefix and a number: cannot give copies new invoices")
        numbers = parts[1].astype("int64") + j * ORDER_OFFSET
        new_invoice = pa.array((parts[0] + numbers.astype(str)).to_numpy(dtype=object), pa.string())
    users = table[user_col].to_numpy(zero_copy_only=False)  # float, NaN for guests; 0 is a guest in one file
    real = ~np.isnan(users) & (users != 0)
    if real.any() and users[real].max() >= USER_OFFSET:
        raise ValueError(f"{user_col} holds ids >= {USER_OFFSET}: copies would collide")
    new_users = np.where(real, users + j * USER_OFFSET, users)
    out = table.set_column(table.schema.get_field_index(invoice_col), invoice_col, new_invoice)
    return out.set_column(
        out.schema.get_field_index(user_col), user_col, pa.array(new_users, table[user_col].type, mask=np.isnan(users))
    )


def write_scaled(source: Path, dest: Path, k: int, sample=None) -> dict:
    """Write both bundled files into ``dest`` with every customer copied ``k`` times (see the module doc).

    Args:
        sample: customer ids to keep (None: every row, guest lines included).
    Returns:
        ``{"raw_rows": rows written, "per_file": {name: rows}, "seconds": ...}``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    started = time.perf_counter()
    dest.mkdir(parents=True, exist_ok=True)
    per_file = {}
    for name, (invoice_col, user_col) in FILES.items():
        table = pq.read_table(source / name)
        if sample is not None:
            table = table.filter(pc.fill_null(pc.is_in(table[user_col], pa.array(sample, table[user_col].type)), False))
        tmp = dest / f".{name}.tmp"
        with pq.ParquetWriter(tmp, table.schema) as writer:
            for j in range(k):
                writer.write_table(_copy_columns(table, invoice_col, user_col, j), row_group_size=1_000_000)
        tmp.replace(dest / name)
        per_file[name] = k * table.num_rows
    return {
        "raw_rows": sum(per_file.values()),
        "per_file": per_file,
        "seconds": round(time.perf_counter() - started, 2),
    }


# -- the stages (run inside a child process) -------------------------------------------------------


class ScaleDir:
    """The files of one scale under the work folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.raw, self.lake, self.dataset = self.root / "raw", self.root / "lake", self.root / "dataset"
        self.run, self.served, self.serving = self.root / "run", self.root / "served", self.root / "serving"
        self.stages, self.logs, self.home = self.root / "stages", self.root / "logs", self.root / "home"

    def record(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"

    def done(self, stage: str) -> bool:
        """Whether ``stage`` finished here (its record says ok)."""
        path = self.record(stage)
        return path.exists() and json.loads(path.read_text()).get("status") == "ok"


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process so far, all threads, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_prepare(d: ScaleDir, ready: Callable[[], None]) -> dict:
    from ml.config import get_settings
    from ml.data.prepare import SourceSpec, prepare

    settings = get_settings()
    ready()
    if d.lake.exists():
        shutil.rmtree(d.lake)
    report = prepare(SourceSpec(online_retail=d.raw), d.lake, settings)
    keys = ("rows_in", "rows_kept", "rows_quarantined", "quarantine_by_reason", "users", "items")
    return {k: report[k] for k in keys} | {"last_timestamp": report["last_timestamp"], "clean_s": report["clean_s"]}


def stage_split(d: ScaleDir, ready: Callable[[], None]) -> dict:
    from ml.config import get_settings
    from ml.data.prepare import split_lake

    settings = get_settings()
    ready()
    data = split_lake(d.lake, settings)
    data.save(d.dataset)
    return dict(data.info)


def stage_als(d: ScaleDir, ready: Callable[[], None]) -> dict:
    from ml.config import get_settings
    from ml.data.dataset import SplitData
    from ml.models import registry
    from ml.pipeline.layout import RunFolder

    settings = get_settings()
    ready()
    data = SplitData.load(d.dataset)
    history = data.history_for_test()  # train + validation: the test-phase fit (the pipeline's refit)
    model = registry.make_model("als", settings.models)
    started = time.perf_counter()
    model.fit(history)
    fit_s = time.perf_counter() - started
    model.save(RunFolder(d.run).model_dir("als", "final"))
    return {
        "fit_seconds": round(fit_s, 2),
        "users": data.n_users,
        "items": data.n_items,
        "events": len(history),
        "params": {k: v for k, v in model.params.items() if k != "use_gpu"},
        "device": model.device,
    }


def stage_bert4rec(d: ScaleDir, ready: Callable[[], None]) -> dict:
    import torch

    from ml.config import get_settings
    from ml.data.dataset import SplitData
    from ml.models.bert4rec.model import Bert4Rec

    settings = get_settings()
    ready()
    data = SplitData.load(d.dataset)
    threads = os.cpu_count() or 1
    model = Bert4Rec.from_settings(
        settings.models, max_epochs=1, max_minutes=None, accelerator="cpu", num_threads=threads, item_text=None
    )
    train, valid = data.train_i, data.valid_i
    started = time.perf_counter()
    model.fit(train, valid if len(valid) else None)
    fit_s = time.perf_counter() - started
    s = model.training_summary
    epoch = s["epochs"][0] if s.get("epochs") else {}
    return {
        "fit_seconds": round(fit_s, 2),
        "train_seconds": s.get("train_seconds"),
        "val_seconds": epoch.get("val_seconds"),
        "sequences_per_s": s.get("sequences_per_s"),
        "masked_tokens_per_s": s.get("masked_tokens_per_s"),
        "train_users": s.get("train_users"),
        "valid_users": s.get("valid_users"),
        "train_events": len(train),
        "items": data.n_items,
        "threads": torch.get_num_threads(),
        "device": s.get("device"),
    }


def stage_evaluate(d: ScaleDir, ready: Callable[[], None]) -> dict:
    from ml.config import get_settings
    from ml.data.dataset import SplitData
    from ml.pipeline.evaluation import evaluate_models
    from ml.pipeline.layout import RunFolder

    settings = get_settings()
    ready()
    data = SplitData.load(d.dataset)
    doc = evaluate_models(["als"], data, settings, RunFolder(d.run))
    entry = doc["models"]["als"]
    out = {"users": data.n_users, "items": data.n_items, "test_events": data.info.get("test_events")}
    for view, result in entry["views"].items():
        out[view] = {
            "users": result["overall"]["users"],
            "ndcg@10": round(result["overall"]["ndcg@10"], 4),
            "predict_seconds": entry.get(f"predict_seconds_{view}"),
        }
    return out


def _last_day(lake: Path) -> str:
    return json.loads((lake / "report.json").read_text())["last_timestamp"][:10]


def stage_refit(d: ScaleDir, ready: Callable[[], None]) -> dict:
    from ml.config import get_settings
    from ml.data.prepare import read_lake_catalog, read_lake_interactions
    from ml.pipeline.publish import full_data, refit
    from ml.tracking.pyfunc import stage_artifacts

    settings = get_settings()
    ready()
    as_of = _last_day(d.lake)
    events = read_lake_interactions(d.lake, as_of)
    catalog = read_lake_catalog(d.lake)
    config = {"model": "als", "window_days": settings.split.window_days}  # what a nightly decision records
    started = time.perf_counter()
    data = full_data(events, catalog, as_of, config["window_days"])
    universe_s = time.perf_counter() - started
    paths = refit(config, data, settings, catalog, d.served / "models")
    refit_s = time.perf_counter() - universe_s - started
    artifacts = stage_artifacts(paths, data.user_ids, data.item_ids, data.history, catalog, d.served / "pyfunc")
    (d.served / "artifacts.json").write_text(json.dumps({**artifacts, "as_of": as_of}))
    return {
        "as_of": as_of,
        "users": data.n_users,
        "items": data.n_items,
        "train_events": len(data.train),
        "history_events": len(data.history),
        "universe_seconds": round(universe_s, 2),
        "fit_seconds": round(refit_s, 2),
    }


def stage_batch(d: ScaleDir, ready: Callable[[], None]) -> dict:
    from ml import columns as C
    from ml.config import get_settings
    from ml.data.prepare import read_lake_interactions
    from ml.serve.batch import active_customers, batch_recommendations, write_batch
    from ml.tracking.pyfunc import RecommenderModel

    settings = get_settings()
    ready()
    staged = json.loads((d.served / "artifacts.json").read_text())
    as_of = staged["as_of"]
    model = RecommenderModel.from_artifacts({"models": staged["models"], "data": staged["data"]})
    events = read_lake_interactions(d.lake, as_of)
    users = active_customers(events[C.USER], events[C.TIMESTAMP], as_of, settings.serve.active_days)
    started = time.perf_counter()
    frame = batch_recommendations(model, users, settings.serve.top_k)
    lists_s = time.perf_counter() - started
    path = write_batch(frame, d.serving, as_of, model_version=0, run_id="bench_scale")
    return {
        "as_of": as_of,
        "active_customers": len(users),
        "rows": len(frame),
        "by_source": {str(k): int(v) for k, v in frame["source"].value_counts().items()},
        "lists_seconds": round(lists_s, 2),
        "path": str(path),
    }


STAGE_FUNCS: dict[str, Callable[[ScaleDir, Callable[[], None]], dict]] = {
    "prepare": stage_prepare,
    "split": stage_split,
    "als": stage_als,
    "bert4rec": stage_bert4rec,
    "evaluate": stage_evaluate,
    "refit": stage_refit,
    "batch": stage_batch,
}


def setup_main(folder: Path, k: int, n_sample: int | None, seed: int) -> int:
    """Write the scaled raw files of one scale and ``setup.json`` (rows, seconds, the sample)."""
    from ml.config import get_settings

    bundled = get_settings().paths.bundled_data
    sample = sample_customers(bundled, n_sample, seed) if n_sample else None
    label = f"{len(sample)} customers sampled with seed {seed}" if sample is not None else "all customers"
    d = ScaleDir(folder)
    setup = write_scaled(bundled, d.raw, k, sample)
    (d.root / "setup.json").write_text(json.dumps(setup | {"sample": label}))
    return 0


def child_main(stage: str, folder: Path) -> int:
    """Run one stage here and write its record (work seconds, base RSS, facts)."""
    d = ScaleDir(folder)
    marks: dict[str, float] = {}

    def ready() -> None:
        marks["start"], marks["cpu"] = time.perf_counter(), _cpu_s()
        marks["base"], marks["load"] = _maxrss_mib(), os.getloadavg()[0]

    facts = STAGE_FUNCS[stage](d, ready)
    record = {
        "stage": stage,
        "status": "ok",
        "work_s": round(time.perf_counter() - marks["start"], 3),
        "work_cpu_s": round(_cpu_s() - marks["cpu"], 3),
        "base_rss_mib": round(marks["base"], 1),
        "self_peak_rss_mib": round(_maxrss_mib(), 1),
        "load_avg_1min": [round(marks["load"], 2), round(os.getloadavg()[0], 2)],  # at the start and the end
        "facts": facts,
    }
    d.stages.mkdir(parents=True, exist_ok=True)
    d.record(stage).write_text(json.dumps(record, indent=1, default=str))
    return 0


# -- the parent: one child per stage, measured --------------------------------------------------------


def run_child(stage: str, d: ScaleDir, env: dict, max_rss_mib: float, max_seconds: float) -> dict:
    """Run one stage in a child process; wall time, its own peak RSS (``wait4``), stopped if over a limit."""
    import psutil

    d.logs.mkdir(parents=True, exist_ok=True)
    d.record(stage).unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_stage", stage, "--dir", str(d.root)]
    polled, stopped = 0.0, None
    with open(d.logs / f"{stage}.log", "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        watch = psutil.Process(proc.pid)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                rss = watch.memory_info().rss + sum(c.memory_info().rss for c in watch.children(recursive=True))
            except psutil.Error:
                rss = 0
            polled = max(polled, rss / MIB)
            elapsed = time.perf_counter() - started
            if stopped is None and rss / MIB > max_rss_mib:
                stopped = f"stopped: resident memory passed {max_rss_mib / 1024:.0f} GiB after {elapsed:.0f} s"
            elif stopped is None and elapsed > max_seconds:
                stopped = f"stopped: ran past {max_seconds / 60:.0f} min"
            if stopped:
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: only what this bench started
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    row = {
        "stage": stage,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "polled_peak_rss_mib": round(polled, 1),
        "exit_code": proc.returncode,
    }
    if stopped is None and proc.returncode == 0 and d.done(stage):
        record = json.loads(d.record(stage).read_text())
        keys = ("status", "work_s", "work_cpu_s", "base_rss_mib", "load_avg_1min", "facts")
        row.update({k: record[k] for k in keys})
    else:
        tail = (d.logs / f"{stage}.log").read_text(errors="replace").strip().splitlines()[-3:]
        row.update(status=stopped or f"failed (exit {proc.returncode}): {' | '.join(tail)[-300:]}")
    return row


def exponent(a: float, b: float, na: float, nb: float) -> float | None:
    """``log(b / a) / log(nb / na)``; None where undefined."""
    if not (a and b and a > 0 and b > 0 and na > 0 and nb > 0 and nb != na):
        return None
    return math.log(b / a) / math.log(nb / na)


def growth(rows: list[dict], scales: list[dict], stages: list[str]) -> dict:
    """Per stage and consecutive pair of scales: exponents of work time, wall time, peak RSS and RSS above base."""
    n = {s["scale"]: s["interactions"] for s in scales}
    ok = {(r["scale"], r["stage"]): r for r in rows if r.get("status") == "ok"}
    order = [s["scale"] for s in scales]
    out: dict = {}
    for stage in stages:
        pairs = []
        for a, b in zip(order, order[1:]):
            ra, rb = ok.get((a, stage)), ok.get((b, stage))
            if not (ra and rb and n.get(a) and n.get(b)):
                continue
            pairs.append(
                {
                    "from": a,
                    "to": b,
                    "work_s": exponent(ra["work_s"], rb["work_s"], n[a], n[b]),
                    "wall_s": exponent(ra["wall_s"], rb["wall_s"], n[a], n[b]),
                    "work_cpu_s": exponent(ra["work_cpu_s"], rb["work_cpu_s"], n[a], n[b]),
                    "peak_rss": exponent(ra["peak_rss_mib"], rb["peak_rss_mib"], n[a], n[b]),
                    "rss_above_base": exponent(
                        ra["peak_rss_mib"] - ra["base_rss_mib"], rb["peak_rss_mib"] - rb["base_rss_mib"], n[a], n[b]
                    ),
                }
            )
        out[stage] = pairs
    return out


def limits(rows: list[dict], scales: list[dict], exps: dict, ram_gib: float, budget_min: float) -> dict:
    """Per stage, from its largest measured scale and last exponents: where RSS reaches ``ram_gib``, and work
    time ``budget_min`` (scale factor relative to 1x, interactions, customers, and the other quantity then)."""
    base_scale = scales[0]
    out = {}
    for stage, pairs in exps.items():
        if not pairs:
            continue
        last = pairs[-1]
        row = next(r for r in rows if r["scale"] == last["to"] and r["stage"] == stage)
        s0, t0 = last["to"], row["work_s"]
        peak, base = row["peak_rss_mib"], row["base_rss_mib"]
        b_mem, b_t = last["rss_above_base"], last["work_s"]
        entry: dict = {"from_scale": s0, "b_time": b_t, "b_mem_above_base": b_mem}

        def at(scale: float) -> dict:
            factor = scale / base_scale["scale"]
            return {
                "scale": round(scale, 1),
                "interactions": round(base_scale["interactions"] * factor),
                "customers": round(base_scale["customers"] * factor),
            }

        ram = ram_gib * 1024
        if peak >= ram:
            entry["memory"] = {**at(s0), "work_s": t0, "note": "already there"}
        elif b_mem is not None and b_mem > 0.05 and peak > base:
            scale = s0 * ((ram - base) / (peak - base)) ** (1 / b_mem)
            work = t0 * (scale / s0) ** b_t if b_t is not None else None
            entry["memory"] = {**at(scale), "work_s": round(work, 1) if work is not None else None}
        else:
            entry["memory"] = None  # memory does not grow measurably with n
        budget = budget_min * 60
        if b_t is not None and b_t > 0.05 and t0 > 0:
            scale = s0 * (budget / t0) ** (1 / b_t)
            rss = base + (peak - base) * (scale / s0) ** b_mem if b_mem is not None else None
            entry["time"] = {**at(scale), "peak_rss_mib": round(rss) if rss is not None else None}
        else:
            entry["time"] = None
        out[stage] = entry
    return out


def _fmt_b(value: float | None) -> str:
    return f"{value:5.2f}" if value is not None else "    -"


def report(doc: dict) -> None:
    """Print the table, the exponents and the limits."""
    scales, rows = doc["scales"], doc["rows"]
    print(f"\nscaled bundled data ({doc['sample']}), {doc['machine']}")
    print(f"{'scale':>6} {'raw rows':>11} {'interactions':>13} {'customers':>10} {'items':>6}  setup s")
    for s in scales:
        print(
            f"{s['scale']:>5}x {_n(s['raw_rows']):>11} {_n(s['interactions']):>13} {_n(s['customers']):>10} "
            f"{_n(s.get('items')):>6} {s['setup_s']:>8.1f}"
        )
    print(
        f"\n{'scale':>6} {'interactions':>13} {'customers':>10}  {'stage':<9} {'wall s':>8} {'work s':>8} "
        f"{'cpu s':>8} {'peak RSS MiB':>13} {'base MiB':>9}  notes"
    )
    counts = {s["scale"]: s for s in scales}
    for r in rows:
        s = counts[r["scale"]]
        note = _note(r)
        work = f"{r['work_s']:>8.1f}" if "work_s" in r else f"{'-':>8}"
        cpu = f"{r['work_cpu_s']:>8.1f}" if "work_cpu_s" in r else f"{'-':>8}"
        base = f"{r['base_rss_mib']:>9.0f}" if "base_rss_mib" in r else f"{'-':>9}"
        peak = f"{r['peak_rss_mib']:>13,.0f}" if r.get("peak_rss_mib") else f"{'-':>13}"
        wall = f"{r['wall_s']:>8.1f}" if r.get("wall_s") is not None else f"{'-':>8}"
        print(
            f"{r['scale']:>5}x {_n(s['interactions']):>13} {_n(s['customers']):>10}  {r['stage']:<9} {wall} {work} "
            f"{cpu} {peak} {base}  {note}"
        )
    print("\ngrowth exponents b (quantity ~ n^b, n = interactions) between consecutive scales")
    print(f"{'stage':<9} {'pair':>9} {'work s':>7} {'cpu s':>7} {'wall s':>7} {'peak RSS':>9} {'RSS-base':>9}")
    for stage, pairs in doc["exponents"].items():
        for p in pairs:
            print(
                f"{stage:<9} {str(p['from']) + '→' + str(p['to']):>9} {_fmt_b(p['work_s']):>7} "
                f"{_fmt_b(p['work_cpu_s']):>7} {_fmt_b(p['wall_s']):>7} {_fmt_b(p['peak_rss']):>9} "
                f"{_fmt_b(p['rss_above_base']):>9}"
            )
    ram, budget = doc["limits_at"]["ram_gib"], doc["limits_at"]["time_budget_min"]
    print(
        f"\nwhere one machine ({doc['machine']}) stops, extrapolated from each stage's last pair "
        f"(RSS = base + (peak - base) * (s/s0)^b): peak RSS {ram:.0f} GiB, or work time {budget:.0f} min"
    )
    for stage, e in doc["limits"].items():
        mem, tim = e["memory"], e["time"]
        if not mem:
            mem_text = "RSS does not grow measurably"
        elif mem["scale"] > FAR:
            mem_text = f"RSS {ram:.0f} GiB beyond {FAR:,}x"
        else:
            mem_text = (
                f"RSS {ram:.0f} GiB at ~{mem['scale']:,.0f}x ({mem['interactions']:,} interactions, "
                f"{mem['customers']:,} customers; work then ~{_secs(mem.get('work_s'))})"
            )
        if not tim:
            tim_text = "time does not grow measurably"
        elif tim["scale"] > FAR:
            tim_text = f"{budget:.0f} min beyond {FAR:,}x"
        else:
            tim_text = f"{budget:.0f} min at ~{tim['scale']:,.0f}x (RSS then ~{_mib(tim.get('peak_rss_mib'))})"
        print(f"  {stage:<9} {mem_text}; {tim_text}")
    stopped = [r for r in rows if r.get("status") not in ("ok", None)]
    for r in stopped:
        print(f"  measured: {r['stage']} at {r['scale']}x {r['status']}")
    print(f"\ntotal wall time {doc['total_wall_s']:.0f} s; JSON: {doc['out']}")


def _n(value) -> str:
    return "-" if value is None else f"{value:,}"


def _secs(value) -> str:
    if value is None:
        return "?"
    return f"{value / 3600:.1f} h" if value >= 3600 else f"{value / 60:.1f} min" if value >= 60 else f"{value:.0f} s"


def _mib(value) -> str:
    return "?" if value is None else f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def _note(r: dict) -> str:
    f = r.get("facts") or {}
    if r.get("status") != "ok":
        return r.get("status", "")
    stage = r["stage"]
    if stage == "prepare":
        return f"{f['rows_in']:,} rows in, {f['rows_quarantined']:,} quarantined"
    if stage == "split":
        return f"{f['train_events']:,} train / {f['test_events']:,} test events, {f['users']:,} x {f['items']:,}"
    if stage == "als":
        return f"fit {f['fit_seconds']:.1f} s on {f['users']:,} x {f['items']:,}"
    if stage == "bert4rec":
        return (
            f"{f['train_users']:,} seqs, {f['sequences_per_s']:,.0f} seq/s, train {f['train_seconds']:.1f} s "
            f"+ val {f['val_seconds'] or 0:.1f} s ({f['valid_users']:,} users), {f['threads']} threads"
        )
    if stage == "evaluate":
        views = [v for v in ("repeat", "discover") if v in f]
        return ", ".join(f"{v} {f[v]['users']:,} users NDCG@10 {f[v]['ndcg@10']:.4f}" for v in views)
    if stage == "refit":
        return f"fit {f['fit_seconds']:.1f} s on {f['users']:,} x {f['items']:,}"
    if stage == "batch":
        return f"{f['active_customers']:,} customers, {f['rows']:,} rows, lists {f['lists_seconds']:.1f} s"
    return ""


def _scale_facts(d: ScaleDir, k: int, setup: dict | None) -> dict:
    """Counts of one scale from its lake report (and the setup record)."""
    facts = {"scale": k, "raw_rows": None, "interactions": None, "customers": None, "setup_s": 0.0}
    setup_path = d.root / "setup.json"
    if setup is None and setup_path.exists():
        setup = json.loads(setup_path.read_text())
    if setup:
        facts.update(raw_rows=setup["raw_rows"], setup_s=setup["seconds"])
    report_path = d.lake / "report.json"
    if report_path.exists():
        rep = json.loads(report_path.read_text())
        facts.update(interactions=rep["rows_kept"], customers=rep["users"], items=rep["items"])
    return facts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_stage":  # the child side
        child = argparse.ArgumentParser(prog="bench_scale.py _stage")
        child.add_argument("stage", choices=STAGES)
        child.add_argument("--dir", type=Path, required=True)
        a = child.parse_args(argv[1:])
        return child_main(a.stage, a.dir)
    if argv and argv[0] == "_setup":
        child = argparse.ArgumentParser(prog="bench_scale.py _setup")
        child.add_argument("--dir", type=Path, required=True)
        child.add_argument("--scale", type=int, required=True)
        child.add_argument("--sample-customers", type=int, default=None)
        child.add_argument("--seed", type=int, default=42)
        a = child.parse_args(argv[1:])
        return setup_main(a.dir, a.scale, a.sample_customers, a.seed)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,4,16", help="copies of every customer, comma separated")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"a subset of {','.join(STAGES)}")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scaled data and stage outputs")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: <work>/bench_scale.json)")
    parser.add_argument("--sample-customers", type=int, default=None, help="first keep N customers (fast run)")
    parser.add_argument("--seed", type=int, default=42, help="seeds the customer sample")
    parser.add_argument("--max-rss-gib", type=float, default=20.0, help="stop a stage whose RSS passes this")
    parser.add_argument("--max-stage-minutes", type=float, default=30.0, help="stop a stage running longer")
    parser.add_argument("--ram-limit-gib", type=float, default=20.0, help="extrapolate to this peak RSS")
    parser.add_argument("--time-budget-min", type=float, default=15.0, help="extrapolate to this work time")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each stage; the fastest is reported")
    parser.add_argument(
        "--jobs", type=int, default=1, help="scales run at once (default 1; more is for quick checks: shared cores)"
    )
    args = parser.parse_args(argv)

    scales = sorted({int(s) for s in args.scales.split(",") if s.strip()})
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not scales or min(scales) < 1:
        parser.error(f"unknown stages {unknown} (choose from {', '.join(STAGES)})" if unknown else "bad --scales")
    stages = [s for s in STAGES if s in stages]
    out = args.out or args.work / "bench_scale.json"
    started = time.perf_counter()
    import psutil  # the parent stays small (no pandas, no ml): a child's ru_maxrss starts from its parent's RSS

    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 1024**3:.0f} GiB"

    def measure(stage: str, d: ScaleDir, env: dict) -> dict:
        """``--repeat`` runs of a stage: the fastest run's figures (least disturbed), the highest peak RSS."""
        runs = []
        for _ in range(args.repeat):
            runs.append(run_child(stage, d, env, args.max_rss_gib * 1024, args.max_stage_minutes * 60))
            if runs[-1]["status"] != "ok":
                return {**runs[-1], "repeats": len(runs)}
        best = min(runs, key=lambda r: r["work_s"])
        keys = ("wall_s", "work_s", "work_cpu_s", "peak_rss_mib", "load_avg_1min")
        return {
            **best,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            "repeats": len(runs),
            "runs": [{k: r[k] for k in keys} for r in runs],
        }

    def one_scale(k: int) -> tuple[list[dict], dict, str | None]:
        d = ScaleDir(args.work / f"x{k}")
        env = {**os.environ, "RECO_PATHS__HOME": str(d.home), "PYTHONPATH": str(ROOT)}
        if "prepare" in stages:  # new raw data for a new prepare; other stages reuse what is on disk
            print(f"[{k}x] writing the scaled raw files ...", flush=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), "_setup", "--dir", str(d.root), "--scale", str(k)]
            if args.sample_customers:
                cmd += ["--sample-customers", str(args.sample_customers), "--seed", str(args.seed)]
            subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        setup_path = d.root / "setup.json"
        setup = json.loads(setup_path.read_text()) if setup_path.exists() else None
        rows = []
        for stage in stages:
            need = NEEDS.get(stage)
            if need and not d.done(need):
                rows.append({"scale": k, "stage": stage, "status": f"skipped: {need} did not finish"})
                continue
            row = {"scale": k, **measure(stage, d, env)}
            print(f"[{k}x] {stage}: {row['wall_s']:.1f} s, {row['peak_rss_mib']:,.0f} MiB  {row['status']}", flush=True)
            rows.append(row)
        return rows, _scale_facts(d, k, setup), setup["sample"] if setup else None

    if args.jobs > 1:  # quick checks only: concurrent scales share the cores, so their timings mean little
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one_scale, scales))
    else:
        results = [one_scale(k) for k in scales]
    rows = [r for scale_rows, _, _ in results for r in scale_rows]
    scale_facts = [facts for _, facts, _ in results]
    label = next((lab for _, _, lab in results if lab), "all customers")
    measured = [s for s in scale_facts if s["interactions"]]
    exps = growth(rows, measured, stages)
    doc = {
        "command": " ".join(["bench/bench_scale.py", *argv]),
        "machine": machine,
        "jobs": args.jobs,
        "sample": label,
        "work": str(args.work),
        "out": str(out),
        "scales": scale_facts,
        "stages": stages,
        "rows": rows,
        "exponents": exps,
        "limits_at": {"ram_gib": args.ram_limit_gib, "time_budget_min": args.time_budget_min},
        "limits": limits(rows, measured, exps, args.ram_limit_gib, args.time_budget_min) if measured else {},
        "total_wall_s": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=str))
    report(doc)
    return 1 if any(r.get("status", "").startswith("failed") for r in rows) else 0  # a stop is a finding


if __name__ == "__main__":
    sys.exit(main())
