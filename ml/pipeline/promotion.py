"""Champion vs challenger: which configuration serves tomorrow, decided on today's data.

* The **challenger** is the candidate (any model of the run, fusion included, with or without
  synthetic data) with the best validation NDCG@10 on the primary view. Test data never chooses it.
* The **champion** is a registered version; what it vouches for is its *configuration* (the model
  key, its hyper-parameters, fusion's members). The served champion was refit on data that overlaps
  today's test period, so it is never scored there: its configuration, fitted on today's training
  split, is. Where that configuration is exactly one the run trained, the run's own scores are used;
  otherwise it is fitted and evaluated again with its recorded settings (``runs/<day>/champion/``).
* The challenger **takes the alias** only when every gate of the run passed and it beats the
  champion's configuration on the same test users by at least ``promotion.margin`` on the primary
  metric, with the paired 95% bootstrap interval of that delta above zero. Otherwise the champion's
  configuration keeps serving, refreshed on today's data. A dry run decides and reports only.

Everything here reads the run folder's files (``fit.json``, ``user_metrics.parquet``) and writes the
decision document; registering and moving the alias is ``ml.pipeline.publish``'s job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import Settings
from ml.eval.compare import compare as compare_values
from ml.eval.protocol import VIEWS, length_segments
from ml.models import registry
from ml.pipeline.layout import RunFolder

PROMOTE, FIRST, KEEP, HOLD = "promote", "first_champion", "keep_champion", "hold"
VALIDATION_METRIC = "ndcg@10"  # what the validation phase records for every model and fusion's weight search


def model_config(key: str, settings: Settings, run: RunFolder | None = None) -> dict:
    """What a served version vouches for: the model key, the settings it is fitted with, fusion's members and weights.

    Weights are learned on validation (like any model's parameters), so two configurations are the
    same when everything but ``weights`` matches (:func:`same_config`).
    """
    config = {"model": key, "window_days": settings.split.window_days}
    if key == registry.FUSION:
        fit = json.loads(run.fit_record(key).read_text()) if run else {}
        members = fit.get("members", [])
        config["members"] = members
        config["params"] = {m: registry.model_params(m, settings.models) for m in members}
        config["params"][registry.FUSION] = {"grid": settings.models.fusion.grid}
        config["weights"] = fit.get("weights", {})
    else:
        config["params"] = {key: registry.model_params(key, settings.models)}
    return config


def same_config(a: dict, b: dict) -> bool:
    """Whether two configurations fit the same model (learned fusion weights aside)."""

    def strip(c: dict) -> dict:
        return {k: v for k, v in c.items() if k != "weights"}

    return json.loads(json.dumps(strip(a))) == json.loads(json.dumps(strip(b)))


def settings_for(config: dict, settings: Settings) -> Settings:
    """``settings`` with the hyper-parameters a configuration recorded (to fit it again as it was)."""
    overrides: dict = {"models": {}, "split": {"window_days": config.get("window_days")}}
    for key, params in config.get("params", {}).items():
        if key == registry.FUSION:
            overrides["models"]["fusion"] = params
            continue
        section = registry.spec(key).settings_section
        overrides["models"]["seed"] = params.get("seed")
        if section:
            overrides["models"][section] = {k: v for k, v in params.items() if k not in ("model", "seed")}
    return settings.with_overrides(overrides)


def validation_scores(run: RunFolder, keys: list[str], view: str) -> dict[str, float]:
    """Validation NDCG@10 of each candidate on ``view`` (fusion: its best weights' score on validation).

    Fusion's weights were chosen on the same validation users, so its score is the maximum over the
    grid: slightly optimistic, which the test-time comparison then checks.
    """
    out = {}
    for key in keys:
        path = run.fit_record(key)
        if not path.exists():
            continue
        fit = json.loads(path.read_text())
        if key == registry.FUSION:
            search = (fit.get("weight_search") or {}).get(view) or []
            if search:
                out[key] = max(float(s[VALIDATION_METRIC]) for s in search)
        elif (fit.get("valid") or {}).get(view):
            out[key] = float(fit["valid"][view][VALIDATION_METRIC])
    return out


def choose_challenger(run: RunFolder, keys: list[str], view: str) -> tuple[str, dict[str, float]]:
    """The candidate with the best validation score on ``view`` (ties: the earlier key).

    Raises:
        ValueError: no candidate has a validation score.
    """
    scores = validation_scores(run, keys, view)
    if not scores:
        raise ValueError(f"no candidate among {keys} has a validation score on {view}")
    return max(scores, key=lambda k: (scores[k], -keys.index(k))), scores


def comparison_table(
    champion_rows: pd.DataFrame, challenger_rows: pd.DataFrame, settings: Settings, champion: str, challenger: str
) -> list[dict]:
    """Paired challenger-minus-champion deltas per view, segment and metric on the same test users.

    Args:
        champion_rows, challenger_rows: ``user_metrics.parquet`` rows of each (view, user_id,
            history_items and one column per ``eval.compare_metrics``).
    Returns:
        One :class:`~ml.eval.compare.Comparison` dict per view x segment (overall, sparse, rest, history
        buckets) x metric, with the champion's and challenger's means.
    """
    out = []
    metrics = settings.eval.compare_metrics
    for view in VIEWS:
        a = champion_rows[champion_rows["view"] == view].set_index(C.USER)
        b = challenger_rows[challenger_rows["view"] == view].set_index(C.USER)
        users = a.index.intersection(b.index)
        if not len(users):
            continue
        a, b = a.loc[users], b.loc[users]
        masks = {"overall": np.ones(len(users), bool)}
        masks.update(
            length_segments(
                a["history_items"].to_numpy(), settings.split.sparse_max_items, settings.eval.history_buckets
            )
        )
        for segment, mask in masks.items():
            if not mask.any():
                continue
            for metric in metrics:
                record = compare_values(
                    a[metric].to_numpy()[mask],
                    b[metric].to_numpy()[mask],
                    a=champion,
                    b=challenger,
                    metric=metric,
                    slice=f"{view}/{segment}",
                    n_resamples=settings.eval.bootstrap_resamples,
                    random_state=settings.models.seed,
                ).to_dict()
                out.append({"view": view, "segment": segment, **record})
    return out


@dataclass
class Decision:
    """The outcome of one night's champion-vs-challenger comparison.

    Attributes:
        action: ``promote`` (the challenger takes the alias), ``first_champion`` (no champion yet),
            ``keep_champion`` (the champion's configuration keeps serving, refreshed on today's data),
            ``hold`` (a gate failed or a dry run: nothing is registered and the alias stays).
        serve: the configuration to refit and register (None with ``hold``).
        reasons: why, one line each.
        primary: the primary comparison (delta, interval, p-value), when there was a champion.
    """

    action: str
    challenger: str
    challenger_config: dict
    champion_version: int | None
    champion_config: dict | None
    serve: dict | None
    reasons: list[str]
    primary: dict | None = None
    validation: dict = field(default_factory=dict)
    table: list[dict] = field(default_factory=list)
    gates: dict = field(default_factory=dict)
    dry_run: bool = False

    @property
    def moves_alias(self) -> bool:
        """Whether a refit of ``serve`` is registered and takes the champion alias."""
        return self.action != HOLD and not self.dry_run

    def to_dict(self) -> dict:
        return {**asdict(self), "moves_alias": self.moves_alias}


def decide(
    settings: Settings,
    challenger: str,
    challenger_config: dict,
    validation: dict,
    gates: dict[str, bool],
    champion_version: int | None,
    champion_config: dict | None,
    table: list[dict],
) -> Decision:
    """Apply the promotion rule (see the module doc) to today's comparison.

    Args:
        gates: every gate of the run that bears on the served model, name -> passed.
        table: :func:`comparison_table` of the challenger against the champion's configuration (empty
            without a champion).
    """
    p = settings.promotion
    failed = [name for name, ok in gates.items() if not ok]
    reasons = [f"gate failed: {name}" for name in failed]
    primary = next(
        (r for r in table if r["view"] == p.view and r["segment"] == p.segment and r["metric"] == p.metric), None
    )
    common = dict(
        challenger=challenger,
        challenger_config=challenger_config,
        champion_version=champion_version,
        champion_config=champion_config,
        validation=validation,
        table=table,
        gates=gates,
        dry_run=p.dry_run,
    )
    if p.dry_run:
        reasons.append("dry run: the decision is reported, the alias does not move")
    if failed:
        reasons.append("the current champion keeps serving")
        return Decision(HOLD, serve=None, reasons=reasons, primary=primary, **common)
    if champion_version is None:
        reasons.append(f"no champion yet: {challenger} (best on validation) becomes the first")
        return Decision(FIRST, serve=challenger_config, reasons=reasons, primary=primary, **common)
    if primary is None:
        reasons.append(f"no test users in {p.view}/{p.segment}: the champion keeps serving")
        return Decision(KEEP, serve=champion_config, reasons=reasons, primary=None, **common)
    delta, low, high = primary["delta"], primary["ci_low"], primary["ci_high"]
    measured = (
        f"{p.view}/{p.segment} {p.metric}: challenger {challenger} {primary['b_value']:.4f} vs champion "
        f"v{champion_version} ({champion_config.get('model')}) {primary['a_value']:.4f}, "
        f"delta {delta:+.4f} [{low:+.4f}, {high:+.4f}] over {primary['n_users']} users"
    )
    if same_config(challenger_config, champion_config):
        reasons.append(f"the challenger is the champion's configuration ({challenger}): refreshed on today's data")
        return Decision(KEEP, serve=champion_config, reasons=reasons, primary=primary, **common)
    if delta >= p.margin and low > 0:
        reasons.append(f"promoted: {measured}; margin {p.margin} met and the interval is above zero")
        return Decision(PROMOTE, serve=challenger_config, reasons=reasons, primary=primary, **common)
    if high < 0:
        why = "the challenger is worse"
    elif low <= 0:
        why = "the interval includes zero"
    else:
        why = f"the delta is below the margin {p.margin}"
    reasons.append(f"refused: {measured}; {why}. The champion's configuration keeps serving, refreshed")
    return Decision(KEEP, serve=champion_config, reasons=reasons, primary=primary, **common)


def report_markdown(decision: Decision) -> str:
    """The champion-vs-challenger report: the decision, its reasons, and a table per view and segment."""
    d = decision
    lines = [
        f"# Promotion decision: {d.action}" + (" (dry run)" if d.dry_run else ""),
        "",
        f"- challenger: **{d.challenger}** (best validation NDCG@10: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(d.validation.items(), key=lambda kv: -kv[1]))
        + ")",
        f"- champion: {'v' + str(d.champion_version) if d.champion_version else 'none'}"
        + (f" ({d.champion_config.get('model')})" if d.champion_config else ""),
        "- gates: " + (", ".join(f"{k} {'passed' if v else 'FAILED'}" for k, v in d.gates.items()) or "none"),
        "",
        "## Reasons",
        "",
        *[f"- {r}" for r in d.reasons],
    ]
    if d.table:
        lines += [
            "",
            "## Challenger minus champion on today's test users (paired bootstrap, 95% interval)",
            "",
            "| view | segment | metric | champion | challenger | delta | 95% interval | p | users |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in d.table:
            lines.append(
                f"| {r['view']} | {r['segment']} | {r['metric']} | {r['a_value']:.4f} | {r['b_value']:.4f} | "
                f"{r['delta']:+.4f} | [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {r['p_value']:.3f} | {r['n_users']} |"
            )
    return "\n".join(lines) + "\n"
