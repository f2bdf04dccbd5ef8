"""The one list of models: their names, how each is built from settings, and the variant naming.

Everything that needs to know which models exist reads it from here: the DAG's form and its
training tasks, the run parameters, the benchmark, fusion and the MLflow parameters. Building a
model imports its module only then, so this module is cheap enough for a DAG file to import.

A model trained on real + synthetic data is a *variant* of its base model, saved and reported as
``<name>_synth`` (:func:`variant`, :func:`base_name`, :func:`is_synthetic`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ml.config import ModelSettings
    from ml.models.base import Recommender

SYNTH_SUFFIX = "_synth"
FUSION = "fusion"


def _popularity(m: ModelSettings, **_: Any) -> Recommender:
    from ml.models.popularity import Popularity

    return Popularity()


def _recent_popularity(m: ModelSettings, **_: Any) -> Recommender:
    from ml.models.popularity import Popularity

    return Popularity(window_days=m.popularity.recent_days)


def _newest(m: ModelSettings, **_: Any) -> Recommender:
    from ml.models.popularity import NewestPopularity

    return NewestPopularity(days=m.popularity.newest_days)


def _text_knn(m: ModelSettings, item_text=None, **_: Any) -> Recommender:
    from ml.models.text_knn import TextKNN

    return TextKNN(item_text, neighbours=m.text_knn.neighbours)


def _rebuy(m: ModelSettings, **_: Any) -> Recommender:
    from ml.models.rebuy import Rebuy

    return Rebuy()


def _markov(m: ModelSettings, **_: Any) -> Recommender:
    from ml.models.transitions import MarkovChain

    return MarkovChain(smoothing=m.markov.smoothing)


def _item_knn(m: ModelSettings, **_: Any) -> Recommender:
    from ml.models.transitions import ItemKNN

    return ItemKNN(neighbours=m.item_knn.neighbours)


def _als(m: ModelSettings, **_: Any) -> Recommender:
    from ml.models.als import ALS

    return ALS(**m.als.model_dump(), seed=m.seed)


def _bert4rec(
    m: ModelSettings, logger=None, checkpoint_dir=None, item_text=None, protocol: str = "temporal", **_: Any
) -> Recommender:
    from ml.models.bert4rec.model import Bert4Rec

    return Bert4Rec.from_settings(
        m, protocol=protocol, logger=logger, checkpoint_dir=checkpoint_dir, item_text=item_text
    )


def _sasrec(
    m: ModelSettings, logger=None, checkpoint_dir=None, item_text=None, protocol: str = "temporal", **_: Any
) -> Recommender:
    from ml.models.bert4rec.model import SASRec

    return SASRec.from_settings(m, protocol=protocol, logger=logger, checkpoint_dir=checkpoint_dir, item_text=item_text)


@dataclass(frozen=True)
class ModelSpec:
    """One trainable model.

    Attributes:
        name: its key everywhere (settings, saved folders, metrics, MLflow).
        build: ``(ModelSettings, **fit options) -> unfitted Recommender``.
        task: the DAG task that trains it (models sharing a task train one after another).
        settings_section: its section under ``settings.models`` (None: it has no hyper-parameters).
        fusion_member: whether fusion may combine it (pop adds nothing that pop_recent lacks).
        synthetic_variant: trained a second time on real + synthetic data when synthesis passed its gate.
        uses_item_text: reads item text vectors (``models.<section>.item_text``).
        needs_item_text: cannot fit without them: left out of a run whose catalog has no titles.
        refit: refitted on train + validation for the test phase (False: the early-stopped
            weights are kept and the longer history brings the model up to date).
        logs_curves: trained by Lightning, so it takes a logger for its per-epoch curves.
        control: a simple control for the evaluation (the cold-item slice; what a sequence model must beat),
            trained only when asked.
        slow: too slow for every cut of the nightly backtest (runs on ``eval.backtest.slow_cuts`` cuts).
    """

    name: str
    build: Callable[..., Recommender]
    task: str
    settings_section: str | None = None
    fusion_member: bool = False
    synthetic_variant: bool = False
    uses_item_text: bool = False
    needs_item_text: bool = False
    refit: bool = True
    logs_curves: bool = False
    control: bool = False
    slow: bool = False


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("pop", _popularity, task="baselines"),
        ModelSpec(
            "pop_recent", _recent_popularity, task="baselines", settings_section="popularity", fusion_member=True
        ),
        ModelSpec("rebuy", _rebuy, task="baselines", fusion_member=True),
        ModelSpec("als", _als, task="als", settings_section="als", fusion_member=True, synthetic_variant=True),
        ModelSpec(
            "bert4rec",
            _bert4rec,
            task="bert4rec",
            settings_section="bert4rec",
            fusion_member=True,
            synthetic_variant=True,
            uses_item_text=True,
            refit=False,
            logs_curves=True,
            slow=True,
        ),
        ModelSpec(
            "sasrec",
            _sasrec,
            task="bert4rec",  # the sequence-model task (the DAG's train_bert4rec, in the gpu pool)
            settings_section="sasrec",
            fusion_member=True,
            synthetic_variant=True,
            uses_item_text=True,
            refit=False,
            logs_curves=True,
            slow=True,
        ),
        ModelSpec("newest", _newest, task="baselines", settings_section="popularity", control=True),
        ModelSpec(
            "text_knn",
            _text_knn,
            task="baselines",
            settings_section="text_knn",
            fusion_member=True,
            uses_item_text=True,
            needs_item_text=True,
            control=True,
        ),
        ModelSpec("markov", _markov, task="baselines", settings_section="markov", control=True),
        ModelSpec("item_knn", _item_knn, task="baselines", settings_section="item_knn", control=True),
    )
}
BASE_MODELS: tuple[str, ...] = tuple(MODELS)
ALL_MODELS: tuple[str, ...] = BASE_MODELS + (FUSION,)


def spec(key: str) -> ModelSpec:
    """The spec behind a model key (``als`` or its variant ``als_synth``).

    Raises:
        ValueError: an unknown model, naming the known ones.
    """
    name = base_name(key)
    if name not in MODELS:
        raise ValueError(f"unknown model {key!r} (choose from {', '.join(ALL_MODELS)})")
    return MODELS[name]


def check_names(names: list[str], allow_fusion: bool = True) -> list[str]:
    """``names`` if every one is a known model (fusion too when ``allow_fusion``), else ValueError."""
    known = ALL_MODELS if allow_fusion else BASE_MODELS
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {', '.join(known)}")
    return names


def models_of_task(task: str, selected: list[str]) -> list[str]:
    """The selected base models that the DAG task ``task`` trains, in registry order."""
    return [n for n, s in MODELS.items() if s.task == task and n in selected]


def variant(name: str, synthetic: bool) -> str:
    """The key of ``name`` trained on real data (``als``) or on real + synthetic data (``als_synth``)."""
    return f"{name}{SYNTH_SUFFIX}" if synthetic else name


def base_name(key: str) -> str:
    """The model type behind a key: ``als_synth`` -> ``als``."""
    return key.removesuffix(SYNTH_SUFFIX)


def is_synthetic(key: str) -> bool:
    """Whether the key names a variant trained on real + synthetic data."""
    return key.endswith(SYNTH_SUFFIX)


def runnable(models: list[str], has_titles: bool) -> list[str]:
    """``models`` without those that need item text when the catalog has no titles (``has_titles`` False)."""
    return [m for m in models if has_titles or m == FUSION or not spec(m).needs_item_text]


def fusion_members(trained: list[str]) -> list[str]:
    """The trained keys (either variant) that fusion may combine, in the order given."""
    return [k for k in trained if k != FUSION and spec(k).fusion_member]


def reads_item_text(key: str, settings: ModelSettings) -> bool:
    """Whether the model behind ``key`` reads item text vectors: its spec uses them and its settings
    section does not switch them off (``item_text="none"``; a section without the key reads them)."""
    spec_ = spec(key)
    if not spec_.uses_item_text:
        return False
    section = getattr(settings, spec_.settings_section) if spec_.settings_section else None
    return getattr(section, "item_text", "augment") != "none"


def make_model(key: str, settings: ModelSettings, **options: Any) -> Recommender:
    """A fresh, unfitted model of the type behind ``key``, configured from ``settings``.

    Args:
        options: fit-time objects for the models that take them (``logger``, ``checkpoint_dir``,
            ``item_text``, the split's ``protocol``); others ignore them.
    """
    return spec(key).build(settings, **options)


def model_params(key: str, settings: ModelSettings) -> dict:
    """What to record as a model's parameters: its settings section (unprefixed) and the seed."""
    section = spec(key).settings_section
    values = getattr(settings, section).model_dump() if section else {}
    return {"model": key, "seed": settings.seed, **values}
