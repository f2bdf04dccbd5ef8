"""How well a generator chooses real next purchases: choice accuracy on held-out real data.

For users with training history and validation purchases, the candidate set is built exactly as
for synthesis (from training data only); users whose validation items are among the candidates
are scored, and the method's top picks are compared with what they really bought next. Baselines:
the candidate generator's own order (co-purchase first), training popularity, and random order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml import columns as C
from ml.synth.candidates import CandidateIndex
from ml.synth.expansion import MAX_HISTORY_TITLES, PriorCache, UserTask, last_titles, score_tasks
from ml.synth.llm.base import Generator


def held_out_tasks(
    data,
    catalog: pd.DataFrame,
    index: CandidateIndex,
    n_users: int,
    seed: int,
    n_copurchase: int = 10,
    n_text: int = 10,
    max_items: int | None = None,
) -> list[tuple[UserTask, set[str]]]:
    """Tasks whose next order date is the user's first validation day, with the items bought then.

    Args:
        data: the split (history from ``train``, truth from ``valid``).
        catalog: item titles.
        index: candidate index built on ``train``.
        n_users: users to sample (seeded) among those with a hit in their candidates.
        seed: sampling seed.
        max_items: only users with at most this many distinct training items (None: all).
    Returns:
        ``[(task, true_items)]``.
    """
    titles = (
        catalog.drop_duplicates(C.ITEM)
        .set_index(catalog.drop_duplicates(C.ITEM)[C.ITEM].astype(str))[C.TITLE]
        .astype(str)
    )
    train = data.train.astype({C.USER: str, C.ITEM: str})
    valid = data.valid.astype({C.USER: str, C.ITEM: str})
    first_day = valid.groupby(C.USER)[C.TIMESTAMP].min()
    users = np.sort(first_day.index.intersection(pd.Index(pd.unique(train[C.USER]))).to_numpy())
    if max_items is not None:
        n = train.drop_duplicates([C.USER, C.ITEM]).groupby(C.USER).size()
        users = users[n.reindex(users).to_numpy() <= max_items]
    out = []
    for user in np.random.default_rng(seed).permutation(users):
        if len(out) >= n_users:
            break
        rows = train[train[C.USER] == user].sort_values(C.TIMESTAMP, kind="stable")
        day = first_day[user]
        truth = set(valid.loc[(valid[C.USER] == user) & (valid[C.TIMESTAMP].dt.normalize() == day.normalize()), C.ITEM])
        history = rows[C.ITEM].drop_duplicates().tolist()
        cands = index.candidates(history, n_copurchase, n_text)
        if not truth & {c.item_id for c in cands}:
            continue
        known = rows[rows[C.ITEM].isin(titles.index)]
        orders = [
            {"date": d, "titles": titles.reindex(g[C.ITEM].drop_duplicates()).tolist()}
            for d, g in known.groupby(known[C.TIMESTAMP].dt.strftime("%Y-%m-%d"), sort=True)
        ]
        out.append((UserTask(str(user), last_titles(orders, MAX_HISTORY_TITLES), history, day, cands), truth))
    return out


def choice_accuracy(
    tasks: list[tuple[UserTask, set[str]]],
    generator: Generator | None,
    index: CandidateIndex,
    k: int = 3,
    seed: int = 0,
) -> dict:
    """hit@k (a true item among the top k) and MRR of the first true item, per method.

    Args:
        tasks: from :func:`held_out_tasks`.
        generator: a scoring generator (None: baselines only).
        index: the candidate index (popularity baseline).
        k: the cut-off of hit@k.
        seed: the random baseline's seed.
    Returns:
        ``{"users": n, "candidates": mean size, "true_in_candidates": mean, method: {"hit@k", "mrr"}}``;
        methods: ``pmi`` and ``conditional`` (when a scoring generator is given), ``candidate_order``,
        ``popularity``, ``random``.
    """
    rng = np.random.default_rng(seed)
    scores: dict[str, list[np.ndarray]] = {"candidate_order": [], "popularity": [], "random": []}
    if generator is not None:
        prior = PriorCache(generator)
        pmi = score_tasks([t for t, _ in tasks], generator, prior)
        scores["pmi"] = pmi
        scores["conditional"] = [p + prior.get(t.candidates) for p, (t, _) in zip(pmi, tasks)]
    for task, _ in tasks:
        n = len(task.candidates)
        scores["candidate_order"].append(-np.arange(n, dtype=float))
        scores["popularity"].append(index.popularity_of([c.item_id for c in task.candidates]).astype(float))
        scores["random"].append(rng.random(n))
    report: dict = {
        "users": len(tasks),
        "k": k,
        "candidates": round(float(np.mean([len(t.candidates) for t, _ in tasks])), 2) if tasks else None,
        "true_in_candidates": round(
            float(np.mean([len(truth & {c.item_id for c in t.candidates}) for t, truth in tasks])), 2
        )
        if tasks
        else None,
    }
    for method, values in scores.items():
        hits, rr = [], []
        for (task, truth), s in zip(tasks, values):
            y = np.array([c.item_id in truth for c in task.candidates])
            order = np.lexsort((np.arange(len(s)), -s))
            hits.append(y[order[:k]].any())
            rr.append(1.0 / (1 + int(np.flatnonzero(y[order])[0])))
        report[method] = {
            f"hit@{k}": round(float(np.mean(hits)), 4) if hits else None,
            "mrr": round(float(np.mean(rr)), 4) if rr else None,
        }
    return report
