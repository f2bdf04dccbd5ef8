"""Where synthetic events go: the synthesis strategies behind one interface, and their controls.

Every strategy reads one training window only (a cut's ``train``, never what lies after the cut) and
returns synthetic events over the same universe, each with a confidence in (0, 1]:

* ``pseudo_prior`` -- purchases **before** a short history's first order (ASReP's idea, without
  its leak): a reverse-order first-order model of the shop's own training sequences (which items
  customers bought in the basket before the one that held item X) proposes them; with a language
  model they are re-ranked by how likely the model finds each title as an *earlier* order of this
  customer. They are prepended (dated before the first order) and marked ``context_only``: the
  sequence models read them as history and never learn to predict them; ALS takes them at reduced
  confidence.
* ``item_side`` -- customers for cold products (few buyers before the cut): the buyers of the
  products whose titles are nearest in text (MiniLM), weighted by that similarity (LLMRec's
  item-side idea, grounded in the catalog); with a language model, more candidates are taken and
  the model keeps those for whom it finds the product's title the likeliest next order. Dated just
  before the cut.
* ``appended`` -- the previous method's placement: likely next purchases after the last order
  (forward transitions, optionally re-ranked by the language model), dated before the cut; they are
  training targets.
* ``*_pruned`` -- any of the above without the share of its events that an ALS teacher, trained on
  real + those events, fits worst (LLMRec's loss-based pruning, ``ml.synth.denoise``).
* ``random`` -- the control: the same users, the same counts, dates and flags as the arm it mimics,
  with items drawn uniformly from the catalog the shop knew at the cut.

The one list of arms (:data:`ml.synth.arms.ARMS`) names each strategy with and without the language model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import columns as C
from ml.config import StrategySettings
from ml.data.interactions import CONTEXT, ITEM_IDX, TS, USER_IDX, Interactions, W
from ml.models.base import Recommender
from ml.synth.arms import EVENTLESS, Arm, arm_spec
from ml.synth.denoise import loss_pruned
from ml.synth.events import CONFIDENCE, empty_events

MINUTE = 60 * 10**9  # ns


@dataclass
class StrategyInputs:
    """What a strategy may read at one cut: the training window and what the shop knew then.

    Attributes:
        train: the training window's events (indexed over the cut's universe).
        cut_ns: the cut instant (ns); every synthetic event is dated strictly before it.
        buyers_before: distinct buyers of each item before the cut.
        item_text: ``(n_items, d)`` unit-norm title vectors (rows of zeros: no title); None = no text.
        titles: each item's title (for the language model); None = none.
    """

    train: Interactions
    cut_ns: int
    buyers_before: np.ndarray
    item_text: np.ndarray | None = None
    titles: np.ndarray | None = None

    @classmethod
    def at_cut(cls, data, vectors: pd.DataFrame | None, catalog: pd.DataFrame | None) -> StrategyInputs:
        """The inputs at a rolling-backtest cut (:class:`ml.data.rolling.CutData`).

        Args:
            vectors: unit-norm text vectors indexed by item id (items without one get zeros); None = no text.
        """
        item_text = None if vectors is None else vectors.reindex(data.item_ids).fillna(0.0).to_numpy(np.float32)
        return cls(data.train, data.cut.value, data.buyers_before, item_text, item_titles(catalog, data.item_ids))


def item_titles(catalog: pd.DataFrame | None, item_ids) -> np.ndarray | None:
    """Each item's catalog title in ``item_ids`` order ("" where it has none): :attr:`StrategyInputs.titles`.

    Returns:
        An object array, or None when there is no catalog or it has no titles.
    """
    if catalog is None or C.TITLE not in catalog:
        return None
    cat = catalog.drop_duplicates(C.ITEM)
    titles = pd.Series(cat[C.TITLE].astype(str).to_numpy(), index=cat[C.ITEM].astype(str).to_numpy())
    return titles.reindex(np.asarray(item_ids, dtype=str)).fillna("").to_numpy(object)


def _events(users, items, ts, confidence, context: bool, weight: float) -> pd.DataFrame:
    confidence = np.asarray(confidence, np.float32)
    return pd.DataFrame(
        {
            USER_IDX: np.asarray(users, np.int32),
            ITEM_IDX: np.asarray(items, np.int32),
            TS: np.asarray(ts, np.int64),
            W: np.float32(weight) * confidence,
            CONTEXT: np.full(len(confidence), context, bool),
            CONFIDENCE: confidence,
        }
    )


def baskets(train: Interactions) -> pd.DataFrame:
    """One row per (user, basket, item): baskets are a user's events with equal timestamps, numbered in time order."""
    f = train.frame[[USER_IDX, ITEM_IDX, TS]].drop_duplicates().sort_values([USER_IDX, TS, ITEM_IDX], kind="stable")
    new = np.r_[True, (f[USER_IDX].to_numpy()[1:] != f[USER_IDX].to_numpy()[:-1]) | (np.diff(f[TS].to_numpy()) != 0)]
    return f.assign(basket=np.cumsum(new) - 1).reset_index(drop=True)


def transitions(train: Interactions) -> sp.csr_matrix:
    """``T[a, b]``: how often item ``b`` is in the basket right after one holding ``a`` (same customer).

    Each pair of consecutive baskets contributes ``1 / |earlier basket|`` per (a, b), so a large basket
    does not outweigh many small ones. The reverse model is ``T.T`` (what came before ``b``).
    """
    b = baskets(train)
    first = b.groupby("basket")[USER_IDX].first().to_numpy()
    same_user_next = np.r_[first[1:] == first[:-1], False]  # basket k is followed by k+1 of the same customer
    size = np.bincount(b["basket"].to_numpy())
    earlier = b[same_user_next[b["basket"].to_numpy()]]
    later = b.assign(basket=b["basket"] - 1)
    pairs = earlier.merge(later, on="basket", suffixes=("_a", "_b"))
    values = 1.0 / size[pairs["basket"].to_numpy()]
    n = train.n_items
    t = sp.csr_matrix((values, (pairs[f"{ITEM_IDX}_a"], pairs[f"{ITEM_IDX}_b"])), shape=(n, n), dtype=np.float64)
    t.sum_duplicates()
    return t


def short_users(train: Interactions, max_items: int) -> np.ndarray:
    """Users with 1..``max_items`` distinct training items (sorted indices)."""
    distinct = train.frame[[USER_IDX, ITEM_IDX]].drop_duplicates()
    n = np.bincount(distinct[USER_IDX].to_numpy(), minlength=train.n_users)
    return np.flatnonzero((n >= 1) & (n <= max_items))


def _row_normalised(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(np.where(sums > 0, 1.0 / np.maximum(sums, 1e-12), 0.0)) @ m)


@dataclass
class CandidateLists:
    """Per served user, candidate items best first with their collaborative scores, and where they go."""

    users: np.ndarray
    items: list[np.ndarray]
    scores: list[np.ndarray]
    anchor_ns: np.ndarray  # the first order (prior) or last order (appended) of each user


def basket_candidates(inputs: StrategyInputs, opts: StrategySettings, direction: str) -> CandidateLists:
    """Candidates for each short user: ``prior`` (reverse transitions from the first basket) or ``next``
    (forward transitions from the last basket), the user's own items excluded, best first, at most
    ``opts.candidates`` per user; users without a candidate are left out."""
    if direction not in ("prior", "next"):
        raise ValueError(f"direction must be prior or next, got {direction!r}")
    train = inputs.train
    t = transitions(train)
    model = _row_normalised(t.T.tocsr() if direction == "prior" else t)  # row b: P(a | b) over a
    b = baskets(train)
    users = short_users(train, opts.short_max_items)
    b = b[np.isin(b[USER_IDX].to_numpy(), users)]
    pick = b.groupby(USER_IDX)["basket"].transform("min" if direction == "prior" else "max")
    anchor = b[b["basket"] == pick]
    own = sp.csr_matrix(
        (np.ones(len(b)), (b[USER_IDX].to_numpy(), b[ITEM_IDX].to_numpy())), shape=(train.n_users, train.n_items)
    )
    seed = sp.csr_matrix(
        (np.ones(len(anchor)), (anchor[USER_IDX].to_numpy(), anchor[ITEM_IDX].to_numpy())),
        shape=(train.n_users, train.n_items),
    )
    seed.data[:] = 1.0
    scores = (seed @ model).tocsr()
    anchor_ts = anchor.groupby(USER_IDX)[TS].first()
    out_users, out_items, out_scores, out_anchor = [], [], [], []
    for u in users:
        row = scores.getrow(u)
        items, values = row.indices, row.data
        keep = (values > 0) & (own.getrow(u).toarray().ravel()[items] == 0)
        items, values = items[keep], values[keep]
        if not len(items):
            continue
        order = np.lexsort((items, -values))[: opts.candidates]
        out_users.append(u)
        out_items.append(items[order].astype(np.int64))
        out_scores.append(values[order])
        out_anchor.append(int(anchor_ts.loc[u]))
    return CandidateLists(np.asarray(out_users, np.int64), out_items, out_scores, np.asarray(out_anchor, np.int64))


Reranker = Callable[[CandidateLists, StrategyInputs, str], list[np.ndarray]]


def place(
    lists: CandidateLists, opts: StrategySettings, direction: str, cut_ns: int, rerank: list[np.ndarray] | None = None
) -> pd.DataFrame:
    """The top ``opts.per_user`` candidates of each user as dated events.

    ``prior``: one minute apart before the first order, the most likely nearest to it, context only.
    ``next``: one minute apart after the last order (the most likely first), dropped where that
    would reach the cut. Confidence: the collaborative score over the user's best; with ``rerank``
    (the language model's scores, same shape) the order follows it and the confidence is the
    product of both (each scaled to (0, 1]).
    """
    rows_u, rows_i, rows_t, rows_c = [], [], [], []
    for n, u in enumerate(lists.users):
        items, collab = lists.items[n], lists.scores[n] / lists.scores[n].max()
        conf = collab
        if rerank is not None:
            lm = np.asarray(rerank[n], np.float64)
            order = np.lexsort((np.arange(len(lm)), -lm))
            lm_conf = np.exp(lm - lm.max())  # the best candidate 1, others by their likelihood ratio
            items, conf = items[order], (collab * lm_conf)[order]
        items, conf = items[: opts.per_user], conf[: opts.per_user]
        steps = np.arange(1, len(items) + 1, dtype=np.int64) * MINUTE
        ts = lists.anchor_ns[n] - steps if direction == "prior" else lists.anchor_ns[n] + steps
        ok = ts < cut_ns
        rows_u.append(np.full(int(ok.sum()), u))
        rows_i.append(items[ok])
        rows_t.append(ts[ok])
        rows_c.append(np.maximum(conf[ok], 1e-3))
    if not rows_u:
        return empty_events()
    return _events(
        np.concatenate(rows_u),
        np.concatenate(rows_i),
        np.concatenate(rows_t),
        np.concatenate(rows_c),
        context=direction == "prior",
        weight=opts.weight,
    )


def pseudo_prior(inputs: StrategyInputs, opts: StrategySettings, rerank: Reranker | None = None) -> pd.DataFrame:
    """Prepended pseudo-history for short customers (see the module doc)."""
    lists = basket_candidates(inputs, opts, "prior")
    scores = rerank(lists, inputs, "prior") if rerank is not None and len(lists.users) else None
    return place(lists, opts, "prior", inputs.cut_ns, scores)


def appended(inputs: StrategyInputs, opts: StrategySettings, rerank: Reranker | None = None) -> pd.DataFrame:
    """Appended next purchases for short customers (the previous placement, kept as an arm)."""
    lists = basket_candidates(inputs, opts, "next")
    scores = rerank(lists, inputs, "next") if rerank is not None and len(lists.users) else None
    return place(lists, opts, "next", inputs.cut_ns, scores)


def cold_item_candidates(
    inputs: StrategyInputs, opts: StrategySettings, per_item: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Candidate buyers of each cold product, best first: ``(items, buyers per item, their scores)``.

    Cold: 1..``cold_max_buyers`` buyers before the cut (an item the shop knew with no buyer has no
    sale to anchor it and gets none either, so as not to invent demand). Each cold item with a title
    takes its ``text_neighbours`` most similar warm items (cosine > 0); a candidate buyer scores the
    summed similarity of the neighbours they bought; the best ``per_item`` who do not own the item yet
    are its candidates (ties by user index). Items without a candidate are left out.
    """
    none: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]] = (np.empty(0, np.int64), [], [])
    if inputs.item_text is None:
        return none
    train = inputs.train
    vectors = np.asarray(inputs.item_text, np.float32)
    has_text = np.linalg.norm(vectors, axis=1) > 0
    owned = train.csr(binary=True)
    buyers_now = np.diff(owned.tocsc().indptr)
    cold = np.flatnonzero((inputs.buyers_before >= 1) & (inputs.buyers_before <= opts.cold_max_buyers) & has_text)
    warm = np.flatnonzero((inputs.buyers_before > opts.cold_max_buyers) & has_text & (buyers_now > 0))
    if not len(cold) or not len(warm):
        return none
    by_item = owned.T.tocsr()  # item -> buyers in the window
    items, buyers, scores = [], [], []
    for start in range(0, len(cold), 512):
        block = cold[start : start + 512]
        sims = vectors[block] @ vectors[warm].T
        k = min(opts.text_neighbours, len(warm))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for r, item in enumerate(block):
            neigh, w = warm[top[r]], sims[r, top[r]]
            w = np.where(w > 0, w, 0.0)
            if not w.any():
                continue
            score = np.asarray(by_item[neigh].T @ w).ravel()
            score[by_item[item].indices] = 0.0
            cand = np.flatnonzero(score > 0)
            if not len(cand):
                continue
            best = cand[np.lexsort((cand, -score[cand]))][:per_item]
            items.append(int(item))
            buyers.append(best.astype(np.int64))
            scores.append(score[best])
    return np.asarray(items, np.int64), buyers, scores


def item_side(inputs: StrategyInputs, opts: StrategySettings, rerank: Reranker | None = None) -> pd.DataFrame:
    """Likely buyers of cold products among the buyers of their text-nearest products (see the module doc).

    Without ``rerank``: each cold product's best ``buyers_per_item`` candidates
    (:func:`cold_item_candidates`), confidence = score over the item's best. With it (the language
    model, LLMRec's choice of likely buyers): the best ``buyer_candidates`` are scored by how likely
    the model finds the product's title as each candidate's next order (one prompt per customer holds
    every cold product they are a candidate for), the ``buyers_per_item`` likeliest are kept, and the
    confidence is the text score's share times the likelihood ratio to the item's likeliest buyer.
    Events are dated one minute before the cut.
    """
    per_item = opts.buyers_per_item if rerank is None else max(opts.buyer_candidates, opts.buyers_per_item)
    items, buyers, scores = cold_item_candidates(inputs, opts, per_item)
    if not len(items):
        return empty_events()
    collab = [s / s.max() for s in scores]
    if rerank is None:
        kept_u, kept_i, kept_c = buyers, [np.full(len(b), it) for it, b in zip(items, buyers)], collab
    else:
        lm = _item_lm_scores(items, buyers, inputs, rerank)
        kept_u, kept_i, kept_c = [], [], []
        for it, b, c, s in zip(items, buyers, collab, lm):
            order = np.lexsort((np.arange(len(s)), -s))[: opts.buyers_per_item]
            kept_u.append(b[order])
            kept_i.append(np.full(len(order), it))
            kept_c.append(c[order] * np.exp(s[order] - s.max()))
    users = np.concatenate(kept_u)
    ts = np.full(len(users), inputs.cut_ns - MINUTE, np.int64)
    conf = np.maximum(np.concatenate(kept_c), 1e-3)
    return _events(users, np.concatenate(kept_i), ts, conf, context=False, weight=opts.weight)


def _item_lm_scores(
    items: np.ndarray, buyers: list[np.ndarray], inputs: StrategyInputs, rerank: Reranker
) -> list[np.ndarray]:
    """The language model's score of each (cold item, candidate buyer), shaped like ``buyers``.

    The pairs are regrouped by customer (the re-ranker scores one prompt per customer, with all of
    their candidate items as continuations) and scored as next orders on the cut's date.
    """
    pair_u = np.concatenate(buyers)
    pair_i = np.repeat(items, [len(b) for b in buyers])
    order = np.lexsort((pair_i, pair_u))  # by customer, then item
    users, starts = np.unique(pair_u[order], return_index=True)
    groups = np.split(order, starts[1:])
    lists = CandidateLists(
        users=users.astype(np.int64),
        items=[pair_i[g] for g in groups],
        scores=[np.ones(len(g)) for g in groups],
        anchor_ns=np.full(len(users), inputs.cut_ns - 2 * MINUTE, np.int64),
    )
    scored = rerank(lists, inputs, "next")
    flat = np.empty(len(pair_u), np.float64)
    for g, s in zip(groups, scored):
        flat[g] = np.asarray(s, np.float64)
    bounds = np.cumsum([0] + [len(b) for b in buyers])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def random_like(events: pd.DataFrame, inputs: StrategyInputs, seed: int) -> pd.DataFrame:
    """The random-catalog control of ``events``: same users, dates, flags and weights; items uniform
    over the universe (the catalog known at the cut), never one the user already has."""
    if not len(events):
        return events.copy()
    rng = np.random.default_rng(seed)
    owned = inputs.train.csr(binary=True)
    items = rng.integers(0, inputs.train.n_items, size=len(events))
    users = events[USER_IDX].to_numpy()
    for _ in range(20):  # redraw the few collisions with the user's own items
        clash = np.asarray(owned[users, items]).ravel() > 0
        if not clash.any():
            break
        items[clash] = rng.integers(0, inputs.train.n_items, size=int(clash.sum()))
    return events.assign(**{ITEM_IDX: items.astype(np.int32)})


def synthesize_arm(
    arm: Arm,
    inputs: StrategyInputs,
    opts: StrategySettings,
    made: dict[str, pd.DataFrame],
    rerank: Reranker | None = None,
    seed: int = 0,
    teacher: Callable[[], Recommender] | None = None,
) -> pd.DataFrame:
    """The synthetic events of ``arm`` at one cut.

    Args:
        made: the events of arms already synthesized at this cut, which a random control copies and a
            pruned arm starts from (an arm either needs is synthesized once and added).
        rerank: the language model, for arms that use one.
        teacher: makes the unfitted model that prunes an arm with ``prunes`` (``ml.synth.denoise``).
    Raises:
        ValueError: an arm that needs a language model or a teacher without one, or an unknown strategy.
    """
    if arm.language_model and rerank is None:
        raise ValueError(f"arm {arm.name} needs a language model")
    if arm.share is not None:
        opts = opts.model_copy(update={"per_user": arm.share, "buyers_per_item": arm.share})
    if arm.prunes is not None:
        if teacher is None:
            raise ValueError(f"arm {arm.name} needs a teacher model to prune with")
        if arm.prunes not in made:
            made[arm.prunes] = synthesize_arm(arm_spec(arm.prunes), inputs, opts, made, rerank, seed)
        return loss_pruned(made[arm.prunes], inputs.train, opts.prune_share, teacher)
    lm = rerank if arm.language_model else None
    if arm.strategy in EVENTLESS:
        return empty_events()
    if arm.strategy == "pseudo_prior":
        return pseudo_prior(inputs, opts, lm)
    if arm.strategy == "appended":
        return appended(inputs, opts, lm)
    if arm.strategy == "item_side":
        return item_side(inputs, opts, lm)
    if arm.strategy == "random":
        if arm.mimics not in made:
            made[arm.mimics] = synthesize_arm(arm_spec(arm.mimics), inputs, opts, made, rerank, seed, teacher)
        return random_like(made[arm.mimics], inputs, seed)
    raise ValueError(f"unknown strategy {arm.strategy!r}")
