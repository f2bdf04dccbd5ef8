"""Read a shop's events and clean them with quarantine: published to the lake (``prepare``) or split in memory.

``prepare_split`` is source -> clean -> split in one call; ``split_lake`` splits a published lake.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data import catalog as catalog_mod
from ml.data import cleaning, lake, sources
from ml.data.dataset import SplitData, build_split
from ml.errors import InputDataError

INTERACTIONS = "interactions"
QUARANTINE = "quarantine"
CATALOG_FILE = Path("catalog") / "catalog.parquet"
REPORT_FILE = "report.json"


@dataclass(frozen=True)
class SourceSpec:
    """What to read: the bundled Online Retail files, or a shop's events (+ optional catalog)."""

    events: tuple[Path, ...] = ()
    catalog: Path | None = None
    online_retail: Path | None = None

    @classmethod
    def bundled(cls, settings: Settings) -> SourceSpec:
        """The two bundled Online Retail files."""
        return cls(online_retail=settings.paths.bundled_data)

    @classmethod
    def from_files(cls, settings: Settings, events=(), catalog: Path | None = None) -> SourceSpec:
        """A shop's ``events`` files (+ ``catalog``) where given, else the bundled data (as the commands take them).

        Raises:
            InputDataError: a catalog without events (the bundled data has no catalog file).
        """
        if events:
            return cls(events=tuple(events), catalog=catalog)
        if catalog:
            raise InputDataError(catalog, "--catalog needs --events (the bundled data has no catalog file)")
        return cls.bundled(settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceSpec:
        """The source configured in ``settings.source``."""
        if settings.source.kind == "online-retail":
            return cls.bundled(settings)
        return cls(events=tuple(settings.source.events), catalog=settings.source.catalog)

    @property
    def conventions(self) -> sources.SourceConventions:
        """How these inputs mark non-purchases: the Online Retail export's own codes, none for a shop's files."""
        return sources.ONLINE_RETAIL if self.online_retail is not None else sources.GENERIC

    def describe(self) -> str:
        """One line naming the inputs."""
        if self.online_retail is not None:
            return f"online-retail ({self.online_retail})"
        cat = f" + catalog {self.catalog}" if self.catalog else ""
        return ", ".join(map(str, self.events)) + cat


def read_raw(spec: SourceSpec) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read the raw events (and the shop catalog, if any) named by ``spec``."""
    if spec.online_retail is not None:
        raw = sources.read_online_retail(spec.online_retail)
    else:
        if not spec.events:
            raise ValueError("no events file given")
        raw = pd.concat([sources.read_events(p) for p in spec.events], ignore_index=True)
    shop_catalog = sources.read_catalog(spec.catalog) if spec.catalog else None
    if shop_catalog is not None:
        catalog_mod.check_events_against_catalog(raw, shop_catalog, spec.events, spec.catalog)
    return raw, shop_catalog


def to_interactions(kept: pd.DataFrame) -> pd.DataFrame:
    """Kept raw rows as interactions with a confidence weight (``INTERACTION_COLUMNS``)."""
    out = kept[[C.USER, C.ITEM, C.TIMESTAMP, C.QUANTITY, C.PRICE, C.ORDER, C.SOURCE, C.SOURCE_ROW]].copy()
    out[C.QUANTITY] = out[C.QUANTITY].astype("int64")
    out[C.WEIGHT] = cleaning.confidence_weight(kept[C.QUANTITY], kept[C.EVENT_TYPE])
    missing = out[C.ORDER].isna()
    if missing.any():  # events without an order id: one basket per user and timestamp
        out.loc[missing, C.ORDER] = (
            out.loc[missing, C.USER] + "@" + out.loc[missing, C.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")
        )
    return out[C.INTERACTION_COLUMNS]


def to_quarantine(quarantined: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows: the whole normalized row (every input field, typed) plus its reason."""
    return quarantined[sources.RAW_COLUMNS + [C.REASON]].astype({C.REASON: "string"}).reset_index(drop=True)


def build_report(
    raw: pd.DataFrame,
    result: cleaning.CleanResult,
    interactions: pd.DataFrame,
    catalog: pd.DataFrame,
    spec: SourceSpec,
    as_of,
    rows_after_as_of: int,
) -> dict:
    """Counts that account for every input row, overall and per source."""
    per_source = {}
    for source, rows in raw.groupby(C.SOURCE, observed=True).size().items():
        q = result.quarantined[result.quarantined[C.SOURCE] == source]
        kept = int((result.kept[C.SOURCE] == source).sum())
        per_source[str(source)] = {
            "rows_in": int(rows),
            "rows_kept": kept,
            "rows_quarantined": len(q),
            "quarantine_by_reason": {str(k): int(v) for k, v in q[C.REASON].value_counts().items()},
        }
    return {
        "source": spec.describe(),
        "as_of": str(as_of) if as_of is not None else None,
        "rows_after_as_of": rows_after_as_of,
        "rows_in": result.rows_in,
        "rows_kept": len(result.kept),
        "rows_quarantined": len(result.quarantined),
        "quarantine_by_reason": result.counts_by_reason(),
        "per_source": per_source,
        "users": int(interactions[C.USER].nunique()),
        "items": len(catalog),
        "first_timestamp": str(interactions[C.TIMESTAMP].min()) if len(interactions) else None,
        "last_timestamp": str(interactions[C.TIMESTAMP].max()) if len(interactions) else None,
    }


def check_report(report: dict) -> None:
    """Assert the no-loss invariant overall and per source; raise if any row is unaccounted."""
    problems = []
    if report["rows_in"] != report["rows_kept"] + report["rows_quarantined"]:
        problems.append("overall")
    if sum(report["quarantine_by_reason"].values()) != report["rows_quarantined"]:
        problems.append("reasons")
    for name, s in report["per_source"].items():
        if (
            s["rows_in"] != s["rows_kept"] + s["rows_quarantined"]
            or sum(s["quarantine_by_reason"].values()) != s["rows_quarantined"]
        ):
            problems.append(name)
    if problems:
        raise AssertionError(f"row accounting does not add up for: {', '.join(problems)}")


def ingest(spec: SourceSpec, as_of: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None, int]:
    """Read the inputs and keep the rows available on ``as_of`` (a nightly run's logical date).

    Returns:
        (raw frame, shop catalog or None, number of rows dated after ``as_of``).
    Raises:
        InputDataError: bad input.
    """
    raw, shop_catalog = read_raw(spec)
    rows_after = 0
    if as_of is not None:
        available = raw[C.TIMESTAMP] < pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
        rows_after = int((~available).sum())
        raw = raw[available].reset_index(drop=True)
    return raw, shop_catalog, rows_after


@dataclass(frozen=True)
class Cleaned:
    """One cleaning run in memory: what the lake gets, and the report that accounts for every row."""

    interactions: pd.DataFrame  # INTERACTION_COLUMNS
    catalog: pd.DataFrame  # CATALOG_COLUMNS (+ the shop catalog's extras)
    quarantine: pd.DataFrame  # every input field + reason
    report: dict


def clean_frames(
    raw: pd.DataFrame,
    shop_catalog: pd.DataFrame | None,
    spec: SourceSpec,
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    rows_after_as_of: int = 0,
) -> Cleaned:
    """Clean a raw frame into interactions, catalog and quarantine, with the row accounting checked.

    Raises:
        AssertionError: a row is unaccounted for (the invariant is checked, not assumed).
    """
    result = cleaning.clean(raw, settings.cleaning, spec.conventions)
    interactions = to_interactions(result.kept)
    catalog = catalog_mod.build_catalog(result.kept, shop_catalog)
    report = build_report(raw, result, interactions, catalog, spec, as_of, rows_after_as_of)
    check_report(report)
    return Cleaned(interactions, catalog, to_quarantine(result.quarantined), report)


def clean_and_publish(
    raw: pd.DataFrame,
    shop_catalog: pd.DataFrame | None,
    spec: SourceSpec,
    out: Path,
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    rows_after_as_of: int = 0,
) -> dict:
    """Clean a raw frame and publish interactions, quarantine, catalog and ``report.json`` under ``out``.

    All outputs are computed and the row accounting is checked before anything is written; the
    partitions of the dates present are then replaced, so a rerun never duplicates rows.

    Returns:
        The report.
    """
    started = time.perf_counter()
    cleaned = clean_frames(raw, shop_catalog, spec, settings, as_of, rows_after_as_of)
    out = Path(out)
    with lake.staging_dir(out) as staging:
        staged_i = lake.stage_partitioned(cleaned.interactions, staging, INTERACTIONS)
        staged_q = lake.stage_partitioned(cleaned.quarantine, staging, QUARANTINE)
        lake.publish_partitions(staged_i, out / INTERACTIONS)
        lake.publish_partitions(staged_q, out / QUARANTINE)
    lake.write_parquet_atomic(cleaned.catalog, out / CATALOG_FILE)
    report = {**cleaned.report, "clean_s": round(time.perf_counter() - started, 2)}
    lake.write_json_atomic(report, out / REPORT_FILE)
    return report


def prepare(spec: SourceSpec, out: Path, settings: Settings, as_of: pd.Timestamp | None = None) -> dict:
    """Read, clean and publish interactions, catalog and quarantine under ``out``; write ``report.json``.

    Args:
        spec: the inputs.
        out: the lake folder (created if missing). Partitions of the dates present are replaced.
        settings: cleaning settings are used.
        as_of: only rows dated on or before this day are available.
    Returns:
        The report (also written to ``out/report.json``).
    Raises:
        InputDataError: bad input; nothing is written.
    """
    started = time.perf_counter()
    raw, shop_catalog, rows_after = ingest(spec, as_of)
    report = clean_and_publish(raw, shop_catalog, spec, out, settings, as_of, rows_after)
    report["elapsed_s"] = round(time.perf_counter() - started, 2)
    lake.write_json_atomic(report, Path(out) / REPORT_FILE)
    return report


@dataclass(frozen=True)
class Prepared:
    """A source read, cleaned and split in memory: what the benchmark, the synth command and bench scripts use."""

    data: SplitData
    catalog: pd.DataFrame
    report: dict  # the cleaning report (every input row accounted for)


def prepare_split(spec: SourceSpec, settings: Settings, protocol: str = "temporal", as_of=None) -> Prepared:
    """Source -> clean -> split in one call, the same way the nightly pipeline does it in its stages.

    Args:
        spec: the inputs.
        settings: cleaning and split settings.
        protocol: ``temporal`` (global time cuts) or ``leave-one-out``.
        as_of: only rows dated on or before this day are available (temporal cuts end there).
    Returns:
        The split (its ``info`` also records ``rows_in`` and ``rows_quarantined``), the catalog and the report.
    Raises:
        InputDataError: bad input.
    """
    as_of = pd.Timestamp(as_of) if as_of is not None else None
    raw, shop_catalog, rows_after = ingest(spec, as_of)
    cleaned = clean_frames(raw, shop_catalog, spec, settings, as_of, rows_after)
    data = build_split(cleaned.interactions, settings.split, protocol, as_of=as_of)
    data.info.update(rows_in=cleaned.report["rows_in"], rows_quarantined=cleaned.report["rows_quarantined"])
    return Prepared(data, cleaned.catalog, cleaned.report)


def prepare_events(spec: SourceSpec, settings: Settings, as_of=None) -> Cleaned:
    """Source -> clean in memory, with no split (the backtest cuts the events itself).

    Raises:
        InputDataError: bad input.
    """
    as_of = pd.Timestamp(as_of) if as_of is not None else None
    raw, shop_catalog, rows_after = ingest(spec, as_of)
    return clean_frames(raw, shop_catalog, spec, settings, as_of, rows_after)


def read_lake_interactions(lake_dir: Path, as_of=None) -> pd.DataFrame:
    """Interactions of a published lake, only those dated on or before ``as_of`` when given.

    Raises:
        InputDataError: the folder holds no lake (no ``interactions/``).
    """
    if not (Path(lake_dir) / INTERACTIONS).is_dir():
        raise InputDataError(
            lake_dir, f"not a lake: no {INTERACTIONS}/ folder (write one with `python -m ml data prepare`)"
        )
    until = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1) if as_of is not None else None
    return lake.read_partitioned(Path(lake_dir) / INTERACTIONS, until=until)


def split_lake(lake_dir: Path, settings: Settings, as_of=None) -> SplitData:
    """The temporal split of a published lake's interactions as of ``as_of`` (what the nightly dataset step saves)."""
    as_of = pd.Timestamp(as_of) if as_of is not None else None
    return build_split(read_lake_interactions(lake_dir, as_of), settings.split, "temporal", as_of=as_of)


def read_lake_catalog(lake_dir: Path) -> pd.DataFrame:
    """The catalog of a published lake.

    Raises:
        InputDataError: the lake has no catalog.
    """
    path = Path(lake_dir) / CATALOG_FILE
    if not path.is_file():
        raise InputDataError(lake_dir, f"not a lake: no {CATALOG_FILE} (write one with `python -m ml data prepare`)")
    return pd.read_parquet(path)
