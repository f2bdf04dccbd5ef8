"""Which members fusion should fuse: the nightly set against the same set without, or with, one more model.

At every cut of the rolling backtest (``eval.backtest``: 12 weekly cuts on the bundled data) each
candidate set is fused with weights chosen per view on the previous cut's horizon (as the backtest
does). Prints, for each set against the base, the difference in Recall@10 and NDCG@10 (overall and
cold products, both views) with its paired 95% interval, on the earlier half of the cuts (where a
choice is made, as in the ablation), the later half and all, then the weights each set chose.

    python bench/bench_fusion_members.py [--base pop_recent,rebuy,als] [--try text_knn,newest] [--span-days 84]

``--try`` names the models tried one at a time on top of ``--base``; a name prefixed with ``-`` is
tried as a removal from it (``--try=-text_knn``).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="pop_recent,rebuy,als")
    parser.add_argument("--try", dest="tries", default="text_knn,newest")
    parser.add_argument("--span-days", type=int, default=84)
    args = parser.parse_args()

    import pandas as pd

    from ml.config import get_settings
    from ml.data.prepare import SourceSpec, prepare_events
    from ml.data.rolling import EventLog, build_cut, item_known_from, rolling_cuts
    from ml.eval.backtest import compare_models
    from ml.eval.protocol import VIEWS
    from ml.models.fusion import Fusion
    from ml.pipeline.backtest import CutScorer, fit_at_cut, item_vectors

    base = [m for m in args.base.split(",") if m]
    sets = {"base": base}
    for name in (t for t in args.tries.split(",") if t):
        sets[name] = [m for m in base if m != name[1:]] if name.startswith("-") else [*base, name]
    models = sorted({m for members in sets.values() for m in members})
    settings = get_settings().with_overrides({"eval": {"backtest": {"span_days": args.span_days}}})
    cfg, grid = settings.eval.backtest, tuple(settings.models.fusion.grid)
    cleaned = prepare_events(SourceSpec.bundled(settings), settings)
    events, catalog = cleaned.interactions, cleaned.catalog
    event_log = EventLog.of(events)
    cuts = rolling_cuts(event_log.end, cfg.span_days, cfg.step_days, cfg.horizon_days)
    known_from = item_known_from(events, catalog)
    vectors = item_vectors(models, known_from.index, catalog, settings)
    started = time.perf_counter()
    rows, weights, chosen = [], {}, []
    for cut in [cuts[0] - pd.Timedelta(days=cfg.horizon_days)] + cuts:
        data = build_cut(event_log, cut, cfg.horizon_days, settings.split.window_days, known_from)
        scorer = CutScorer(data, settings)
        fitted = {m: fit_at_cut(m, data, settings, vectors)[0] for m in models}
        for name, members in sets.items():
            sub = {m: fitted[m] for m in members}
            if name in weights:
                by_view = {v: Fusion(sub, weights=weights[name][v], members_fitted=True) for v in VIEWS}
                rows += scorer.score(f"fusion_{name}", by_view)[1]
                flat = {f"{v}:{m}": w for v in VIEWS for m, w in weights[name][v].items()}
                chosen.append({"cut": str(cut.date()), "set": name, **flat})
            weights[name] = {
                view: Fusion(sub, members_fitted=True).fit_weights(
                    scorer.users[view],
                    data.history,
                    scorer.truths[view],
                    {m: grid for m in members},
                    filter_already_liked_items=exclude_seen,
                )
                for view, exclude_seen in VIEWS.items()
            }
        print(f"cut {cut.date()}: {time.perf_counter() - started:.0f} s", flush=True)
    user_metrics = pd.concat(rows, ignore_index=True)
    reported = sorted(user_metrics["cut"].unique())
    n_valid = int(round(len(reported) * settings.synth.strategies.validation_share))
    phases = {"validation": reported[:n_valid], "test": reported[n_valid:], "all": reported}
    print(f"\n{len(cuts)} cuts {cuts[0].date()}..{cuts[-1].date()}; base: {', '.join(base)}")
    print("| phase | set - base | slice | metric | base | set | set - base [95%] | customers |")
    print("|---|---|---|---|---|---|---|---|")
    for phase, phase_cuts in phases.items():
        frame = user_metrics[user_metrics["cut"].isin(phase_cuts)]
        for name in sets:
            if name == "base":
                continue
            comparisons = compare_models(
                frame,
                "fusion_base",
                f"fusion_{name}",
                ["recall@10", "ndcg@10"],
                settings.eval.history_buckets,
                settings.eval.bootstrap_resamples,
                settings.models.seed,
            )
            for r in comparisons:
                if r["slice"].split("/")[1] in ("overall", "cold_items"):
                    print(
                        f"| {phase} | {name} | {r['slice']} | {r['metric']} | {r['a_value']:.4f} | "
                        f"{r['b_value']:.4f} | {r['delta']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
                        f"{r['n_users']} |"
                    )
    print("\nweights chosen on the previous cut:")
    print(pd.DataFrame(chosen).to_string(index=False))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
