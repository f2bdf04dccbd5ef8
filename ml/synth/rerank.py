"""The language model as a re-ranker of a strategy's catalog-grounded candidates (PMI scoring).

For each served customer the prompt lists their training-window orders (titles by date) and each
candidate title is scored as the next line: an *earlier* order for pseudo-prior candidates (orders
newest first, ``earlier_purchase_score``), the *next* order for appended ones
(``next_purchase_score``). The score is PMI: the title's log-likelihood given the history minus its
log-likelihood given none (cached per title), so short or common titles are not favoured. Only real
candidates are ever scored: nothing the model says becomes an item.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.data.interactions import ITEM_IDX, TS, USER_IDX
from ml.synth import prompts
from ml.synth.expansion import MAX_HISTORY_TITLES, PriorCache, continuation, last_titles, prior_store
from ml.synth.llm.base import Generator, score_many

PROMPTS = {"prior": ("earlier_purchase_score", "earlier_purchase_prior"), "next": ("next_purchase_score", None)}


class LanguageModelReranker:
    """Scores :class:`ml.synth.strategies.CandidateLists` with a scoring generator (see the module doc).

    Args:
        generator: a generator that ``supports_scoring`` (the embedded model).
        settings: where the title priors are cached (``paths.cache``).
        group: customers whose prompts are scored in one call.
    """

    def __init__(self, generator: Generator, settings: Settings, group: int = 8):
        if not getattr(generator, "supports_scoring", False):
            raise ValueError(f"{generator.name} cannot score text; the re-ranker needs a scoring generator")
        self.generator, self.group = generator, group
        self.priors = {
            "prior": PriorCache(
                generator, prior_store(settings, generator, "earlier_purchase_prior"), "earlier_purchase_prior"
            ),
            "next": PriorCache(generator, prior_store(settings, generator)),
        }
        self.prompt_tags = {d: prompts.load(p[0]).tag for d, p in PROMPTS.items()}

    def __call__(self, lists, inputs, direction: str) -> list[np.ndarray]:
        """PMI (nats) of every candidate of every customer in ``lists``, in the lists' order."""
        if inputs.titles is None:
            raise ValueError("the language-model re-ranker needs item titles")
        titles = np.asarray(inputs.titles, dtype=object)
        orders = customer_orders(inputs.train.frame, lists.users, titles, newest_first=direction == "prior")
        template = prompts.load(PROMPTS[direction][0])
        prior = self.priors[direction]
        out: list[np.ndarray] = []
        for start in range(0, len(lists.users), self.group):
            chunk = range(start, min(start + self.group, len(lists.users)))
            requests = []
            for n in chunk:
                u = int(lists.users[n])
                values = {"orders": orders[u]}
                if direction == "next":
                    values["next_date"] = pd.Timestamp(int(lists.anchor_ns[n]) + 60 * 10**9).strftime("%Y-%m-%d")
                requests.append((template.render(**values), [continuation(titles[i]) for i in lists.items[n]]))
            conds = score_many(self.generator, requests)
            for n, cond in zip(chunk, conds):
                out.append(np.asarray(cond, np.float64) - prior.of_titles([titles[i] for i in lists.items[n]]))
        prior.save()
        return out


def customer_orders(frame: pd.DataFrame, users, titles: np.ndarray, newest_first: bool) -> dict[int, list[dict]]:
    """Each customer's orders as ``[{"date", "titles"}]`` (at most the last ``MAX_HISTORY_TITLES`` titles)."""
    f = frame[np.isin(frame[USER_IDX].to_numpy(), np.asarray(users))]
    f = f.sort_values([USER_IDX, TS, ITEM_IDX], kind="stable")
    dates = pd.to_datetime(f[TS].to_numpy()).strftime("%Y-%m-%d")
    out: dict[int, list[dict]] = {}
    for u, rows in f.assign(date=dates).groupby(USER_IDX, sort=True):
        orders = [
            {"date": d, "titles": [titles[i] for i in dict.fromkeys(g[ITEM_IDX].tolist())]}
            for d, g in rows.groupby("date", sort=True)
        ]
        orders = last_titles(orders, MAX_HISTORY_TITLES)
        out[int(u)] = orders[::-1] if newest_first else orders
    return out
