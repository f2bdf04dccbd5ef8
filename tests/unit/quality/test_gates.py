"""Data-quality gates: the suites load in GX, pass on clean frames and stop on each kind of corruption."""

from __future__ import annotations

import json
from collections.abc import Callable

import great_expectations as gx
import pandas as pd
import pytest

from ml import columns as C
from ml.config import Settings
from ml.errors import GateFailedError
from ml.quality.gates import GateResult, load_suite, row_count_bounds, run_gate, suite_parameters

SUITES = ["raw_events", "interactions", "catalog"]
AS_OF = pd.Timestamp("2011-12-10")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings().with_overrides({"paths": {"home": str(tmp_path)}})


def raw_frame() -> pd.DataFrame:
    """Raw lines as the reader normalizes them: a guest line and a return are legitimate here."""
    return pd.DataFrame(
        {
            C.SOURCE: ["a.xlsx"] * 4 + ["b.xlsx"] * 2,
            C.SOURCE_ROW: [0, 1, 2, 3, 0, 1],
            C.ORDER: ["536365", "536365", "C536379", None, "581587", "581587"],
            C.USER: ["17850", "17850", "14527", None, "12680", "12680"],
            C.ITEM: ["85123A", "71053", "D", "22633", "22613", "22899"],
            C.TITLE: [
                "WHITE HANGING HEART",
                "WHITE METAL LANTERN",
                "Discount",
                None,
                "PACK OF 20 NAPKINS",
                "DOLLY GIRL APRON",
            ],
            C.QUANTITY: [6, 6, -1, 2, 12, 6],
            C.PRICE: [2.55, 3.39, 27.5, 1.85, 0.85, 2.10],
            C.TIMESTAMP: pd.to_datetime(
                [
                    "2010-12-01 08:26",
                    "2010-12-01 08:26",
                    "2010-12-01 09:41",
                    "2010-12-01 11:52",
                    "2011-12-09 12:50",
                    "2011-12-09 12:50",
                ]
            ).astype("datetime64[ns]"),
            "country": ["United Kingdom", "United Kingdom", "United Kingdom", None, "France", "France"],
        }
    )


def interactions_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.USER: ["17850", "17850", "12680", "12680", "14527"],
            C.ITEM: ["85123A", "71053", "22613", "22899", "85123A"],
            C.TIMESTAMP: pd.to_datetime(
                ["2010-12-01 08:26", "2010-12-01 08:26", "2011-12-09 12:50", "2011-12-09 12:50", "2011-11-30 10:00"]
            ).astype("datetime64[ns]"),
            C.QUANTITY: [6, 6, 12, 6, 1],
            C.PRICE: [2.55, 3.39, 0.85, 2.10, 2.95],
            C.WEIGHT: [1.9, 1.9, 2.6, 1.9, 1.0],
            C.ORDER: ["536365", "536365", "581587", "581587", "579001"],
            C.SOURCE: ["a.xlsx", "a.xlsx", "b.xlsx", "b.xlsx", "b.xlsx"],
            C.SOURCE_ROW: [0, 1, 0, 1, 7],
        }
    )


def catalog_frame() -> pd.DataFrame:
    ts = lambda *v: pd.to_datetime(list(v)).astype("datetime64[ns]")  # noqa: E731
    return pd.DataFrame(
        {
            C.ITEM: ["85123A", "71053", "22613"],
            C.TITLE: ["WHITE HANGING HEART", "WHITE METAL LANTERN", "PACK OF 20 NAPKINS"],
            C.PRICE: [2.55, 3.39, 0.85],
            C.FIRST_SEEN: ts("2010-12-01", "2010-12-01", "2011-01-05"),
            C.LAST_SEEN: ts("2011-12-09", "2010-12-01", "2011-12-09"),
            C.POPULARITY: [120, 3, 0],
            C.N_LINES: [300, 3, 1],
        }
    )


FRAMES: dict[str, Callable[[], pd.DataFrame]] = {
    "raw_events": raw_frame,
    "interactions": interactions_frame,
    "catalog": catalog_frame,
}


def params_for(suite: str, n_rows: int) -> dict:
    return {
        "raw_events": {"as_of": AS_OF, **row_count_bounds(n_rows, 0.5)},
        "interactions": {"fresh_after": AS_OF - pd.Timedelta(days=7), **row_count_bounds(n_rows, 0.5)},
        "catalog": {},
    }[suite]


# --- suite files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUITES)
def test_suite_file_loads_in_gx_with_notes_and_declared_parameters(name):
    spec = load_suite(name, Settings())
    suite = gx.ExpectationSuite(**spec)  # GX's own deserialization
    assert suite.name == name and len(suite.expectations) == len(spec["expectations"]) > 0
    for exp in spec["expectations"]:
        assert set(exp) <= {"type", "kwargs", "meta", "notes", "id", "severity", "rendered_content"}
        assert len(exp["meta"].get("notes", "")) > 20, f"{exp['type']} has no meta.notes"
    assert suite_parameters(spec) == set(spec["meta"]["parameters"])


def test_row_count_bounds():
    assert row_count_bounds(None, 0.2) == {"min_rows": 1, "max_rows": None}
    assert row_count_bounds(0, 0.2) == {"min_rows": 1, "max_rows": None}
    assert row_count_bounds(1000, 0.2) == {"min_rows": 800, "max_rows": 1200}
    assert row_count_bounds(3, 0.9) == {"min_rows": 1, "max_rows": 6}
    with pytest.raises(ValueError):
        row_count_bounds(10, -0.1)


# --- passing gates ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUITES)
def test_gate_passes_on_valid_frame_and_writes_result_and_docs(name, settings):
    df = FRAMES[name]()
    res = run_gate(name, df, settings, params_for(name, len(df)), run_name="manual__2011-12-10T00:00:00+00:00")
    assert isinstance(res, GateResult) and res.success and not res.failures
    assert res.statistics["unsuccessful_expectations"] == 0
    assert res.result_path == settings.paths.quality / "results" / name / "manual__2011-12-10T00_00_00_00_00.json"
    assert json.loads(res.result_path.read_text())["success"] is True
    assert res.docs_path == settings.paths.quality / "data_docs" / "index.html" and res.docs_path.is_file()
    assert (settings.paths.quality / "data_docs" / "expectations" / f"{name}.html").is_file()


def test_docs_index_keeps_other_suites_and_earlier_runs(settings):
    run_gate("catalog", catalog_frame(), settings, run_name="r1")
    df = interactions_frame()
    res = run_gate("interactions", df, settings, params_for("interactions", len(df)), run_name="r2")
    index = res.docs_path.read_text()
    assert "validations/catalog/r1/" in index and "validations/interactions/r2/" in index


# --- failing gates ------------------------------------------------------------------------------


def _set(col, idx, value):
    def mutate(df):
        df[col] = df[col].astype(object) if value is None else df[col]
        df.loc[idx, col] = value
        return df

    return mutate


def _duplicate_row(df):
    return pd.concat([df, df.iloc[[0]]], ignore_index=True)


CORRUPTIONS = [
    # (suite, corruption, extra params, failed expectation type, column named in the message)
    ("interactions", _set(C.USER, 1, None), {}, "expect_column_values_to_not_be_null", "user_id"),
    ("interactions", _duplicate_row, {}, "expect_compound_columns_to_be_unique", "source_row"),
    ("interactions", _set(C.PRICE, 2, -1.0), {}, "expect_column_values_to_be_between", "price"),
    ("interactions", _set(C.QUANTITY, 0, 6000), {}, "expect_column_values_to_be_between", "quantity"),
    ("interactions", lambda df: df, {"max_quantity": 10}, "expect_column_values_to_be_between", "quantity"),
    (
        "interactions",
        lambda df: df,
        {"fresh_after": AS_OF + pd.Timedelta(days=1)},
        "expect_column_max_to_be_between",
        "timestamp",
    ),
    (
        "interactions",
        lambda df: df,
        {"min_rows": 100, "max_rows": 200},
        "expect_table_row_count_to_be_between",
        "observed 5",
    ),
    ("interactions", lambda df: df.drop(columns=[C.WEIGHT]), {}, "expect_table_columns_to_match_set", "weight"),
    ("raw_events", _duplicate_row, {}, "expect_compound_columns_to_be_unique", "source"),
    ("raw_events", _set(C.ITEM, 3, None), {}, "expect_column_values_to_not_be_null", "item_id"),
    (
        "raw_events",
        lambda df: df,
        {"as_of": pd.Timestamp("2011-06-01")},
        "expect_column_values_to_be_between",
        "timestamp",
    ),
    ("raw_events", lambda df: df.iloc[:0], {"min_rows": 0}, "expect_table_row_count_to_be_between", "observed 0"),
    ("catalog", _duplicate_row, {}, "expect_column_values_to_be_unique", "item_id"),
    (
        "catalog",
        _set(C.FIRST_SEEN, 1, pd.Timestamp("2012-01-01")),
        {},
        "expect_column_pair_values_a_to_be_greater_than_b",
        "first_seen",
    ),
    ("catalog", _set(C.PRICE, 0, 0.0), {}, "expect_column_values_to_be_between", "price"),
]


@pytest.mark.parametrize(("name", "corrupt", "extra", "exp_type", "needle"), CORRUPTIONS)
def test_gate_fails_on_corrupted_data(name, corrupt, extra, exp_type, needle, settings):
    clean = FRAMES[name]()
    df = corrupt(clean.copy())
    with pytest.raises(GateFailedError) as err:
        run_gate(name, df, settings, {**params_for(name, len(clean)), **extra}, run_name="bad")
    message = str(err.value)
    failed = [line for line in err.value.failures if line.startswith(exp_type)]
    assert failed and any(needle in line for line in failed), message
    assert err.value.suite == name and err.value.report_path in message
    result = json.loads((settings.paths.quality / "results" / name / "bad.json").read_text())
    assert result["success"] is False
    assert (settings.paths.quality / "data_docs" / "index.html").is_file()


def test_failure_message_counts_unexpected_rows(settings):
    df = interactions_frame()
    df[C.USER] = df[C.USER].astype(object)
    df.loc[[0, 3], C.USER] = None
    with pytest.raises(GateFailedError, match=r"column='user_id'\): 2 unexpected of 5 rows"):
        run_gate("interactions", df, settings, params_for("interactions", 5))


def test_no_raise_mode_reports_failures(settings):
    df = _set(C.PRICE, 0, -2.0)(catalog_frame())
    res = run_gate("catalog", df, settings, raise_on_failure=False)
    assert not res.success and res.statistics["unsuccessful_expectations"] == 1
    assert "price" in res.failures[0]


def test_missing_parameter_is_a_clear_error(settings):
    with pytest.raises(ValueError, match="fresh_after"):
        run_gate("interactions", interactions_frame(), settings, {"min_rows": 1, "max_rows": None})


def test_suite_from_dict(settings):
    suite = {
        "name": "synthetic_smoke",
        "meta": {"parameters": {"n": {"type": "int"}}},
        "expectations": [
            {
                "type": "expect_table_row_count_to_equal",
                "kwargs": {"value": {"$PARAMETER": "n"}},
                "meta": {"notes": "size"},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "user_id"}, "meta": {"notes": "ids"}},
        ],
    }
    df = interactions_frame()
    assert run_gate("synthetic_smoke", df, settings, {"n": 5}, suite=suite).success
    with pytest.raises(GateFailedError, match="expect_table_row_count_to_equal"):
        run_gate("synthetic_smoke", df, settings, {"n": 4}, suite=suite)
    with pytest.raises(ValueError, match="named"):
        run_gate("other", df, settings, {"n": 5}, suite=suite)
