"""Hybrid recommender: a weighted fusion of other recommenders' rankings or scores."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ml.data.interactions import Interactions
from ml.models.base import HistoryCache, Recommender

RRF_K = 60  # the usual reciprocal-rank-fusion constant (Cormack et al., 2009)
TOP_M = 200  # ranks below this contribute nothing to RRF


def rrf_contribution(
    scores: np.ndarray, top_m: int = TOP_M, k: int = RRF_K, exclude: sp.csr_matrix | None = None
) -> np.ndarray:
    """Dense ``1 / (k + rank)`` for each row's top ``top_m`` items (rank 1 = best), 0 elsewhere.

    ``exclude`` (binary CSR, one row per score row): items left out of the ranking (they get 0 and do not
    push the others down).
    """
    from ml.eval.ranking import top_n

    ids, _ = top_n(scores, top_m, exclude=exclude)
    out = np.zeros(scores.shape, np.float32)
    rows, ranks = np.nonzero(ids >= 0)
    out[rows, ids[rows, ranks]] = 1.0 / (k + ranks + 1)
    return out


@dataclass(frozen=True)
class NewProductSlot:
    """One rank of a fused list kept for a new product the user has not bought.

    Fusion's weights are shared by all users, so a member that is right only about new products (the
    newest-products control, content-kNN, synthetic buyers of new products) gets weight 0 and new
    products never reach a list. The slot gives the best new product of ``member``'s list rank
    ``position`` (1 = first), pushing the fused list's item there and below down by one; where the
    product already ranks better, nothing moves, and a user for whom ``member`` scores no new product
    (all -inf) keeps the fused list.

    Attributes:
        member: the fusion member whose scores choose the product (its weight in the sum may be 0).
        items: boolean mask over the item universe of the products that count as new (e.g. at most 5
            buyers in the training data), fixed when the fusion is built.
        position: the rank the product takes.
    """

    member: str
    items: np.ndarray
    position: int = 10

    def __post_init__(self):
        if self.position < 1:
            raise ValueError(f"the slot's position must be >= 1, got {self.position}")

    def place(self, fused: np.ndarray, member_scores: np.ndarray, seen: sp.csr_matrix) -> None:
        """Lift, in place, each row's best new unseen product of ``member_scores`` to rank ``position`` in ``fused``."""
        from ml.eval.ranking import top_n

        candidates = np.array(member_scores, dtype=np.float32, copy=True)
        candidates[:, ~np.asarray(self.items, bool)] = -np.inf
        rows, cols = seen.nonzero()
        candidates[rows, cols] = -np.inf
        best, _ = top_n(candidates, 1)
        users = np.flatnonzero(best[:, 0] >= 0)
        if not len(users):
            return
        _, ranked = top_n(fused[users], self.position, exclude=seen[users])
        floor = ranked[:, self.position - 1]  # the score now at the slot's rank (-inf: the list is shorter)
        items = best[users, 0]
        lifted = np.where(np.isfinite(floor), np.nextafter(floor, np.float32(np.inf)), fused[users, items])
        fused[users, items] = np.maximum(fused[users, items], lifted)

    def to_json(self) -> dict:
        return {"member": self.member, "position": self.position}


def normalize_scores(scores: np.ndarray, how: str = "minmax") -> np.ndarray:
    """Per-row normalization: "minmax" to [0, 1] or "z" (zero mean, unit std); -inf/NaN become the row minimum."""
    s = np.array(scores, dtype=np.float32, copy=True)
    finite = np.isfinite(s)
    lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    s = np.where(finite, s, lo)
    if how == "minmax":
        span = s.max(axis=1, keepdims=True) - lo
        return np.divide(s - lo, span, out=np.zeros_like(s), where=span > 0)
    if how == "z":
        std = s.std(axis=1, keepdims=True)
        return np.divide(s - s.mean(axis=1, keepdims=True), std, out=np.zeros_like(s), where=std > 0)
    raise ValueError(f"unknown normalization {how!r}")


class Fusion(Recommender):
    """Weighted combination of fitted member models, itself a Recommender.

    Args:
        members: name -> Recommender.
        weights: name -> weight (default 1.0 each); a member with weight 0 is not scored.
        method: "rrf": sum of ``w / (60 + rank)`` over each member's top 200 (rank before history
            filtering); "score": sum of ``w * normalized score`` with per-user ``normalization``.
        normalization: "minmax" or "z" (method "score" only).
        members_fitted: False (default): ``fit`` fits every member on its data; True: the members
            are already fitted and ``fit`` leaves them alone (then Fusion needs no ``fit`` call).
        rank_unseen: rank each member's list without the items in the user's ``history`` before fusing,
            for a list that hides them (the discover view): fuses the lists as they would be shown, so a
            member whose top is the user's own purchases (re-buy) is not pushed down by their number.
            ``fit_weights`` sets it.
        slot: a new-product slot (:class:`NewProductSlot`) for a list that hides the user's purchases: the
            best new product of its member's list takes that rank of the fused list (or keeps a better one).
    """

    def __init__(
        self,
        members: Mapping[str, Recommender],
        weights: Mapping[str, float] | None = None,
        method: str = "rrf",
        normalization: str = "minmax",
        members_fitted: bool = False,
        top_m: int = TOP_M,
        rrf_k: int = RRF_K,
        rank_unseen: bool = False,
        slot: NewProductSlot | None = None,
    ):
        if method not in ("rrf", "score"):
            raise ValueError(f"method must be 'rrf' or 'score', got {method!r}")
        self.members = dict(members)
        self.weights = (
            {name: 1.0 for name in self.members} if weights is None else {n: float(w) for n, w in weights.items()}
        )
        unknown = set(self.weights) - set(self.members)
        if unknown:
            raise ValueError(f"weights for unknown members: {sorted(unknown)}")
        self.method, self.normalization = method, normalization
        self.members_fitted = members_fitted
        self.top_m, self.rrf_k = top_m, rrf_k
        self.rank_unseen = rank_unseen
        if slot is not None and slot.member not in self.members:
            raise ValueError(f"the new-product slot's member {slot.member!r} is not a fusion member")
        self.slot = slot
        self.name = "fusion"
        self._seen = HistoryCache()

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Fusion:
        """Fit every member on ``train`` unless ``members_fitted`` (weights are set by ``fit_weights``)."""
        if not self.members_fitted:
            for member in self.members.values():
                member.fit(train, valid)
            self.members_fitted = True
        return self

    def _contribution(
        self, member: Recommender, users: np.ndarray, history: Interactions, exclude: sp.csr_matrix | None
    ) -> np.ndarray:
        scores = member.score(users, history)
        if self.method == "rrf":
            return rrf_contribution(scores, self.top_m, self.rrf_k, exclude)
        if exclude is not None:
            scores = np.array(scores, dtype=np.float32, copy=True)
            rows, cols = exclude.nonzero()
            scores[rows, cols] = -np.inf
        return normalize_scores(scores, self.normalization)

    def _seen_by(self, users: np.ndarray, history: Interactions) -> sp.csr_matrix:
        return self._seen.get(history, lambda h: h.csr(binary=True))[np.asarray(users, dtype=np.int64)]

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Weighted sum of the members' contributions, ``(len(users), n_items)`` float32 (then the slot's product)."""
        total = None
        exclude = self._seen_by(users, history) if self.rank_unseen else None
        for name, member in self.members.items():
            w = self.weights.get(name, 0.0)
            if w == 0.0:
                continue
            part = w * self._contribution(member, users, history, exclude)
            total = part if total is None else total + part
        if total is None:
            raise ValueError("every fusion weight is zero")
        total = total.astype(np.float32, copy=False)
        if self.slot is not None:
            member = self.members[self.slot.member]
            self.slot.place(total, member.score(users, history), self._seen_by(users, history))
        return total

    def fit_weights(
        self,
        valid_users: np.ndarray,
        history: Interactions,
        truth: sp.csr_matrix,
        grid: Mapping[str, Iterable[float]] | Iterable[Mapping[str, float]],
        k: int = 10,
        filter_already_liked_items: bool = True,
        rank_unseen: bool | None = None,
    ) -> dict[str, float]:
        """Pick the weights with the best mean NDCG@k on validation and keep them.

        Args:
            valid_users: users to evaluate (with non-empty truth).
            history: events known before the validation period (e.g. train).
            truth: binary CSR over the user universe of the validation events.
            grid: either name -> candidate weights (their Cartesian product is searched) or an
                explicit list of weight dicts. All-zero combinations are skipped.
            k: NDCG cut-off.
            filter_already_liked_items: as in ``recommend``.
            rank_unseen: sets ``rank_unseen`` (None: as ``filter_already_liked_items``), so that the weights
                are chosen, and later applied, on the same lists.
        Returns:
            the chosen weights (also stored in ``self.weights``); ``self.weight_search`` keeps every
            candidate's NDCG.
        """
        from ml.eval.metrics import ndcg_at_k
        from ml.eval.ranking import top_n

        if isinstance(grid, Mapping):
            names = list(grid)
            candidates = [dict(zip(names, values)) for values in itertools.product(*(list(grid[n]) for n in names))]
        else:
            candidates = [dict(c) for c in grid]
        candidates = [c for c in candidates if any(v != 0 for v in c.values())]
        if not candidates:
            raise ValueError("empty weight grid")
        users = np.asarray(valid_users, dtype=np.int64)
        truth = sp.csr_matrix(truth)
        self.rank_unseen = bool(filter_already_liked_items if rank_unseen is None else rank_unseen)
        seen = history.csr(binary=True) if filter_already_liked_items or self.rank_unseen else None
        names = sorted({n for c in candidates for n, v in c.items() if v != 0})
        sums = np.zeros(len(candidates))
        for start in range(0, len(users), self.batch_users):
            batch = users[start : start + self.batch_users]
            exclude = seen[batch] if filter_already_liked_items else None
            unseen = seen[batch] if self.rank_unseen else None
            parts = {n: self._contribution(self.members[n], batch, history, unseen) for n in names}
            for i, cand in enumerate(candidates):
                fused = sum(w * parts[n] for n, w in cand.items() if w != 0)
                ids, _ = top_n(fused, k, exclude=exclude)
                sums[i] += np.nansum(ndcg_at_k(ids, truth[batch], k))
        best = int(np.argmax(sums))
        n_eval = max(int((np.diff(truth[users].indptr) > 0).sum()), 1)
        self.weight_search = [{"weights": c, f"ndcg@{k}": s / n_eval} for c, s in zip(candidates, sums)]
        self.weights = {n: float(candidates[best].get(n, 0.0)) for n in self.members}
        return self.weights

    def _save(self, path: Path) -> None:
        for name, member in self.members.items():
            member.save(path / "members" / name)
        meta = {
            "members": list(self.members),
            "weights": self.weights,
            "method": self.method,
            "normalization": self.normalization,
            "top_m": self.top_m,
            "rrf_k": self.rrf_k,
            "rank_unseen": self.rank_unseen,
            "slot": None if self.slot is None else self.slot.to_json(),
        }
        if self.slot is not None:
            np.save(path / "slot_items.npy", np.asarray(self.slot.items, bool))
        (path / "fusion.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def _load(cls, path: Path) -> Fusion:
        meta = json.loads((path / "fusion.json").read_text())
        members = {name: Recommender.load(path / "members" / name) for name in meta["members"]}
        slot = meta.get("slot")
        if slot is not None:
            slot = NewProductSlot(items=np.load(path / "slot_items.npy"), **slot)
        return cls(
            members,
            meta["weights"],
            meta["method"],
            meta["normalization"],
            members_fitted=True,
            top_m=meta["top_m"],
            rrf_k=meta["rrf_k"],
            rank_unseen=meta.get("rank_unseen", False),  # saved before it existed: ranked with the history
            slot=slot,
        )
