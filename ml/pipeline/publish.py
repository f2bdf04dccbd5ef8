"""From a decided configuration to the served model: refit on everything, smoke-check, then serve.

The evaluated model vouches for a configuration; what is served is that configuration fitted again on
every event up to the as-of date (training, validation and test periods), over every customer and
every product the shop knows that night (:func:`ml.data.rolling.build_cut` at the day after the
as-of date). Fusion keeps the weights its configuration chose on validation and refits its members.

The refit model is smoke-checked through the logged MLflow model itself (it loads, it scores, its
lists are non-empty and valid) before anything is registered, so a crash or a bad model leaves no
version behind and the alias where it was.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.data.dataset import SplitData
from ml.data.rolling import DAY, CutData, EventLog, build_cut, item_known_from
from ml.eval.protocol import VIEWS
from ml.models import registry
from ml.models.base import Recommender
from ml.models.fusion import Fusion, NewProductSlot
from ml.pipeline.backtest import fit_at_cut, item_vectors
from ml.pipeline.evaluation import evaluate_models
from ml.pipeline.layout import RunFolder
from ml.pipeline.promotion import settings_for
from ml.pipeline.training import fit_fusion, fit_model, item_text_for, synthetic_over


class SmokeCheckError(RuntimeError):
    """The refit model failed its smoke check; it is not registered and the alias does not move."""


def evaluate_config(
    config: dict,
    data: SplitData,
    settings: Settings,
    out: RunFolder,
    catalog: pd.DataFrame | None,
    synthetic: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fit a recorded configuration on today's split exactly as the run fits its own models, and score it.

    Used for the champion's configuration when the run did not train it (its settings differ from
    today's): its members are fitted with the recorded settings, fusion's weights chosen on validation.

    Returns:
        Its ``user_metrics.parquet`` rows on today's test period (written under ``out``).
    """
    cfg_settings = settings_for(config, settings)
    key = config["model"]
    members = config.get("members") or []
    keys = [*members, key] if key == registry.FUSION else [key]
    for k in keys:
        if k == registry.FUSION:
            continue
        if registry.is_synthetic(k) and synthetic is None:
            raise ValueError(f"the configuration needs synthetic data ({k}) and today's did not pass its gate")
        text = item_text_for(k, cfg_settings, data, catalog)
        fit_model(k, data, cfg_settings, out, synthetic=synthetic if registry.is_synthetic(k) else None, item_text=text)
    if key == registry.FUSION:
        fit_fusion(members, data, out, cfg_settings.models.fusion)
    evaluate_models([key], data, cfg_settings, out)
    return pd.read_parquet(out.user_metrics)


def full_data(events: pd.DataFrame, catalog: pd.DataFrame | None, as_of, window_days: int | None) -> CutData:
    """Every customer, product and event known at the end of ``as_of``: the refit's universe and history."""
    cut = pd.Timestamp(as_of).normalize() + DAY
    return build_cut(EventLog.of(events), cut, 0, window_days, item_known_from(events, catalog))


def refit(
    config: dict,
    data: CutData,
    settings: Settings,
    catalog: pd.DataFrame | None,
    out: Path,
    synthetic: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Fit ``config`` on ``data`` (see :func:`full_data`) and save one model per view under ``out``.

    With ``serve.new_product_slot`` the discover view's model also holds that slot (:func:`with_slot`).

    Returns:
        ``{view: saved model folder}`` (the same folder for both views unless fusion weighs them apart
        or the discover view has a new-product slot).
    """
    cfg_settings = settings_for(config, settings)
    key = config["model"]
    keys = config.get("members") or [] if key == registry.FUSION else [key]
    source = settings.serve.new_product_slot
    slotted = [source] if source != "off" else []
    vectors = item_vectors(keys + slotted, data.item_ids, catalog, cfg_settings)
    extra = None
    if any(registry.is_synthetic(k) for k in keys):
        if synthetic is None:
            raise ValueError(f"{config['model']} needs today's gated synthetic interactions")
        extra = synthetic_over(synthetic, data.user_ids, data.item_ids, cfg_settings.synth.weight, drop_unknown=True)
    fitted: dict[str, Recommender] = {
        k: fit_at_cut(k, data, cfg_settings, vectors, extra if registry.is_synthetic(k) else None)[0] for k in keys
    }
    out = Path(out)
    served: dict[str, Recommender] = {}
    for view, exclude_seen in VIEWS.items():
        if key == registry.FUSION:
            rank_unseen = cfg_settings.models.fusion.ranks_unseen(exclude_seen)
            served[view] = Fusion(fitted, weights=config["weights"][view], members_fitted=True, rank_unseen=rank_unseen)
        else:
            served[view] = fitted[key]
        if slotted and exclude_seen:
            new = np.asarray(data.buyers_before <= settings.eval.backtest.cold_max_buyers)
            slot = NewProductSlot(source, new, settings.serve.new_product_position)
            served[view] = with_slot(served[view], slot, fit_at_cut(source, data, cfg_settings, vectors)[0])
    paths, saved = {}, {}
    for view, model in served.items():
        if id(model) not in saved:  # a plain model serves both views from one folder
            saved[id(model)] = out / ("model" if key != registry.FUSION and model is fitted[key] else view)
            model.save(saved[id(model)])
        paths[view] = saved[id(model)]
    return paths


def with_slot(model: Recommender, slot: NewProductSlot, source_model: Recommender) -> Fusion:
    """``model``'s lists with the ``slot`` filled from ``source_model`` (fitted), the slot's member.

    In the refit the new products are those with at most ``eval.backtest.cold_max_buyers`` buyers (the
    products the backtest's cold-item slice counts). A fusion keeps its members, weights and ranking and
    gains the source as a member of weight 0; any other model becomes the one member of a score fusion
    (min-max per customer, which keeps its order).
    """
    if isinstance(model, Fusion):
        members = {**model.members, slot.member: source_model}
        return Fusion(
            members,
            model.weights,
            model.method,
            model.normalization,
            members_fitted=True,
            top_m=model.top_m,
            rrf_k=model.rrf_k,
            rank_unseen=model.rank_unseen,
            slot=slot,
        )
    if model.name == slot.member:  # the slot's own model: its best new product ranks where it ranks
        return Fusion({model.name: model}, {model.name: 1.0}, "score", members_fitted=True)
    members = {model.name: model, slot.member: source_model}
    return Fusion(members, {model.name: 1.0}, "score", members_fitted=True, slot=slot)


def smoke_check(model, data: CutData, n: int, sample: int = 50, seed: int = 0) -> dict:
    """Ask the logged model for lists, as the batch job and the online server will, and check them.

    Known customers (a seeded sample of those with history) in both views, a new customer with a
    basket of two popular products, and a new customer with nothing.

    Args:
        model: the loaded pyfunc (``mlflow.pyfunc.load_model``).
    Returns:
        ``{"checked_users", "rows", "seconds"}``.
    Raises:
        SmokeCheckError: naming every problem found.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    counts = np.diff(data.history.csr(binary=True).indptr)
    active = np.flatnonzero(counts > 0)
    if not len(active):
        raise SmokeCheckError("no customer with history to check the model on")
    users = data.user_ids[rng.choice(active, size=min(sample, len(active)), replace=False)]
    popular = data.item_ids[np.argsort(-data.buyers_before, kind="stable")[:2]]
    request = pd.DataFrame(
        {
            C.USER: [*map(str, users), "__smoke_new_with_basket__", "__smoke_new__"],
            "items": [None] * len(users) + [list(map(str, popular)), None],
        }
    )
    vocab = set(map(str, data.item_ids))
    history = data.history.frame
    seen = pd.Series(data.item_ids[history["item_idx"]], index=data.user_ids[history["user_idx"]])
    problems, rows = [], 0
    for view, exclude_seen in VIEWS.items():
        try:
            out = model.predict(request, params={"n": n, "view": view})
        except Exception as exc:  # the check reports any failure of the model as its finding
            raise SmokeCheckError(f"{view}: the model failed to answer: {exc!r}") from exc
        rows += len(out)
        per_user = out.groupby(C.USER)
        missing = set(request[C.USER]) - set(per_user.groups)
        if missing:
            problems.append(
                f"{view}: no list for {len(missing)} of {len(request)} customers (e.g. {sorted(missing)[0]})"
            )
        if (per_user.size() > n).any():
            problems.append(f"{view}: a list is longer than n={n}")
        if out.duplicated([C.USER, C.ITEM]).any():
            problems.append(f"{view}: an item appears twice in one list")
        unknown = set(out[C.ITEM].astype(str)) - vocab
        if unknown:
            problems.append(
                f"{view}: {len(unknown)} recommended items are not in the catalog (e.g. {sorted(unknown)[0]})"
            )
        if not np.isfinite(out[C.SCORE].to_numpy(np.float64)).all():
            problems.append(f"{view}: non-finite scores")
        if exclude_seen:
            known = out[out[C.USER].isin(set(map(str, users)))]
            pairs = set(zip(seen.index.astype(str), seen.astype(str)))
            if any((u, i) in pairs for u, i in zip(known[C.USER], known[C.ITEM].astype(str))):
                problems.append(f"{view}: a discover list holds an item the customer already bought")
    if problems:
        raise SmokeCheckError("; ".join(problems))
    return {"checked_users": len(request), "rows": rows, "seconds": round(time.perf_counter() - started, 2)}


def decision_record(path: Path) -> dict:
    """Read the night's decision document."""
    return json.loads(Path(path).read_text())
