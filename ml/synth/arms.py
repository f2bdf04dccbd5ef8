"""The one list of synthesis arms (strategies with and without the language model, and their controls).

Kept free of heavy imports, so that the DAG file can offer them in its trigger form; what each
strategy does is :mod:`ml.synth.strategies`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
        share: synthetic events per subject (per short customer, per cold product); None: the settings'
            ``synth.strategies.per_user`` and ``buyers_per_item``. Set by a share variant (:func:`arm_spec`).
    """

    name: str
    strategy: str
    language_model: bool = False
    mimics: str | None = None
    prunes: str | None = None
    share: int | None = None


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


SHARE_SEP = "@"  # ``prior@1``: the arm ``prior`` with 1 synthetic event per subject (its synthetic share)


def arm_spec(name: str) -> Arm:
    """The arm named ``name``: one of :data:`ARMS`, or a share variant ``<arm>@<k>`` of one that adds events.

    A share variant synthesizes like its arm with ``k`` events per subject (``k`` >= 1); its random control,
    pruned arm and the arm it copies or prunes carry the same share (``random_prior@1`` mimics ``prior@1``).

    Raises:
        ValueError: an unknown arm, a share that is not a positive integer, or a share on an arm without events.
    """
    base, sep, share = name.partition(SHARE_SEP)
    if base not in ARMS:
        raise ValueError(f"unknown arm {name!r}; choose from {list(ARMS)} (or <arm>{SHARE_SEP}<events per subject>)")
    if not sep:
        return ARMS[base]
    arm = ARMS[base]
    if not share.isdigit() or int(share) < 1:
        raise ValueError(f"arm {name!r}: the share after {SHARE_SEP!r} must be a positive integer")
    if arm.strategy in EVENTLESS:
        raise ValueError(f"arm {name!r}: {base!r} adds no synthetic events, so it has no share")
    suffix = f"{SHARE_SEP}{share}"
    return replace(
        arm,
        name=name,
        share=int(share),
        mimics=arm.mimics and arm.mimics + suffix,
        prunes=arm.prunes and arm.prunes + suffix,
    )


def controls_of(name: str) -> tuple[str, ...]:
    """The arms ``name`` is compared with besides real only (:data:`CONTROLS`), at the same share."""
    base, sep, share = name.partition(SHARE_SEP)
    return tuple(c + sep + share for c in CONTROLS.get(base, ()))


def nightly_choices(current: str | None = None) -> list[str]:
    """What ``synth.strategies.nightly`` may name: the expansion, or an arm that adds events and is not a control.

    (The nightly run enriches items whatever the strategy, so ``enriched`` is not a choice.)

    Args:
        current: the setting's value, listed too when it is a valid share variant (``prior@1``), so that a
            form offering these choices can show it.
    """
    choices = [EXPANSION] + [a.name for a in ARMS.values() if a.strategy not in (*EVENTLESS, "random")]
    if current and current not in choices and _valid_nightly(current, choices):
        choices.append(current)
    return choices


def _valid_nightly(name: str, choices: list[str]) -> bool:
    base = name.partition(SHARE_SEP)[0]
    if base not in choices:
        return False
    if name == base:
        return True
    try:
        arm_spec(name)
    except ValueError:  # not a share variant (e.g. of the expansion), or no positive share
        return False
    return True


def check_nightly(name: str) -> None:
    """Refuse a nightly strategy that is unknown, the real-only arm or a random control.

    A share variant (``prior@1``) of a valid choice is valid.

    Raises:
        ValueError: naming the setting and the valid choices.
    """
    if not _valid_nightly(name, nightly_choices()):
        raise ValueError(
            f"synth.strategies.nightly = {name!r}: choose one of {nightly_choices()} "
            f"(an arm may carry its share, e.g. prior{SHARE_SEP}1)"
        )
