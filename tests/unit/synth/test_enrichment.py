"""Item enrichment: answers are parsed into the schema or counted as rejections (never guessed),
title contradictions are caught, runs are bounded by popularity, and the cache makes reruns free."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import columns as C
from ml.synth.categories import CATEGORIES, contradiction, title_categories
from ml.synth.enrichment import (
    ATTRIBUTE_COLUMNS,
    cache_path,
    enrich_items,
    parse_fewshot,
    parse_json_answer,
    prompt_tag,
    stored_attributes,
)
from tests.support.synth import sample_settings, shared_generator


class FakeEnricher:
    """A scoring backend that always picks ``category`` and answers each title from a script."""

    supports_scoring = True

    def __init__(self, category: str, answers: dict[str, str], name: str = "fake:enricher"):
        self.category, self.answers, self.name = category, answers, name
        self.generated: list[str] = []

    def score(self, prefix, continuations):
        return np.array(
            [10.0 if c.strip() == self.category and "Product: n/a" not in prefix else 0.0 for c in continuations]
        )

    def generate(self, prompts, max_tokens, stop=()):
        out = []
        for p in prompts:
            title = p.text.rsplit("Product: ", 1)[1].split("\n", 1)[0]
            self.generated.append(title)
            out.append(self.answers[title])
        return out

    def close(self):
        pass


def catalog(*titles_and_popularity) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.ITEM: [f"i{k}" for k in range(len(titles_and_popularity))],
            C.TITLE: [t for t, _ in titles_and_popularity],
            C.POPULARITY: [p for _, p in titles_and_popularity],
        }
    )


def test_unparseable_and_contradicting_answers_are_counted_not_guessed(tmp_path):
    items = catalog(
        ("PARTY BUNTING", 9), ("JUMBO BAG RED RETROSPOT", 8), ("PINK PARTY BALLOONS", 7), ("GLITTER BUNTING", 6)
    )
    gen = FakeEnricher(
        "party and gift wrap",
        {
            "party bunting": " bunting, party\nDescription: Fabric party bunting to hang at a party.",
            # BAG allows party and gift wrap
            "jumbo bag red retrospot": " bag\nDescription: A large red bag with white spots.",
            "pink party balloons": " balloons\nThis is not the expected format at all",
            "glitter bunting": " glitter\nDescription: Something nice for you and yours.",
        },
    )
    frame, report = enrich_items(items, gen, sample_settings(tmp_path, enrich_max_items=10))
    status = frame.set_index(C.TITLE)["status"].to_dict()
    assert status == {
        "PARTY BUNTING": "ok",
        "JUMBO BAG RED RETROSPOT": "ok",
        "PINK PARTY BALLOONS": "unparseable",
        "GLITTER BUNTING": "description_unrelated",
    }
    assert report["attempted"] == 4 == report["ok"] + sum(report["rejected"].values())
    rejected = frame[frame["status"] != "ok"]
    assert rejected[[C.CATEGORY, C.DESCRIPTION, "tags"]].isna().all().all()
    ok = frame[frame["status"] == "ok"].set_index(C.TITLE)
    assert list(ok.loc["PARTY BUNTING", "tags"]) == ["bunting", "party"]


def test_category_that_contradicts_strong_title_keywords_is_rejected(tmp_path):
    items = catalog(("SILVER HEART NECKLACE", 1))
    gen = FakeEnricher(
        "kitchen and dining", {"silver heart necklace": " necklace\nDescription: A silver necklace with a heart."}
    )
    frame, report = enrich_items(items, gen, sample_settings(tmp_path, enrich_max_items=10))
    assert frame["status"].tolist() == ["category_contradicts_title"] and report["rejected"] == {
        "category_contradicts_title": 1
    }


def three_candles(tmp_path):
    """Three candles (popularity 1, 5, 3), a valid answer for each, and a budget of two new items per run."""
    items = catalog(("CANDLE ONE", 1), ("CANDLE TWO", 5), ("CANDLE THREE", 3))
    answers = {t.lower(): " candle\nDescription: A scented candle in a glass." for t in items[C.TITLE]}
    return items, answers, sample_settings(tmp_path, enrich_max_items=2)


def test_runs_are_bounded_by_popularity_and_the_cache_makes_reruns_free(tmp_path):
    items, answers, settings = three_candles(tmp_path)
    gen = FakeEnricher("lighting and candles", answers)
    first, r1 = enrich_items(items, gen, settings)
    assert gen.generated == ["candle two", "candle three"] and r1["not_enriched_yet"] == 1
    second, r2 = enrich_items(items, gen, settings)
    assert gen.generated[2:] == ["candle one"] and r2["from_cache"] == 2 and r2["attempted"] == 1
    third, r3 = enrich_items(items, gen, settings)
    assert r3["attempted"] == 0 and r3["from_cache"] == 3 and len(third) == 3
    renamed = items.assign(**{C.TITLE: items[C.TITLE].replace({"CANDLE ONE": "CANDLE UNO"})})
    answers["candle uno"] = answers["candle one"]
    _, r4 = enrich_items(renamed, gen, settings)
    assert r4["attempted"] == 1 and gen.generated[-1] == "candle uno"  # a changed title is a new key
    other = FakeEnricher("lighting and candles", answers, name="fake:other")
    _, r5 = enrich_items(items, other, settings)
    assert r5["from_cache"] == 0  # results are cached per generator
    assert cache_path(settings).exists()


class RecordingEnricher(FakeEnricher):
    """:class:`FakeEnricher` that also records every scoring call by the title in its prefix."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scored: list[str] = []

    def score(self, prefix, continuations):
        self.scored.append(prefix.rsplit("Product: ", 1)[1].split("\n", 1)[0])
        return super().score(prefix, continuations)


def test_only_uncached_items_reach_the_model_and_a_fully_cached_run_makes_no_model_call(tmp_path):
    items, answers, settings = three_candles(tmp_path)
    first = RecordingEnricher("lighting and candles", answers)
    _, r1 = enrich_items(items, first, settings)
    # the content-free calibration title once, then one scoring call and one answer per new item
    assert first.scored == ["n/a", "candle two", "candle three"]
    assert first.generated == ["candle two", "candle three"]
    second = RecordingEnricher("lighting and candles", answers)
    _, r2 = enrich_items(items, second, settings)
    assert second.scored == ["n/a", "candle one"] and second.generated == ["candle one"]
    assert (r2["attempted"], r2["from_cache"], r2["not_enriched_yet"]) == (1, 2, 0)
    cached = RecordingEnricher("lighting and candles", answers)
    frame, r3 = enrich_items(items, cached, settings)
    assert cached.scored == [] and cached.generated == []  # the cache answered everything: no model call
    assert (r3["attempted"], r3["ok"], r3["rejected"], r3["from_cache"], r3["not_enriched_yet"]) == (0, 0, {}, 3, 0)
    assert r3["items_per_s"] is None
    assert frame[C.ITEM].tolist() == ["i0", "i1", "i2"] and (frame["status"] == "ok").all()
    assert frame[C.CATEGORY].tolist() == ["lighting and candles"] * 3
    # a zero budget over a partly cached catalog answers from the cache and calls nothing either
    unseen = catalog(("CANDLE ONE", 1), ("CANDLE TWO", 5), ("CANDLE THREE", 3), ("CANDLE FOUR", 9))
    idle = RecordingEnricher("lighting and candles", answers)
    frame0, r4 = enrich_items(unseen, idle, sample_settings(tmp_path, enrich_max_items=0))
    assert idle.scored == [] and idle.generated == []
    assert (r4["attempted"], r4["from_cache"], r4["not_enriched_yet"], len(frame0)) == (0, 3, 1, 3)


@pytest.mark.parametrize(
    "text,ok",
    [
        ('{"category": "christmas", "tags": ["bauble", "tree"], "description": "A glass bauble for the tree."}', True),
        (
            '```json\n{"category": "christmas", "tags": ["bauble"], '
            '"description": "A glass bauble for the tree."}\n```',
            True,
        ),
        ('{"category": "spaceships", "tags": ["x"], "description": "A glass bauble for the tree."}', False),
        ('{"category": "christmas", "tags": [], "description": "A glass bauble for the tree."}', False),
        ('{"category": "christmas", "tags": ["ok"], "description": "A glass bauble.", "run": "rm -rf /"}', False),
        ("no json", False),
    ],
)
def test_json_answers_must_match_the_schema(text, ok):
    if ok:
        assert parse_json_answer(text).category == "christmas"
    else:
        with pytest.raises(ValueError):
            parse_json_answer(text)


def test_fewshot_answer_needs_tags_and_description_lines():
    attrs = parse_fewshot("home decor", " heart, heart, wicker\nDescription: A small wicker heart to hang.")
    assert attrs.tags == ["heart", "wicker"]
    with pytest.raises(ValueError):
        parse_fewshot("home decor", " heart, wicker")


def test_title_keyword_rules():
    assert title_categories("WHITE HANGING HEART T-LIGHT HOLDER") == {"lighting and candles"}
    assert title_categories("ASSORTED COLOUR BIRD ORNAMENT") == set()
    assert contradiction("ASSORTED COLOUR BIRD ORNAMENT", "other", "A colourful bird ornament.") is None
    assert contradiction("CHRISTMAS CARD", "other", "A christmas card.") == "category_contradicts_title"
    assert (
        contradiction("REGENCY CAKESTAND 3 TIER", "kitchen and dining", "A lovely gift for anyone.")
        == "description_unrelated"
    )
    assert set(CATEGORIES) >= {
        c for cats in __import__("ml.synth.categories", fromlist=["KEYWORDS"]).KEYWORDS.values() for c in cats
    }


def test_embedded_enrichment_outputs_are_schema_valid_or_counted(tmp_path):
    items = catalog(("WHITE HANGING HEART T-LIGHT HOLDER", 3), ("PARTY BUNTING", 2))
    frame, report = enrich_items(items, shared_generator(), sample_settings(tmp_path, enrich_max_items=2))
    assert report["attempted"] == 2 == report["ok"] + sum(report["rejected"].values())
    for row in frame.itertuples():
        if row.status == "ok":
            assert (
                row.category in CATEGORIES
                and 1 <= len(row.tags) <= 5
                and contradiction(row.title, row.category, row.description) is None
            )
        else:
            assert row.category is None or pd.isna(row.category)


def test_stored_attributes_gives_accepted_rows_for_the_current_titles_without_a_model(tmp_path):
    from ml.data.lake import write_parquet_atomic

    settings = sample_settings(tmp_path)
    assert stored_attributes(settings, catalog(("JUMBO BAG", 1))).empty  # no store yet
    row = dict(zip(ATTRIBUTE_COLUMNS, [None] * len(ATTRIBUTE_COLUMNS)))
    rows = [
        {**row, C.ITEM: "i0", C.TITLE: "JUMBO BAG", C.CATEGORY: "bags", "status": "ok", "generator": "a"},
        {**row, C.ITEM: "i1", C.TITLE: "OLD NAME", C.CATEGORY: "kitchen", "status": "ok", "generator": "a"},
        {**row, C.ITEM: "i2", C.TITLE: "PARTY BUNTING", "status": "contradicts_title", "generator": "a"},
        {**row, C.ITEM: "i3", C.TITLE: "TEA CUP", C.CATEGORY: "kitchen", "status": "ok", "generator": "a"},
        {**row, C.ITEM: "i3", C.TITLE: "TEA CUP", C.CATEGORY: "home decor", "status": "ok", "generator": "b"},
    ]
    write_parquet_atomic(pd.DataFrame(rows, columns=ATTRIBUTE_COLUMNS), cache_path(settings))
    now = catalog(("JUMBO BAG", 4), ("NEW NAME", 3), ("PARTY BUNTING", 2), ("TEA CUP", 1))
    got = stored_attributes(settings, now)
    # i1 was enriched under a title it no longer has, i2's answer was rejected; i3's last written row wins
    assert got[[C.ITEM, C.CATEGORY, "generator"]].values.tolist() == [["i0", "bags", "a"], ["i3", "home decor", "b"]]
    assert list(got.columns) == ATTRIBUTE_COLUMNS


COPIED = " heart, tea light\nDescription: A white hanging holder in the shape of a heart for tea lights."


def test_a_description_copied_from_the_fewshot_example_is_rejected_for_any_other_product(tmp_path):
    # the words overlap the title ("heart", "hanging"), so only the copy check can catch it
    items = catalog(("HANGING HEART ZINC T-LIGHT HOLDER", 2), ("WHITE HANGING HEART T-LIGHT HOLDER", 1))
    answers = {"hanging heart zinc t-light holder": COPIED, "white hanging heart t-light holder": COPIED}
    settings = sample_settings(tmp_path, enrich_max_items=10)
    frame, report = enrich_items(items, FakeEnricher("lighting and candles", answers), settings)
    # the example's own product may keep the example's words
    assert frame.set_index(C.TITLE)["status"].to_dict() == {
        "HANGING HEART ZINC T-LIGHT HOLDER": "copied_example",
        "WHITE HANGING HEART T-LIGHT HOLDER": "ok",
    }
    assert report["rejected"] == {"copied_example": 1}


def test_copies_accepted_by_an_older_store_are_rejected_when_read(tmp_path):
    from ml.data.lake import write_parquet_atomic

    settings = sample_settings(tmp_path)
    gen = FakeEnricher("home decor", {})
    description = "A white hanging holder, in the shape of a heart, for tea lights!"  # punctuation aside, a copy
    rows = [
        ["i0", "HANGING HEART ZINC BASKET", "home decor", ["heart"], description, "ok", prompt_tag(gen), gen.name],
        ["i1", "TEA CUP", "kitchen and dining", ["cup"], "A china tea cup.", "ok", prompt_tag(gen), gen.name],
    ]
    write_parquet_atomic(pd.DataFrame(rows, columns=ATTRIBUTE_COLUMNS), cache_path(settings))
    items = catalog(("HANGING HEART ZINC BASKET", 2), ("TEA CUP", 1))
    assert stored_attributes(settings, items)[C.ITEM].tolist() == ["i1"]
    frame, report = enrich_items(items, gen, settings)
    assert gen.generated == [] and report["from_cache"] == 2  # re-judged, not re-asked
    basket = frame.set_index(C.ITEM).loc["i0"]
    assert basket["status"] == "copied_example" and basket[[C.CATEGORY, "tags", C.DESCRIPTION]].isna().all()
