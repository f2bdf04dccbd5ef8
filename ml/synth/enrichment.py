"""Item attribute enrichment: a category from the fixed list, a few tags and a one-line description.

Answers are parsed into :class:`ItemAttributes` (pydantic), checked against the title with
:func:`ml.synth.categories.contradiction` and against the few-shot prompt's own examples (a description
copied from one is rejected as ``copied_example``). An answer that does not parse, breaks the schema or
contradicts its title is kept as a row with a rejection ``status`` and empty attributes: counted,
never guessed or repaired.

* Scoring backends (embedded): the category is chosen by calibrated likelihood among the fixed
  list (the few-shot prompt's "Category:" continuation, minus its score for a content-free title),
  then tags and description are decoded greedily and parsed line by line.
* Generating backends (HTTP): one JSON answer ``{"category", "tags", "description"}``.

Enrichment is bounded (``synth.enrich_max_items`` per run, most popular items first) and cached in
``<home>/synth/item_attributes.parquet`` per (item_id, title, prompt_version, generator), so a
nightly run only enriches items it has not seen. The budget counts *new* items: until the whole
catalog is cached (the report's ``not_enriched_yet`` is 0) every run still enriches up to that many
items beside the cached ones (``attempted`` next to ``from_cache``). Items the cache answers never
reach the model; a run with nothing new makes no model call at all.
"""

from __future__ import annotations

import logging
import re
import time
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from ml import columns as C
from ml.config import Settings
from ml.data.lake import write_parquet_atomic
from ml.synth import prompts
from ml.synth.categories import CATEGORIES, contradiction, words
from ml.synth.llm.base import Generator, Prompt, extract_json

log = logging.getLogger(__name__)

Category = Literal[CATEGORIES]  # type: ignore[valid-type]
Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=2, max_length=30, pattern=r"^[a-z0-9][a-z0-9 '&-]*$"
    ),
]
KEY = [C.ITEM, C.TITLE, "prompt_version", "generator"]
ATTRIBUTE_COLUMNS = [C.ITEM, C.TITLE, C.CATEGORY, "tags", C.DESCRIPTION, "status", "prompt_version", "generator"]
JSON_SYSTEM = "You write product data for an online gift shop catalogue. You answer with JSON only."
NEUTRAL_TITLE = "n/a"  # content-free title whose category scores calibrate the likelihood choice


class ItemAttributes(BaseModel):
    """The validated attributes of one item."""

    model_config = ConfigDict(extra="forbid")
    category: Category
    tags: list[Tag] = Field(min_length=1, max_length=5)
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=10, max_length=200, pattern=r"^[^\n\r]*$")
    ]

    @field_validator("tags")
    @classmethod
    def _distinct(cls, tags: list[str]) -> list[str]:
        """Repeated tags carry nothing: keep the first of each (a normalization, not a guess)."""
        return list(dict.fromkeys(tags))


def parse_fewshot(category: str, text: str) -> ItemAttributes:
    """Parse the embedded model's continuation after ``Tags:`` (``tags\\nDescription: ...``).

    Raises:
        ValueError: missing lines or schema violations.
    """
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2 or not lines[1].lower().startswith("description:"):
        raise ValueError("expected a tags line and a 'Description:' line")
    tags = [t.strip() for t in lines[0].split(",") if t.strip()]
    description = lines[1].split(":", 1)[1].strip()
    try:
        return ItemAttributes(category=category, tags=tags, description=description)
    except ValidationError as exc:
        raise ValueError(f"schema: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") from exc


def parse_json_answer(text: str) -> ItemAttributes:
    """Parse a JSON answer ``{"category", "tags", "description"}``.

    Raises:
        ValueError: no JSON object, or schema violations (unknown category, bad tags, ...).
    """
    obj = extract_json(text)
    try:
        return ItemAttributes.model_validate(obj)
    except ValidationError as exc:
        raise ValueError(f"schema: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") from exc


@cache
def example_descriptions() -> dict[str, str]:
    """The few-shot prompt's example descriptions, normalized (:func:`words` joined), by example product title.

    Read from the template itself, so the check follows the prompt when its examples change.
    """
    text = prompts.load("item_attributes_fewshot").render(
        title=NEUTRAL_TITLE, category=None, example_categories=_example_categories()
    )
    pairs = re.findall(r"^Product: (.+)$\n(?:^(?!Product: ).*$\n)*?^Description: (.+)$", text, flags=re.M)
    return {" ".join(words(product)): " ".join(words(description)) for product, description in pairs}


def copied_example(title: str, description: str) -> bool:
    """Whether ``description`` repeats a few-shot example's description word for word, for another product.

    A small model often echoes its prompt; the copy names the title's words only by chance (a heart-shaped
    product gets "a white hanging holder ... for tea lights"), so the overlap check alone lets it through.
    """
    examples = example_descriptions()
    said = " ".join(words(description))
    return any(said == d and " ".join(words(title)) != product for product, d in examples.items())


def recheck_copies(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (``ATTRIBUTE_COLUMNS``) with accepted answers that copy a few-shot example turned into rejections.

    Stores written before that check existed still hold such rows as ``ok``; readers pass them through here.
    """
    if rows.empty:
        return rows
    copied = (rows["status"] == "ok").to_numpy() & np.array(
        [isinstance(d, str) and copied_example(t, d) for t, d in zip(rows[C.TITLE], rows[C.DESCRIPTION])], dtype=bool
    )
    if not copied.any():
        return rows
    rows = rows.copy()
    rows.loc[copied, [C.CATEGORY, "tags", C.DESCRIPTION]] = None
    rows.loc[copied, "status"] = "copied_example"
    return rows


def validate_answer(title: str, parse) -> tuple[ItemAttributes | None, str]:
    """Run ``parse()`` and the title checks; returns ``(attributes or None, status)``.

    Status is ``ok``, ``unparseable``, ``copied_example`` or the contradiction reason.
    """
    try:
        attrs = parse()
    except ValueError:
        return None, "unparseable"
    if copied_example(title, attrs.description):
        return None, "copied_example"
    reason = contradiction(title, attrs.category, attrs.description)
    return (None, reason) if reason else (attrs, "ok")


def _categories_by_likelihood(titles: list[str], generator: Generator) -> list[str]:
    template = prompts.load("item_attributes_fewshot")
    examples = _example_categories()
    conts = [f" {c}\n" for c in CATEGORIES]
    neutral = generator.score(template.render(title=NEUTRAL_TITLE, category=None, example_categories=examples), conts)
    out = []
    for title in titles:
        scores = (
            generator.score(template.render(title=title, category=None, example_categories=examples), conts) - neutral
        )
        out.append(CATEGORIES[int(np.argmax(scores))])
    return out


def _example_categories() -> list[str]:
    return ["kitchen and dining", "lighting and candles"]


def enrich_batch(
    titles: list[str], generator: Generator, max_tokens: int
) -> tuple[list[ItemAttributes | None], list[str], str]:
    """Enrich titles with the generator's best method.

    Returns:
        ``(attributes or None per title, status per title, prompt_version)``.
    """
    if not titles:
        return [], [], ""
    if generator.supports_scoring:
        template = prompts.load("item_attributes_fewshot")
        cats = _categories_by_likelihood(titles, generator)
        texts = [
            template.render(title=t, category=c, example_categories=_example_categories()) for t, c in zip(titles, cats)
        ]
        answers = generator.generate(
            [Prompt(t, chat=False) for t in texts], max_tokens=max_tokens, stop=["\n\n", "Product:"]
        )
        results = [validate_answer(t, lambda c=c, a=a: parse_fewshot(c, a)) for t, c, a in zip(titles, cats, answers)]
        tag = template.tag
    else:
        template = prompts.load("item_attributes_json")
        answers = generator.generate(
            [Prompt(template.render(title=t, categories=list(CATEGORIES)), system=JSON_SYSTEM) for t in titles],
            max_tokens=max(max_tokens, 96),
        )
        results = [validate_answer(t, lambda a=a: parse_json_answer(a)) for t, a in zip(titles, answers)]
        tag = template.tag
    return [r[0] for r in results], [r[1] for r in results], tag


def cache_path(settings: Settings) -> Path:
    """Where enrichment results are cached."""
    return settings.paths.synth / "item_attributes.parquet"


def prompt_tag(generator: Generator) -> str:
    """The prompt version enrichment uses with this generator."""
    return prompts.load("item_attributes_fewshot" if generator.supports_scoring else "item_attributes_json").tag


def enrich_items(
    catalog: pd.DataFrame, generator: Generator, settings: Settings, priority: pd.Series | None = None
) -> tuple[pd.DataFrame, dict]:
    """Enrich up to ``synth.enrich_max_items`` new catalog items; return every cached result for this generator.

    Args:
        catalog: item_id, title[, popularity].
        generator: the backend.
        settings: budgets and the cache location.
        priority: item_id -> priority (higher first); default the catalog's popularity.
    Returns:
        ``(frame, report)``: one row per enriched catalog item (``ATTRIBUTE_COLUMNS``; attributes
        empty where status is not ``ok``) and counts of this run (attempted, ok, rejected by
        reason, cached, items/s).
    """
    tag, gen = prompt_tag(generator), generator.name
    items = catalog.drop_duplicates(C.ITEM)[
        [C.ITEM, C.TITLE] + ([C.POPULARITY] if C.POPULARITY in catalog else [])
    ].copy()
    items[C.ITEM] = items[C.ITEM].astype(str)
    items[C.TITLE] = items[C.TITLE].astype(str)
    prio = (
        priority
        if priority is not None
        else (items.set_index(C.ITEM)[C.POPULARITY] if C.POPULARITY in items else pd.Series(dtype=float))
    )
    items["_prio"] = items[C.ITEM].map(prio).fillna(0).to_numpy()
    path = cache_path(settings)
    cache = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=ATTRIBUTE_COLUMNS)
    mine = cache[(cache["prompt_version"] == tag) & (cache["generator"] == gen)]
    known = recheck_copies(mine.merge(items[[C.ITEM, C.TITLE]], on=[C.ITEM, C.TITLE]))
    todo = items[~items.set_index([C.ITEM, C.TITLE]).index.isin(known.set_index([C.ITEM, C.TITLE]).index)]
    todo = todo.sort_values(["_prio", C.ITEM], ascending=[False, True], kind="stable").head(
        settings.synth.enrich_max_items
    )
    started = time.perf_counter()
    # only what the cache cannot answer goes to the model (enrich_batch makes no call for an empty list)
    attrs, status, _ = enrich_batch(todo[C.TITLE].tolist(), generator, settings.synth.enrich_max_tokens)
    elapsed = time.perf_counter() - started
    new = pd.DataFrame(
        {
            C.ITEM: todo[C.ITEM].to_numpy(),
            C.TITLE: todo[C.TITLE].to_numpy(),
            C.CATEGORY: [a.category if a else None for a in attrs],
            "tags": [list(a.tags) if a else None for a in attrs],
            C.DESCRIPTION: [a.description if a else None for a in attrs],
            "status": status,
            "prompt_version": tag,
            "generator": gen,
        },
        columns=ATTRIBUTE_COLUMNS,
    )
    if len(new):
        merged = pd.concat([cache[ATTRIBUTE_COLUMNS], new], ignore_index=True).drop_duplicates(KEY, keep="last")
        write_parquet_atomic(merged, path)
    result = (
        pd.concat([known[ATTRIBUTE_COLUMNS], new], ignore_index=True)
        .sort_values(C.ITEM, kind="stable")
        .reset_index(drop=True)
    )
    counts = pd.Series(status, dtype=object).value_counts().to_dict()
    report = {
        "attempted": len(new),
        "ok": int(counts.pop("ok", 0)),
        "rejected": {k: int(v) for k, v in sorted(counts.items())},
        "from_cache": len(known),
        "not_enriched_yet": int(len(items) - len(known) - len(new)),
        "seconds": round(elapsed, 2),
        "items_per_s": round(len(new) / elapsed, 3) if elapsed > 0 and len(new) else None,
        "prompt_version": tag,
    }
    log.info(
        "item enrichment: %d new items enriched in %.1f s, %d from the cache, %d not enriched yet (budget %d per run)",
        report["attempted"],
        elapsed,
        report["from_cache"],
        report["not_enriched_yet"],
        settings.synth.enrich_max_items,
    )
    return result, report


def stored_attributes(settings: Settings, catalog: pd.DataFrame) -> pd.DataFrame:
    """The accepted enrichment in the store for ``catalog``'s products as titled now, without any model call.

    Every model that reads item text reads this (nightly training, the backtest, the champion's refit for
    serving, the ablation's ``enriched`` arm), also on a night whose synthesis failed; the night's
    ``items_enriched.parquet`` is that night's lineage record of the same store. A product enriched under an older
    title is left out; where several generators or prompt versions enriched one product, the row written
    last wins.

    Args:
        catalog: item_id, title.
    Returns:
        ``ATTRIBUTE_COLUMNS`` rows with status ``ok``, one per product (empty when the store is).
    """
    path = cache_path(settings)
    if not path.exists():
        return pd.DataFrame(columns=ATTRIBUTE_COLUMNS)
    store = recheck_copies(pd.read_parquet(path))
    store = store[store["status"] == "ok"].drop_duplicates(C.ITEM, keep="last")
    titles = catalog[[C.ITEM, C.TITLE]].astype(str).drop_duplicates(C.ITEM)
    return store.merge(titles, on=[C.ITEM, C.TITLE])[ATTRIBUTE_COLUMNS].reset_index(drop=True)


def category_of(items: pd.DataFrame) -> pd.Series:
    """item_id -> category for the items whose enrichment was accepted."""
    ok = items[items["status"] == "ok"] if len(items) else items
    return ok.set_index(C.ITEM)[C.CATEGORY] if len(ok) else pd.Series(dtype=object)
