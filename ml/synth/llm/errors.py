"""Errors of the synthesis generators."""

from __future__ import annotations


class GeneratorError(RuntimeError):
    """The generator could not produce an answer (bad request, misconfiguration, missing model)."""


class GeneratorUnavailableError(GeneratorError):
    """The generator's server could not be reached or kept failing after every retry.

    Args:
        url: the endpoint that failed.
        attempts: how many attempts were made.
        cause: the last error seen (connection error, timeout, HTTP status).
    """

    def __init__(self, url: str, attempts: int, cause: str):
        self.url = url
        self.attempts = attempts
        self.cause = cause
        super().__init__(f"generator at {url} unavailable after {attempts} attempt(s): {cause}")
