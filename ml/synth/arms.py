"""The one list of synthesis arms (strategies with and without the language model, and their controls).

Kept free of heavy imports, so that the DAG file can offer them in its trigger form; what each
strategy does is :mod:`ml.synth.strategies`.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPANSION = "expansion"  # the language model's next purchases for sparse users (ml.synth.expansion)


@dataclass(frozen=True)
class Arm:
    """One arm of the ablation.

    Attributes:
        name: its key in tables, ``ablation.json`` and settings.
        strategy: ``pseudo_prior`` | ``item_side`` | ``appended`` | ``random`` | ``enrichment`` (no synthetic
            events: the models that read item text read titles plus the language model's accepted
            category and tags from the enrichment store, ``ml.synth.enrichment``).
        language_model: candidates re-ranked by the embedded language model (PMI).
        mimics: for ``random``: the arm whose users, counts and positions it copies.
        prunes: the arm whose events it keeps, less the share ``synth.strategies.prune_share`` that an
            ALS teacher fits worst (``ml.synth.denoise``); ``strategy`` is that arm's.
    """

    name: str
    strategy: str
    language_model: bool = False
    mimics: str | None = None
    prunes: str | None = None


REAL = "real"
ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm(REAL, "none"),
        Arm("prior", "pseudo_prior"),
        Arm("prior_llm", "pseudo_prior", language_model=True),
        Arm("random_prior", "random", mimics="prior"),
        Arm("item", "item_side"),
        Arm("item_llm", "item_side", language_model=True),
        Arm("random_item", "random", mimics="item"),
        Arm("appended", "appended"),
        Arm("appended_llm", "appended", language_model=True),
        Arm("prior_pruned", "pseudo_prior", prunes="prior"),
        Arm("item_pruned", "item_side", prunes="item"),
        Arm("appended_pruned", "appended", prunes="appended"),
        Arm("enriched", "enrichment"),  # its no-language-model control is real only: titles alone
    )
}
EVENTLESS = ("none", "enrichment")  # strategies that add no synthetic events
# what each arm is compared with besides real only: its controls (random catalog, no language model)
CONTROLS: dict[str, tuple[str, ...]] = {
    "prior": ("random_prior",),
    "prior_llm": ("random_prior", "prior"),
    "item": ("random_item",),
    "item_llm": ("random_item", "item"),
    "appended_llm": ("appended",),
    "prior_pruned": ("random_prior", "prior"),
    "item_pruned": ("random_item", "item"),
    "appended_pruned": ("appended",),
}


def nightly_choices() -> list[str]:
    """What ``synth.strategies.nightly`` may name: the expansion, or an arm that adds events and is not a control.

    (The nightly run enriches items whatever the strategy, so ``enriched`` is not a choice.)
    """
    return [EXPANSION] + [a.name for a in ARMS.values() if a.strategy not in (*EVENTLESS, "random")]


def check_nightly(name: str) -> None:
    """Refuse a nightly strategy that is unknown, the real-only arm or a random control.

    Raises:
        ValueError: naming the setting and the valid choices.
    """
    if name not in nightly_choices():
        raise ValueError(f"synth.strategies.nightly = {name!r}: choose one of {nightly_choices()}")
