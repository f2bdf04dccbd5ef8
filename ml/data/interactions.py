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


@dataclass(frozen=True)
class Interactions:
    """Interactions over a fixed universe of ``n_users`` users and ``n_items`` items.

    ``frame`` has columns ``user_idx`` (int32), ``item_idx`` (int32), ``ts`` (int64) and
    ``weight`` (float32); one row per event, in no particular order.
    """

    frame: pd.DataFrame
    n_users: int
    n_items: int

    @classmethod
    def from_arrays(cls, users, items, ts=None, weight=None, *, n_users: int, n_items: int) -> Interactions:
        """Build from parallel arrays.

        Args:
            users, items: integer indices (< n_users, < n_items).
            ts: integer timestamps or order (default: position).
            weight: confidence per event (default 1.0).
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
        f = self.frame.sort_values([USER_IDX, TS], kind="stable")
        users = f[USER_IDX].to_numpy()
        items = f[ITEM_IDX].to_numpy()
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        seqs = [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]
        if not with_times:
            return seqs
        ts = f[TS].to_numpy()
        return seqs, [ts[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    def users(self) -> np.ndarray:
        """Sorted distinct user indices that have at least one event."""
        return np.unique(self.frame[USER_IDX].to_numpy())

    def concat(self, other: Interactions) -> Interactions:
        """Union of two event sets over the same universe."""
        if (self.n_users, self.n_items) != (other.n_users, other.n_items):
            raise ValueError("cannot concatenate interactions over different universes")
        return Interactions(pd.concat([self.frame, other.frame], ignore_index=True), self.n_users, self.n_items)

    def select_users(self, users: np.ndarray) -> Interactions:
        """Only the events of the given user indices."""
        mask = np.isin(self.frame[USER_IDX].to_numpy(), users)
        return Interactions(self.frame[mask].reset_index(drop=True), self.n_users, self.n_items)
