"""Sparse-user expansion (LLMRec-style): the model picks plausible next purchases among real candidates.

For each user with few training purchases, a prompt is built from their training history (titles
grouped by order date) and a candidate set drawn from the real catalog (co-purchase and
title-embedding neighbours). The synthetic order gets a timestamp after the user's last training
event and strictly before the validation cut, so nothing is synthesized from, or into, the
validation/test period.

* With a scoring backend (the embedded model) each candidate is scored by PMI: its log-likelihood
  as the next order line given the history, minus its log-likelihood given no history (so
  generic, short or common titles are not favoured). The top ``max_per_user`` are proposed;
  every proposal is a real candidate by construction.
* With a generating backend (HTTP) the model answers JSON ``{"choices": [numbers]}``; the answer is
  parsed and validated: an unparseable answer is one ``invalid_answer`` rejection and an entry
  that names no candidate is a ``not_a_candidate`` rejection. Nothing is guessed.

Every proposal becomes one row of a proposals frame; :func:`ml.synth.quality.filter_proposals`
then flags duplicates, over-cap and low-score rows.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from ml import columns as C
from ml.config import Settings
from ml.data.lake import write_parquet_atomic
from ml.synth import prompts
from ml.synth.candidates import Candidate, CandidateIndex
from ml.synth.llm.base import Generator, Prompt, extract_json, score_many

log = logging.getLogger(__name__)

MAX_HISTORY_TITLES = 20  # the most recent titles a prompt shows
CHOICE_SYSTEM = "You recommend products of an online gift shop. You answer with JSON only."
PROPOSAL_COLUMNS = [C.USER, C.ITEM, C.TIMESTAMP, C.SCORE, C.RANK, "origin", "reject_reason"]


@dataclass
class UserTask:
    """Everything needed to synthesize one user's next order."""

    user_id: str
    orders: list[dict]  # [{"date": "YYYY-MM-DD", "titles": [...]}], oldest first
    history: list[str]  # training item ids
    timestamp: pd.Timestamp  # of the synthetic order
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def next_date(self) -> str:
        return self.timestamp.strftime("%Y-%m-%d")


def sparse_users(train: pd.DataFrame, max_items: int) -> np.ndarray:
    """Users with at least one and at most ``max_items`` distinct training items (sorted ids)."""
    n = train.drop_duplicates([C.USER, C.ITEM]).groupby(C.USER).size()
    return np.sort(n.index[n <= max_items].to_numpy().astype(str))


def user_rng(seed: int, user_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the user (not on which other users run)."""
    digest = int.from_bytes(hashlib.sha256(str(user_id).encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def synthetic_timestamp(last: pd.Timestamp, cut: pd.Timestamp, rng: np.random.Generator) -> pd.Timestamp | None:
    """A minute strictly after ``last`` and strictly before ``cut`` (None when there is no such minute)."""
    first = last.floor("min") + pd.Timedelta(minutes=1)
    final = cut.ceil("min") - pd.Timedelta(minutes=1)
    if final < first:
        return None
    span = int((final - first) / pd.Timedelta(minutes=1))
    return first + pd.Timedelta(minutes=int(rng.integers(0, span + 1)))


def plan_users(data, catalog: pd.DataFrame, index: CandidateIndex, settings: Settings) -> tuple[list[UserTask], dict]:
    """Pick the sparse users (seeded sample when ``max_users`` is set) and build their tasks.

    Returns:
        ``(tasks, info)`` with info counting sparse users, sampled users and users skipped (no room
        before the cut, no candidates).
    """
    s = settings.synth
    cut = data.training_cut
    max_items = s.sparse_max_items if s.sparse_max_items is not None else settings.split.sparse_max_items
    train = data.train.assign(**{C.USER: data.train[C.USER].astype(str), C.ITEM: data.train[C.ITEM].astype(str)})
    users = sparse_users(train, max_items)
    info = {"sparse_max_items": max_items, "sparse_users": int(len(users))}
    if s.max_users is not None and len(users) > s.max_users:
        users = np.sort(np.random.default_rng(s.seed).choice(users, size=s.max_users, replace=False))
    info["users_sampled"] = int(len(users))
    titles = (
        catalog.drop_duplicates(C.ITEM)
        .set_index(catalog.drop_duplicates(C.ITEM)[C.ITEM].astype(str))[C.TITLE]
        .astype(str)
    )
    hist = train[train[C.USER].isin(users)].sort_values([C.USER, C.TIMESTAMP, C.ITEM], kind="stable")
    tasks, no_room, no_candidates = [], 0, 0
    for user, rows in hist.groupby(C.USER, sort=True):
        ts = synthetic_timestamp(rows[C.TIMESTAMP].max(), cut, user_rng(s.seed, user))
        if ts is None:
            no_room += 1
            continue
        known = rows[rows[C.ITEM].isin(titles.index)]
        orders = [
            {"date": d, "titles": titles.reindex(g[C.ITEM].drop_duplicates()).tolist()}
            for d, g in known.groupby(known[C.TIMESTAMP].dt.strftime("%Y-%m-%d"), sort=True)
        ]
        orders = last_titles(orders, MAX_HISTORY_TITLES)
        history = rows[C.ITEM].drop_duplicates().tolist()
        cands = index.candidates(history, s.n_copurchase, s.n_text)
        if not cands or not orders:
            no_candidates += 1
            continue
        tasks.append(UserTask(str(user), orders, history, ts, cands))
    info.update(users_no_room_before_cut=no_room, users_no_candidates=no_candidates, users_planned=len(tasks))
    return tasks, info


def last_titles(orders: list[dict], limit: int) -> list[dict]:
    """The most recent orders, trimmed so that at most ``limit`` titles remain (oldest first)."""
    out, left = [], limit
    for order in reversed(orders):
        if left <= 0:
            break
        out.append({"date": order["date"], "titles": order["titles"][-left:]})
        left -= len(out[-1]["titles"])
    return out[::-1]


def continuation(title: str) -> str:
    """How a candidate title is scored: one order line after the prompt's ``<date>:``."""
    return " " + prompts.plain(title) + "\n"


class PriorCache:
    """History-free log-likelihood of each candidate title (the PMI baseline), computed once per title.

    The prior prompt holds no user, history or date, so a title's prior depends only on the model
    and the prompt version. With ``store`` (a Parquet file, see :func:`prior_store`) the scores
    persist across runs: a nightly run only scores titles it has not seen before.

    Args:
        generator: a scoring generator.
        store: the file to read cached scores from and :meth:`save` them to (None: this run only).
        prompt: the history-free template (the next-purchase one, or the earlier-purchase one).
    """

    def __init__(self, generator: Generator, store: Path | None = None, prompt: str = "next_purchase_prior"):
        self.generator = generator
        self.store = store
        self.prefix = prompts.load(prompt).render()
        self._scores: dict[str, float] = {}
        if store is not None and store.exists():
            cached = pd.read_parquet(store)
            self._scores = dict(zip(cached["continuation"], cached[C.SCORE].astype(float)))
        self.loaded = len(self._scores)
        self.computed = 0

    def get(self, candidates: list[Candidate]) -> np.ndarray:
        """Prior scores of ``candidates`` (the missing ones are scored in one call)."""
        return self.of_titles([c.title for c in candidates])

    def of_titles(self, titles: list[str]) -> np.ndarray:
        """Prior scores of ``titles`` as order lines (the missing ones are scored in one call)."""
        texts = [continuation(t) for t in titles]
        missing = [t for t in dict.fromkeys(texts) if t not in self._scores]
        if missing:
            self._scores.update(zip(missing, map(float, self.generator.score(self.prefix, missing))))
            self.computed += len(missing)
        return np.array([self._scores[t] for t in texts])

    def save(self) -> None:
        """Write every known score to ``store`` (atomically; nothing to do without a store or new scores)."""
        if self.store is None or not self.computed:
            return
        write_parquet_atomic(
            pd.DataFrame({"continuation": list(self._scores), C.SCORE: list(self._scores.values())}), self.store
        )

    def stats(self) -> dict:
        """How many prior scores came from the store and how many were computed in this run."""
        return {"prior_cached": self.loaded, "prior_computed": self.computed}


def prior_store(settings: Settings, generator: Generator, prompt: str = "next_purchase_prior") -> Path | None:
    """The prior-score file of this generator and prior prompt under ``<home>/cache/synth_prior`` (None: not cacheable).

    Only generators with a ``fingerprint`` (model weights, dtype, device kind) get a store, so a changed
    or adapted model never reads another model's scores.
    """
    fingerprint = getattr(generator, "fingerprint", None)
    if fingerprint is None:
        return None
    tag = prompts.load(prompt).tag.replace("@", "-v")
    return settings.paths.cache / "synth_prior" / f"{fingerprint}-{tag}.parquet"


def score_prompt(task: UserTask) -> str:
    """The likelihood-scoring prefix of one task."""
    return prompts.load("next_purchase_score").render(orders=task.orders, next_date=task.next_date)


def score_tasks(tasks: list[UserTask], generator: Generator, prior: PriorCache | None) -> list[np.ndarray]:
    """PMI (nats) of each task's candidates; conditional log-likelihood when ``prior`` is None."""
    if prior is not None:
        prior.get([c for t in tasks for c in t.candidates])
    conds = score_many(generator, [(score_prompt(t), [continuation(c.title) for c in t.candidates]) for t in tasks])
    return [cond - prior.get(t.candidates) if prior is not None else cond for t, cond in zip(tasks, conds)]


def propose_by_likelihood(
    tasks: list[UserTask], generator: Generator, n_picks: int, prior: PriorCache | None, group: int = 8
) -> pd.DataFrame:
    """The ``n_picks`` best-scoring candidates of each task, as proposal rows (``group`` tasks scored together)."""
    rows = []
    for start in range(0, len(tasks), group):
        chunk = tasks[start : start + group]
        for task, scores in zip(chunk, score_tasks(chunk, generator, prior)):
            order = np.lexsort((np.arange(len(scores)), -scores))[:n_picks]
            for rank, j in enumerate(order, start=1):
                c = task.candidates[j]
                rows.append((task.user_id, c.item_id, task.timestamp, float(scores[j]), rank, c.origin, None))
    return pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)


class ChoiceAnswer(BaseModel):
    """The structured answer of a generating backend: candidate numbers (or ids), most likely first."""

    model_config = ConfigDict(extra="ignore")
    choices: list[int | str]


def parse_choices(text: str, candidates: list[Candidate]) -> list[Candidate | None]:
    """Map a choice answer onto the candidates; an entry naming no candidate becomes None.

    Entries may be 1-based candidate numbers or candidate item ids.

    Raises:
        ValueError: the answer is not a JSON object with a ``choices`` list.
    """
    try:
        answer = ChoiceAnswer.model_validate(extract_json(text))
    except ValidationError as exc:
        raise ValueError(f"answer does not match the choice schema: {exc.errors()[0]['msg']}") from exc
    by_id = {c.item_id: c for c in candidates}
    out: list[Candidate | None] = []
    for entry in answer.choices:
        if isinstance(entry, int) or (
            isinstance(entry, str) and entry.strip().isdigit() and entry.strip() not in by_id
        ):
            k = int(entry)
            out.append(candidates[k - 1] if 1 <= k <= len(candidates) else None)
        else:
            out.append(by_id.get(str(entry).strip()))
    return out


def choice_prompt(task: UserTask, shown: list[Candidate], n_choices: int) -> Prompt:
    """The structured-choice prompt of one task (candidates in the shown order)."""
    text = prompts.load("next_purchase_choice").render(
        orders=task.orders, next_date=task.next_date, candidates=[c.title for c in shown], n_choices=n_choices
    )
    return Prompt(text, chat=True, system=CHOICE_SYSTEM)


def propose_by_choice(
    tasks: list[UserTask], generator: Generator, n_picks: int, seed: int, max_tokens: int = 48
) -> pd.DataFrame:
    """Ask a generating backend for each task's choices; parse, validate and flag what is invalid.

    Candidates are shown in a seeded shuffled order (no position bias towards co-purchase ones).
    Picks beyond ``n_picks`` are flagged ``over_cap``; HTTP picks score ``1/rank``.
    """
    shown = []
    for task in tasks:
        order = user_rng(seed, task.user_id).permutation(len(task.candidates))
        shown.append([task.candidates[i] for i in order])
    answers = generator.generate([choice_prompt(t, s, n_picks) for t, s in zip(tasks, shown)], max_tokens=max_tokens)
    rows = []
    for task, cands, text in zip(tasks, shown, answers):
        try:
            picks = parse_choices(text, cands)
        except ValueError:
            rows.append((task.user_id, None, task.timestamp, np.nan, 0, None, "invalid_answer"))
            continue
        if not picks:
            rows.append((task.user_id, None, task.timestamp, np.nan, 0, None, "invalid_answer"))
            continue
        for rank, c in enumerate(picks, start=1):
            if c is None:
                rows.append((task.user_id, None, task.timestamp, np.nan, rank, None, "not_a_candidate"))
            else:
                rows.append((task.user_id, c.item_id, task.timestamp, 1.0 / rank, rank, c.origin, None))
    return pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)


def propose(tasks: list[UserTask], generator: Generator, settings: Settings) -> tuple[pd.DataFrame, str, dict]:
    """Proposals for every task with the generator's best method.

    Returns:
        ``(proposals, prompt_version, info)``; info counts cached and computed prior scores (scoring backends).
    """
    s = settings.synth
    if generator.supports_scoring:
        prior = PriorCache(generator, prior_store(settings, generator))
        frame = propose_by_likelihood(tasks, generator, s.max_per_user, prior)
        prior.save()
        return frame, prompts.load("next_purchase_score").tag, prior.stats()
    frame = propose_by_choice(tasks, generator, s.max_per_user, s.seed)
    return frame, prompts.load("next_purchase_choice").tag, {}
