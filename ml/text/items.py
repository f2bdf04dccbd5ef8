"""Item text: each item's title plus its accepted enrichment, and its sentence vector.

BERT4Rec can add a learned projection of these vectors to its item-id embeddings
(``models.bert4rec.item_text="augment"``), so an item with few purchases still starts from what its words say.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml import columns as C
from ml.text.encoder import TitleEncoder


def item_texts(item_ids: Sequence[str], catalog: pd.DataFrame, enriched: pd.DataFrame | None = None) -> list[str]:
    """One text per item: its catalog title, then category and tags where enrichment was accepted.

    Args:
        item_ids: the model's item vocabulary (index order).
        catalog: item_id, title (items missing from it get an empty title).
        enriched: accepted enrichment (``ml.synth.enrichment.stored_attributes``: item_id, category, tags, status);
            rows whose status is not ``ok`` are ignored.
    Returns:
        Texts aligned with ``item_ids``, e.g. ``"jumbo bag red retrospot | bags | tags: tote, red"``;
        empty for items without a real title (the catalog lists an untitled item under its id).
    """
    titles = catalog.assign(**{C.ITEM: catalog[C.ITEM].astype(str)}).drop_duplicates(C.ITEM).set_index(C.ITEM)[C.TITLE]
    ids = pd.Index([str(i) for i in item_ids])
    titles = titles.reindex(ids).fillna("").astype(str).str.strip()
    texts = titles.where(titles != ids, "").str.lower()
    if enriched is not None and len(enriched):
        ok = enriched[enriched["status"] == "ok"].drop_duplicates(C.ITEM, keep="last")
        ok = ok.set_index(ok[C.ITEM].astype(str))
        extra = ok[C.CATEGORY].astype(str) + ok["tags"].map(
            lambda t: " | tags: " + ", ".join(t) if t is not None and len(t) else ""
        )
        extra = extra.reindex(ids)
        texts = texts.where(extra.isna(), texts + " | " + extra.fillna(""))
    return texts.tolist()


def item_text_vectors(
    item_ids: Sequence[str],
    catalog: pd.DataFrame,
    enriched: pd.DataFrame | None = None,
    encoder: TitleEncoder | None = None,
) -> np.ndarray:
    """Unit-length sentence vectors of :func:`item_texts` (zeros for items without text).

    Args:
        encoder: the text encoder (default: all-MiniLM-L6-v2 on the CPU); loaded only if an item has text.
    Returns:
        float32 ``(len(item_ids), encoder.dim)``.
    """
    encoder = encoder or TitleEncoder()
    texts = item_texts(item_ids, catalog, enriched)
    titled = [i for i, t in enumerate(texts) if t]  # a ratings file has none: the encoder is not even loaded
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    vectors[titled] = encoder.encode([texts[i] for i in titled])
    return vectors
