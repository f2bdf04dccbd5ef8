"""The generator contract every backend implements, and the factory that picks one from settings.

Two operations, both batch-shaped so a backend can parallelize them:

* ``score(prefix, continuations)``: log-likelihood of each continuation given the prefix (only
  backends with ``supports_scoring``; the embedded model does it with one shared prefill);
* ``generate(prompts, max_tokens)``: one text answer per prompt, greedy unless configured.

Model output is data: callers parse and validate it, and never execute it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ml.config import Settings


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


def make_generator(settings: Settings, backend: str | None = None) -> Generator:
    """The generator configured in ``settings.synth`` (or the named ``backend``).

    Args:
        settings: platform settings.
        backend: ``embedded`` or ``openai``; None: ``settings.synth.backend``.
    Returns:
        A ready generator (the embedded model is converted and cached on first use).
    """
    kind = backend or settings.synth.backend
    s = settings.synth
    if kind == "embedded":
        from ml.synth.embedded import EmbeddedGenerator
        from ml.synth.model_cache import ensure_embedded_model

        return EmbeddedGenerator(ensure_embedded_model(settings), device=s.device, dtype=s.dtype, threads=s.torch_threads,
                                 score_tokens=s.score_tokens, gen_batch=s.gen_batch, seed=s.seed)
    if kind == "openai":
        from ml.synth.openai_http import OpenAIGenerator

        return OpenAIGenerator.from_settings(settings)
    raise ValueError(f"unknown synthesis backend {kind!r} (embedded or openai)")
