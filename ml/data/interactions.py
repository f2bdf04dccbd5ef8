"""Integer-indexed interactions: the one in-memory format every model and metric consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

USER_IDX = "user_idx"
ITEM_IDX = "item_idx"
TS = "ts"  # int64: nanoseconds since epoch, or any integer order
W = "weight"
CONTEXT = "context_only"  # optional bool column: an event that is read as history but is never a training target


@dataclass(frozen=True)
class Interactions:
    """Interactions over a fixed universe of ``n_users`` users and ``n_items`` items.

    ``frame`` has columns ``user_idx`` (int32), ``item_idx`` (int32), ``ts`` (int64) and
    ``weight`` (float32); one row per event, in no particular order. An optional bool column
    ``context_only`` marks events that models read as history but never learn to predict (prepended
    synthetic pseudo-history); a frame without it has none.
    """

    frame: pd.DataFrame
    n_users: int
    n_items: int

    @classmethod
    def from_arrays(
        cls, users, items, ts=None, weight=None, context=None, *, n_users: int, n_items: int
    ) -> Interactions:
        """Build from parallel arrays.

        Args:
            users, items: integer indices (< n_users, < n_items).
            ts: integer timestamps or order (default: position).
            weight: confidence per event (default 1.0).
            context: ``context_only`` flag per event (default: no such column).
            n_users, n_items: size of the universe.
        Returns:
            Interactions.
        """
        users = np.asarray(users, dtype=np.int32)
        items = np.asarray(items, dtype=np.int32)
        ts = np.arange(len(users), dtype=np.int64) if ts is None else np.asarray(ts, dtype=np.int64)
        weight = np.ones(len(users), np.float32) if weight is None else np.asarray(weight, np.float32)
        if len(users) and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
            raise ValueError("user or item index outside the universe")
        frame = pd.DataFrame({USER_IDX: users, ITEM_IDX: items, TS: ts, W: weight})
        if context is not None:
            frame[CONTEXT] = np.asarray(context, dtype=bool)
        return cls(frame, n_users, n_items)

    def __len__(self) -> int:
        return len(self.frame)

    def csr(self, binary: bool = False) -> sp.csr_matrix:
        """User x item matrix of summed weights (or 1/0 when ``binary``)."""
        data = np.ones(len(self.frame), np.float32) if binary else self.frame[W].to_numpy(np.float32)
        m = sp.csr_matrix(
            (data, (self.frame[USER_IDX].to_numpy(), self.frame[ITEM_IDX].to_numpy())),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def sequences(self, with_times: bool = False) -> list[np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
        """Each user's items in chronological order (ties keep input order); empty for no events.

        With ``with_times``, also each user's timestamps, position by position (equal times: one basket).
        """
        seqs, ts, _ = self._ordered()
        return (seqs, ts) if with_times else seqs

    def context_masks(self) -> list[np.ndarray] | None:
        """Per user, position by position as in :meth:`sequences`, True where the event is context only.

        None when no event is (the frame has no ``context_only`` column, or it is all False).
        """
        _, _, context = self._ordered()
        return context

    def _ordered(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
        f = self.frame.sort_values([USER_IDX, TS], kind="stable")
        users = f[USER_IDX].to_numpy()
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))

        def split(values: np.ndarray) -> list[np.ndarray]:
            return [values[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

        context = None
        if CONTEXT in f and f[CONTEXT].fillna(False).astype(bool).any():
            context = split(f[CONTEXT].fillna(False).to_numpy(bool))
        return split(f[ITEM_IDX].to_numpy()), split(f[TS].to_numpy()), context

    def users(self) -> np.ndarray:
        """Sorted distinct user indices that have at least one event."""
        return np.unique(self.frame[USER_IDX].to_numpy())

    def concat(self, other: Interactions) -> Interactions:
        """Union of two event sets over the same universe."""
        if (self.n_users, self.n_items) != (other.n_users, other.n_items):
            raise ValueError("cannot concatenate interactions over different universes")
        frame = pd.concat([self.frame, other.frame], ignore_index=True)
        if CONTEXT in frame:
            frame[CONTEXT] = frame[CONTEXT].fillna(False).astype(bool)
        return Interactions(frame, self.n_users, self.n_items)

    def select_users(self, users: np.ndarray) -> Interactions:
        """Only the events of the given user indices."""
        mask = np.isin(self.frame[USER_IDX].to_numpy(), users)
        return Interactions(self.frame[mask].reset_index(drop=True), self.n_users, self.n_items)
