"""Data-quality gates: validate a DataFrame against a Great Expectations suite and stop on failure.

Suites live in ``expectations/<name>.json`` in GX's own serialized form (``name``, ``meta``,
``expectations`` of ``type``/``kwargs``/``meta``). Run-time values (row-count bounds, as-of dates)
are GX suite parameters (``{"$PARAMETER": "min_rows"}``), declared with their type in the suite's
``meta.parameters`` and supplied per run.

Each run uses an ephemeral GX context whose expectation and validation-result stores are folders
under ``settings.paths.quality/gx`` (no ``great_expectations.yml``), so Data Docs under
``quality/data_docs`` keep every suite and past run while each build renders only the new pages.
A flat copy of each result is written to ``quality/results/<suite>/<run_name>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

from ml.config import Settings
from ml.errors import GateFailedError

log = logging.getLogger(__name__)

DOCS_SITE = "local_site"
_PARAM_KEY = "$PARAMETER"


@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate run.

    Attributes:
        suite: suite name.
        success: True when every expectation passed.
        statistics: GX statistics (evaluated/successful/unsuccessful expectations, success_percent).
        result_path: the validation result JSON written for this run.
        docs_path: Data Docs ``index.html`` (None if building the docs failed).
        failures: one line per failed expectation (empty on success).
    """

    suite: str
    success: bool
    statistics: dict[str, Any]
    result_path: Path
    docs_path: Path | None
    failures: list[str] = field(default_factory=list)


def row_count_bounds(previous: int | None, tolerance: float = 0.5) -> dict[str, int | None]:
    """Turn the previous run's row count into ``min_rows``/``max_rows`` suite parameters.

    Args:
        previous: row count of the previous run or partition; None (or 0) when there is none.
        tolerance: allowed relative change, e.g. 0.5 accepts 50 %..150 % of ``previous``.
    Returns:
        ``{"min_rows": int, "max_rows": int | None}``; without a previous count the bounds are
        loose (at least one row, no maximum).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if not previous:
        return {"min_rows": 1, "max_rows": None}
    return {
        "min_rows": max(1, math.floor(previous * (1 - tolerance))),
        "max_rows": math.ceil(previous * (1 + tolerance)),
    }


def load_suite(suite_name: str, settings: Settings) -> dict[str, Any]:
    """Read ``<settings.paths.expectations>/<suite_name>.json``.

    Args:
        suite_name: file stem of the suite.
        settings: platform settings (for the expectations folder).
    Returns:
        The serialized suite as a dict.
    """
    path = Path(settings.paths.expectations) / f"{suite_name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no expectation suite {suite_name!r} at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def suite_parameters(suite: Mapping[str, Any]) -> set[str]:
    """Names of all ``$PARAMETER`` references in a serialized suite.

    Args:
        suite: serialized suite (dict form).
    Returns:
        The set of parameter names the suite needs at run time.
    """
    names: set[str] = set()
    for expectation in suite.get("expectations", []):
        for value in expectation.get("kwargs", {}).values():
            if isinstance(value, Mapping) and _PARAM_KEY in value:
                names.add(value[_PARAM_KEY])
    return names


def run_gate(
    suite_name: str,
    df: pd.DataFrame,
    settings: Settings,
    params: dict[str, Any] | None = None,
    run_name: str | None = None,
    *,
    suite: Mapping[str, Any] | None = None,
    raise_on_failure: bool = True,
) -> GateResult:
    """Validate ``df`` against a suite, record the result and Data Docs, and fail loudly.

    Args:
        suite_name: suite to load from ``expectations/<suite_name>.json``.
        df: the frame to validate (not modified).
        settings: platform settings (expectations folder, ``paths.quality``, ``cleaning.max_quantity``).
        params: suite parameter values, e.g. ``{"as_of": ..., **row_count_bounds(prev, 0.5)}``;
            ``max_quantity`` defaults to ``settings.cleaning.max_quantity``. Parameters declared
            ``datetime`` in the suite's ``meta.parameters`` are converted with ``pd.Timestamp``.
        run_name: file name of the result (default: UTC time, ``YYYYMMDDTHHMMSSZ``).
        suite: a serialized suite to use instead of the file (its name must be ``suite_name``).
        raise_on_failure: raise :class:`GateFailedError` when an expectation fails (default).
    Returns:
        GateResult with success, statistics and the paths written.
    Raises:
        GateFailedError: an expectation failed (message names type, column and observed value).
        ValueError: a suite parameter has no value.
    """
    spec = dict(suite) if suite is not None else load_suite(suite_name, settings)
    if spec.get("name") != suite_name:
        raise ValueError(f"suite is named {spec.get('name')!r}, expected {suite_name!r}")
    values = _resolve_params(spec, params, settings)

    now = dt.datetime.now(dt.UTC)
    run_name = _safe_name(run_name or now.strftime("%Y%m%dT%H%M%SZ"))
    quality = Path(settings.paths.quality)
    ctx = _context(quality)
    gx_suite = ctx.suites.add_or_update(gx.ExpectationSuite(**_suite_kwargs(spec)))
    batch = (
        ctx.data_sources.add_pandas("pandas")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}-{run_name}", data=batch, suite=gx_suite)
    )
    run_id = RunIdentifier(run_name=run_name, run_time=now)
    result = definition.run(batch_parameters={"dataframe": df}, expectation_parameters=values, run_id=run_id)

    result_path = quality / "results" / suite_name / f"{run_name}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result.to_json_dict(), indent=2, default=str), encoding="utf-8")
    docs_path = _build_docs(ctx, suite_name, run_id, quality / "data_docs")

    failures = [_describe(r) for r in result.results if not r.success]
    gate = GateResult(suite_name, bool(result.success), dict(result.statistics), result_path, docs_path, failures)
    if not gate.success:
        if raise_on_failure:
            raise GateFailedError(suite_name, failures, str(result_path))
        log.warning("quality gate %s failed (not raised): %s", suite_name, "; ".join(failures))
    return gate


def _context(quality: Path):
    """Ephemeral GX context with folder-backed suite/result stores and a local Data Docs site."""
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    for store, folder in (
        (defaults.expectations_store_name, "expectations"),
        (defaults.validation_results_store_name, "validations"),
    ):
        defaults.stores[store]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(quality / "gx" / folder),
        }
    docs_site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(quality / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        data_docs_sites={DOCS_SITE: docs_site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _build_docs(ctx, suite_name: str, run_id: RunIdentifier, site_dir: Path) -> Path | None:
    """Render this run's validation page and the suite page, then rebuild the index."""
    keys = [
        k
        for k in ctx.validation_results_store.list_keys()
        if k.expectation_suite_identifier.name == suite_name and k.run_id == run_id
    ]
    try:
        ctx.build_data_docs(
            site_names=[DOCS_SITE], resource_identifiers=[ExpectationSuiteIdentifier(name=suite_name), *keys]
        )
    except Exception:  # docs are a report: a rendering bug must not decide the gate
        log.exception("building Data Docs for suite %s failed", suite_name)
        return None
    return site_dir / "index.html"


def _suite_kwargs(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``gx.ExpectationSuite`` from a serialized suite.

    Data Docs in GX 1.x render an expectation's top-level ``notes``, not ``meta.notes``, so the
    meta notes are copied there (the JSON files keep them in ``meta``).
    """
    kwargs = {k: spec[k] for k in ("name", "meta", "notes") if k in spec}
    kwargs["expectations"] = [
        {**e, "notes": e.get("notes") or e.get("meta", {}).get("notes")} for e in spec.get("expectations", [])
    ]
    return kwargs


def _resolve_params(spec: Mapping[str, Any], params: dict[str, Any] | None, settings: Settings) -> dict[str, Any]:
    """Defaults from settings, then the caller's values; datetime parameters become Timestamps."""
    needed = suite_parameters(spec)
    values: dict[str, Any] = {"max_quantity": settings.cleaning.max_quantity} if "max_quantity" in needed else {}
    values.update(params or {})
    missing = sorted(needed - values.keys())
    if missing:
        raise ValueError(f"suite {spec.get('name')!r} needs parameter(s) {missing}")
    declared = spec.get("meta", {}).get("parameters", {})
    for name, info in declared.items():
        if info.get("type") == "datetime" and values.get(name) is not None:
            ts = pd.Timestamp(values[name])
            values[name] = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
    return values


def _describe(r) -> str:
    """One line for a failed expectation: type, column(s), bounds and what was observed."""
    cfg = r.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    target = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    res = r.result or {}
    if "unexpected_count" in res:
        observed = f"{res['unexpected_count']} unexpected of {res.get('element_count')} rows"
        sample = res.get("partial_unexpected_list") or []
        if sample and not cfg.type.endswith("not_be_null"):
            observed += f", e.g. {sample[:5]!r}"
    elif "observed_value" in res:
        observed = f"observed {res['observed_value']!r}"
        mismatched = (res.get("details") or {}).get("mismatched") or {}
        if mismatched.get("missing"):
            observed += f", missing {mismatched['missing']!r}"
    else:
        observed = "error: " + (_exception_message(r.exception_info) or "no result")
    return f"{cfg.type}({target}): {observed}"


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX reports exceptions flat or nested per metric; return the first message."""
    if not info:
        return None
    if info.get("raised_exception"):
        return info.get("exception_message")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return value.get("exception_message")
    return None


def _safe_name(name: str) -> str:
    """A run name usable as a file name (Airflow run ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
