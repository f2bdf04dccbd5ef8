"""Errors the platform raises for bad input and failed gates, with enough context to act on."""

from __future__ import annotations


class InputDataError(ValueError):
    """Input that cannot be processed: names the file, and where known the column and row.

    Args:
        path: the file that is wrong.
        message: what is wrong with it.
        column: the offending column, if one is to blame.
        row: 0-based index of the data row to blame, if one is (the frame's position; the message counts data
            rows from 1 below the header, as a reader of the file would: ``row=0`` reads "data row 1").
    """

    def __init__(self, path: object, message: str, column: str | None = None, row: int | None = None):
        self.path = str(path)
        self.column = column
        self.row = row
        where = [f"file {self.path}"]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"data row {row + 1}")
        super().__init__(f"{', '.join(where)}: {message}")


class GateFailedError(RuntimeError):
    """A data-quality gate failed; the message lists every failed expectation."""

    def __init__(self, suite: str, failures: list[str], report_path: str | None = None):
        self.suite = suite
        self.failures = failures
        self.report_path = report_path
        lines = [f"quality gate {suite!r} failed ({len(failures)} expectation(s)):"]
        lines += [f"  - {f}" for f in failures]
        if report_path:
            lines.append(f"  validation result: {report_path}")
        super().__init__("\n".join(lines))


class SettingsError(ValueError):
    """Settings that cannot be used: an unreadable settings file, or a value of the wrong type or range.

    The message names where the value came from when it is known (the file) and each offending key.
    """
