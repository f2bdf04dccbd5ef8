"""Errors the platform raises for bad input and failed gates, with enough context to act on."""

from __future__ import annotations


class InputDataError(ValueError):
    """Input that cannot be processed: names the file, and where known the column and row.

    Args:
        path: the file that is wrong.
        message: what is wrong with it.
        column: the offending column, if one is to blame.
        row: 0-based row number inside the file, if one row is to blame.
    """

    def __init__(self, path: object, message: str, column: str | None = None, row: int | None = None):
        self.path = str(path)
        self.column = column
        self.row = row
        where = [f"file {self.path}"]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
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
