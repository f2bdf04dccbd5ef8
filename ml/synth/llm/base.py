"""The generator contract every backend implements, and the parsing of its answers.

Two operations, both batch-shaped so a backend can parallelize them:

* ``score(prefix, continuations)``: log-likelihood of each continuation given the prefix (only
  backends with ``supports_scoring``; the embedded model does it with one shared prefill);
* ``generate(prompts, max_tokens)``: one text answer per prompt, greedy unless configured.

Model output is data: callers parse and validate it, and never execute it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Prompt:
    """One request: a chat user message (``chat=True``) or raw text to continue (``chat=False``)."""

    text: str
    chat: bool = True
    system: str | None = None


@runtime_checkable
class Generator(Protocol):
    """What the synthesis tasks need from a language model."""

    name: str  # lineage: "embedded:<model>" or "openai:<model>"
    supports_scoring: bool

    def score(self, prefix: str, continuations: Sequence[str]) -> np.ndarray:
        """Summed log-likelihood (nats) of each continuation after ``prefix``."""
        ...

    def generate(self, prompts: Sequence[Prompt], max_tokens: int, stop: Sequence[str] = ()) -> list[str]:
        """One answer per prompt, cut at the first ``stop`` string."""
        ...

    def close(self) -> None:
        """Release connections or memory."""
        ...


def score_many(generator: Generator, requests: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
    """Score several (prefix, continuations) requests, packed together where the backend can."""
    packed = getattr(generator, "score_many", None)
    if packed is not None:
        return packed(requests)
    return [generator.score(prefix, conts) for prefix, conts in requests]


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest stop string."""
    end = len(text)
    for s in stop:
        i = text.find(s)
        if i >= 0:
            end = min(end, i)
    return text[:end]


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def extract_json(text: str) -> dict:
    """The first JSON object in a model answer (code fences and surrounding prose allowed).

    Raises:
        ValueError: no JSON object could be decoded.
    """
    body = _FENCE.sub("", text.strip())
    start = body.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(body[start:])
            if isinstance(obj, dict):
                return obj
        except json.JSONDecodeError:
            pass
        start = body.find("{", start + 1)
    raise ValueError(f"no JSON object in answer {text[:80]!r}")
