"""Every path a pipeline run reads or writes, keyed by its as-of date: the one place that knows the layout.

::

    <home>/staging/<day>/raw.parquet, shop_catalog.parquet, ingest.json    ingest
    <home>/lake/{interactions,quarantine}/event_date=.../, catalog/, report.json, reports/<day>.json
    <home>/datasets/<day>/{train,valid,test,users,items}.parquet, split.json
    <home>/datasets/<day>/synthetic/...                                    synthesis (ml.synth.pipeline.FILES)
    <home>/runs/<day>/models/<key>/{valid,final[_<view>]}/, fit.json      training, fusion
    <home>/runs/<day>/{metrics.json, recommendations.parquet, ground_truth.parquet, metric_curves.png,
                       history_buckets.png, summary.txt}

A rerun for the same day writes the same paths, so its outputs replace the earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml.config import Settings
from ml.data.prepare import CATALOG_FILE, INTERACTIONS, REPORT_FILE

SYNTHETIC = "synthetic"


def day(as_of) -> str:
    """``YYYY-MM-DD`` of an as-of date (string, date or timestamp)."""
    return pd.Timestamp(as_of).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class RunFolder:
    """The models and results of one run (``runs/<day>`` in the nightly pipeline, ``--out`` in the benchmark)."""

    root: Path

    def model_dir(self, key: str, phase: str) -> Path:
        """A saved model of a phase: ``valid`` (fitted on train), ``final`` or ``final_<view>``."""
        return self.root / "models" / key / phase

    def fit_record(self, key: str) -> Path:
        """The fit summary of a model (times, validation scores)."""
        return self.root / "models" / key / "fit.json"

    def variants_record(self) -> Path:
        """Which variant of each model fusion took, and why."""
        return self.root / "models" / "fusion" / "variants.json"

    def checkpoints(self, key: str) -> Path:
        """Where a model writes its training checkpoints."""
        return self.root / "checkpoints" / key

    def pyfunc_scratch(self, key: str) -> Path:
        """Scratch folder for a model's MLflow pyfunc artifacts."""
        return self.root / "pyfunc" / key

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def recommendations(self) -> Path:
        return self.root / "recommendations.parquet"

    @property
    def ground_truth(self) -> Path:
        return self.root / "ground_truth.parquet"

    @property
    def user_metrics(self) -> Path:
        """Per evaluated user: model, view, user_id, history_items and each ``eval.compare_metrics`` value."""
        return self.root / "user_metrics.parquet"

    @property
    def plot(self) -> Path:
        return self.root / "metric_curves.png"

    @property
    def buckets_plot(self) -> Path:
        return self.root / "history_buckets.png"

    @property
    def summary(self) -> Path:
        return self.root / "summary.txt"

    @property
    def backtest(self) -> Path:
        """The run's rolling backtest (``backtest.json``, ``user_metrics.parquet``, ``cuts/``)."""
        return self.root / "backtest"

    @property
    def weekly_backtest(self) -> Path:
        """The weekly DAG's backtest of every model (same layout as :attr:`backtest`)."""
        return self.root / "backtest_weekly"

    @property
    def weekly_ablation(self) -> Path:
        """The weekly DAG's synthesis ablation (``ablation.json``, ``ablation_summary.json``, ``ablation.md``, ...)."""
        return self.root / "synth_ablation_weekly"


@dataclass(frozen=True)
class Layout:
    """The folders of one as-of date under ``settings.paths``."""

    settings: Settings
    as_of: str

    @classmethod
    def of(cls, settings: Settings, as_of) -> Layout:
        """The layout of ``as_of`` (any date-like value)."""
        return cls(settings, day(as_of))

    @property
    def staging(self) -> Path:
        return self.settings.paths.staging / self.as_of

    @property
    def raw(self) -> Path:
        return self.staging / "raw.parquet"

    @property
    def shop_catalog(self) -> Path:
        return self.staging / "shop_catalog.parquet"

    @property
    def ingest_record(self) -> Path:
        return self.staging / "ingest.json"

    @property
    def lake(self) -> Path:
        return self.settings.paths.lake

    @property
    def interactions(self) -> Path:
        return self.lake / INTERACTIONS

    @property
    def catalog(self) -> Path:
        return self.lake / CATALOG_FILE

    @property
    def lake_report(self) -> Path:
        """The lake's report of its latest cleaning run."""
        return self.lake / REPORT_FILE

    @property
    def clean_report(self) -> Path:
        """This day's cleaning report, kept beside the other days'."""
        return self.lake / "reports" / f"{self.as_of}.json"

    @property
    def dataset(self) -> Path:
        return self.settings.paths.datasets / self.as_of

    @property
    def synthetic(self) -> Path:
        return self.dataset / SYNTHETIC

    @property
    def synthetic_status(self) -> Path:
        """Whether the day's synthesis ran (``ok``) or why not (``unavailable`` and the reason)."""
        return self.synthetic / "status.json"

    @property
    def run(self) -> RunFolder:
        return RunFolder(self.settings.paths.runs / self.as_of)

    @property
    def airflow_log(self) -> Path:
        """The log of ``make run``'s Airflow run for this day."""
        return self.settings.paths.runs / f"{self.as_of}.airflow.log"

    def previous(self, kind: str) -> Path | None:
        """The most recent earlier day's record: ``ingest`` (staging) or ``clean`` (lake reports); None if none."""
        if kind == "ingest":
            found = [p for p in self.settings.paths.staging.glob("*/ingest.json") if p.parent.name < self.as_of]
        elif kind == "clean":
            found = [p for p in (self.lake / "reports").glob("*.json") if p.stem < self.as_of]
        else:
            raise ValueError(f"unknown record kind {kind!r} (ingest or clean)")
        return sorted(found)[-1] if found else None
