"""The one place that builds a generator from settings."""

from __future__ import annotations

from pathlib import Path

from ml.config import Settings
from ml.synth.llm.base import Generator


def make_generator(settings: Settings, backend: str | None = None, model_dir: Path | None = None) -> Generator:
    """The generator configured in ``settings.synth`` (or the named ``backend``).

    Args:
        settings: platform settings.
        backend: ``embedded`` or ``openai``; None: ``settings.synth.backend``.
        model_dir: embedded only: a model folder to load instead of the configured one (e.g. an adapted copy).
    Returns:
        A ready generator (the embedded model is converted and cached on first use).
    """
    kind = backend or settings.synth.backend
    if kind == "embedded":
        from ml.synth.llm.embedded import EmbeddedGenerator

        return EmbeddedGenerator.from_settings(settings, model_dir=model_dir)
    if kind == "openai":
        from ml.synth.llm.openai_http import OpenAIGenerator

        return OpenAIGenerator.from_settings(settings)
    raise ValueError(f"unknown synthesis backend {kind!r} (embedded or openai)")
