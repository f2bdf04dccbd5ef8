"""Fusion's discover list: members ranked without the customer's purchases (today) against ranked with them.

Reciprocal-rank fusion adds ``w / (60 + rank)`` of each member's list. In the discover view the
customer's purchases are hidden afterwards, so ranking a member's list *with* them (the earlier
behaviour) pushes its new items down by the number of purchases it ranks above them: re-buy, whose top
is the customer's own purchases, then adds almost nothing. ``Fusion(rank_unseen=True)`` ranks each
member without them. This bench fits pop_recent, re-buy and ALS once per cut of the rolling backtest
(``eval.backtest`` defaults: 12 weekly cuts on the bundled data), chooses each mode's weights on the
previous cut's horizon (as the backtest does) and prints both modes side by side, the difference with
its paired 95% interval (customers as bootstrap clusters) on the earlier half of the cuts (where a
choice is made, as in the ablation), the later half and all, and the weights each mode chose.

    python bench/bench_fusion_ranking.py [--span-days 84] [--arm item]

``--arm item`` (or any arm of ``ml.synth.strategies.ARMS``) gives re-buy and ALS that arm's synthetic
events at every cut: re-buy then lists the synthetic items as the customer's own (for ``item``: the
candidate buyers of cold products). With ``--member`` they go instead to a fourth member, re-buy over
the synthetic events without popularity fill (``Rebuy(fill=False)``), which lists nothing for a
customer without synthetic events, and re-buy and ALS see real data only.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--span-days", type=int, default=84)
    parser.add_argument("--arm", default="real", help="synthetic events given to re-buy and ALS (default: none)")
    parser.add_argument("--member", action="store_true", help="serve the arm's events as a fourth member instead")
    args = parser.parse_args()

    import pandas as pd

    from ml.config import get_settings
    from ml.data.prepare import SourceSpec, prepare_events
    from ml.data.rolling import EventLog, build_cut, item_known_from, rolling_cuts
    from ml.eval.backtest import compare_models
    from ml.models.augmented import AugmentedHistory
    from ml.models.fusion import Fusion
    from ml.models.rebuy import Rebuy
    from ml.pipeline.backtest import CutScorer, fit_at_cut, text_frame
    from ml.synth.arms import ARMS, REAL
    from ml.synth.events import as_interactions
    from ml.synth.strategies import StrategyInputs, synthesize_arm

    settings = get_settings().with_overrides({"eval": {"backtest": {"span_days": args.span_days}}})
    cfg, st = settings.eval.backtest, settings.synth.strategies
    cleaned = prepare_events(SourceSpec.bundled(settings), settings)
    events, catalog = cleaned.interactions, cleaned.catalog
    event_log = EventLog.of(events)
    cuts = rolling_cuts(event_log.end, cfg.span_days, cfg.step_days, cfg.horizon_days)
    known_from = item_known_from(events, catalog)
    vectors = text_frame(known_from.index, catalog, settings) if args.arm != REAL else None
    modes = {"with_history": False, "unseen": True}  # rank_unseen in the discover view
    members = ("pop_recent", "rebuy", "als")
    started = time.perf_counter()
    rows, weights, chosen = [], {}, []
    for cut in [cuts[0] - pd.Timedelta(days=cfg.horizon_days)] + cuts:
        data = build_cut(event_log, cut, cfg.horizon_days, settings.split.window_days, known_from)
        scorer = CutScorer(data, settings)
        extra = None
        if args.arm != REAL:
            inputs = StrategyInputs.at_cut(data, vectors, catalog)
            made = synthesize_arm(ARMS[args.arm], inputs, st, {}, None, seed=settings.synth.seed)
            extra = as_interactions(made, data.n_users, data.n_items) if len(made) else None
        own = None if args.member else extra
        fitted = {m: fit_at_cut(m, data, settings, None, own if m != "pop_recent" else None)[0] for m in members}
        if args.member:  # the arm's events served as they are: re-buy over them, without popularity fill
            fitted["synthetic"] = AugmentedHistory(Rebuy(fill=False), extra).fit(data.train)
        for mode, unseen in modes.items():
            if weights.get(mode) is not None:
                fusion = Fusion(fitted, weights=weights[mode], members_fitted=True, rank_unseen=unseen)
                _, mode_rows, _ = scorer.score(f"fusion_{mode}", dict.fromkeys(("repeat", "discover"), fusion))
                rows += [r[r["view"] == "discover"] for r in mode_rows]  # the scorer wants both views
                chosen.append({"cut": str(cut.date()), "mode": mode, **weights[mode]})
            fusion = Fusion(fitted, members_fitted=True)
            weights[mode] = fusion.fit_weights(
                scorer.users["discover"],
                data.history,
                scorer.truths["discover"],
                {m: tuple(settings.models.fusion.grid) for m in fitted},
                rank_unseen=unseen,
            )
        print(f"cut {cut.date()}: {time.perf_counter() - started:.0f} s", flush=True)
    user_metrics = pd.concat(rows, ignore_index=True)
    reported = sorted(user_metrics["cut"].unique())
    n_valid = int(round(len(reported) * st.validation_share))  # the ablation's split: earlier cuts choose
    phases = {"validation": reported[:n_valid], "test": reported[n_valid:], "all": reported}
    print(f"\n{len(cuts)} cuts {cuts[0].date()}..{cuts[-1].date()}, arm {args.arm}, discover view")
    print("| phase | slice | metric | ranked with history | ranked unseen | unseen - with [95%] | customers |")
    print("|---|---|---|---|---|---|---|")
    for phase, phase_cuts in phases.items():
        comparisons = compare_models(
            user_metrics[user_metrics["cut"].isin(phase_cuts)],
            "fusion_with_history",
            "fusion_unseen",
            ["recall@10", "ndcg@10"],
            settings.eval.history_buckets,
            settings.eval.bootstrap_resamples,
            settings.models.seed,
        )
        for r in comparisons:
            if phase == "all" or r["slice"] in ("discover/overall", "discover/cold_items"):
                print(
                    f"| {phase} | {r['slice']} | {r['metric']} | {r['a_value']:.4f} | {r['b_value']:.4f} | "
                    f"{r['delta']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {r['n_users']} |"
                )
    print("\nweights chosen on the previous cut (discover):")
    print(pd.DataFrame(chosen).to_string(index=False))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
