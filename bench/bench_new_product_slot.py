"""A new-product slot in fusion's discover list: what each source of new products buys, and what it costs.

Fusion's weights are shared by every customer, so nothing that is right only about new products gets
weight, and the fused list reaches none of them (the backtest's cold-item slice: Recall@10 0.0000). A
slot (``ml.models.fusion.NewProductSlot``) gives rank ``--position`` of each discover list to the best
new product (at most ``eval.backtest.cold_max_buyers`` buyers before the cut) of one source:

* ``newest``      the newest-products control (products first sold recently, by their buyers)
* ``text_knn``    content-kNN over MiniLM title vectors (the no-language-model control)
* ``item``        the item side's synthetic buyers of cold products (``ml.synth.strategies``), listed as
                  they are (re-buy over the synthetic events, without popularity fill)
* ``random_item`` its random-catalog control (same buyers and counts, products drawn uniformly)

At every cut of the rolling backtest (``eval.backtest``: 12 weekly cuts on the bundled data) fusion of
pop_recent, re-buy and ALS takes the weights chosen on the previous cut, as the backtest does; each
source's slot is applied to that same fused list. Prints, on the earlier half of the cuts (where a
choice is made, as in the ablation), the later half and all, each slot against no slot (discover
Recall@10 and NDCG@10 overall: the cost; cold products: the gain) and the item side against each
control on cold products, with paired 95% intervals (customers as bootstrap clusters).

    python bench/bench_new_product_slot.py [--position 10] [--span-days 84]
"""

from __future__ import annotations

import argparse
import time

SOURCES = ("newest", "text_knn", "item", "random_item")
SYNTHETIC = ("item", "random_item")  # sources that are a synthesis arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--position", type=int, default=10, help="the slot's rank in the list (1 = first)")
    parser.add_argument("--span-days", type=int, default=84)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from ml.config import get_settings
    from ml.data.prepare import SourceSpec, prepare_events
    from ml.data.rolling import EventLog, build_cut, item_known_from, rolling_cuts
    from ml.eval.backtest import compare_models
    from ml.models.augmented import AugmentedHistory
    from ml.models.fusion import Fusion, NewProductSlot
    from ml.models.rebuy import Rebuy
    from ml.pipeline.backtest import CutScorer, fit_at_cut, text_frame
    from ml.synth.arms import ARMS
    from ml.synth.events import as_interactions
    from ml.synth.strategies import StrategyInputs, synthesize_arm

    settings = get_settings().with_overrides({"eval": {"backtest": {"span_days": args.span_days}}})
    cfg, st = settings.eval.backtest, settings.synth.strategies
    cleaned = prepare_events(SourceSpec.bundled(settings), settings)
    events, catalog = cleaned.interactions, cleaned.catalog
    event_log = EventLog.of(events)
    cuts = rolling_cuts(event_log.end, cfg.span_days, cfg.step_days, cfg.horizon_days)
    known_from = item_known_from(events, catalog)
    vectors = text_frame(known_from.index, catalog, settings)
    members = ("pop_recent", "rebuy", "als")
    started = time.perf_counter()
    rows, weights, timing = [], None, dict.fromkeys(SOURCES, 0.0)
    for cut in [cuts[0] - pd.Timedelta(days=cfg.horizon_days)] + cuts:
        data = build_cut(event_log, cut, cfg.horizon_days, settings.split.window_days, known_from)
        scorer = CutScorer(data, settings)
        fitted = {m: fit_at_cut(m, data, settings, None)[0] for m in members}
        if weights is not None:
            inputs = StrategyInputs.at_cut(data, vectors, catalog)
            made, sources = {}, {}
            for source in SOURCES:
                t0 = time.perf_counter()
                if source in SYNTHETIC:
                    made[source] = synthesize_arm(ARMS[source], inputs, st, made, None, seed=settings.synth.seed)
                    extra = as_interactions(made[source], data.n_users, data.n_items)
                    sources[source] = AugmentedHistory(Rebuy(fill=False), extra).fit(data.train)
                else:
                    sources[source] = fit_at_cut(source, data, settings, vectors)[0]
                timing[source] += time.perf_counter() - t0
            new = np.asarray(data.buyers_before <= cfg.cold_max_buyers)
            lists = {"no_slot": Fusion(fitted, weights=weights, members_fitted=True)}
            for source, model in sources.items():
                slot = NewProductSlot(source, new, args.position)
                lists[f"slot_{source}"] = Fusion(
                    {**fitted, source: model}, weights=weights, members_fitted=True, slot=slot
                )
            for key, fusion in lists.items():
                _, key_rows, _ = scorer.score(key, dict.fromkeys(("repeat", "discover"), fusion))
                rows += [r[r["view"] == "discover"] for r in key_rows]  # the scorer wants both views
        weights = Fusion(fitted, members_fitted=True).fit_weights(
            scorer.users["discover"],
            data.history,
            scorer.truths["discover"],
            {m: tuple(settings.models.fusion.grid) for m in members},
        )
        print(f"cut {cut.date()}: {time.perf_counter() - started:.0f} s", flush=True)
    user_metrics = pd.concat(rows, ignore_index=True)
    reported = sorted(user_metrics["cut"].unique())
    n_valid = int(round(len(reported) * st.validation_share))
    phases = {"validation": reported[:n_valid], "test": reported[n_valid:], "all": reported}
    pairs = [("no_slot", f"slot_{s}") for s in SOURCES]
    pairs += [(f"slot_{control}", "slot_item") for control in ("random_item", "text_knn", "newest")]
    print(f"\n{len(cuts)} cuts {cuts[0].date()}..{cuts[-1].date()}, discover view, slot at rank {args.position}")
    print("| phase | B - A | slice | metric | A | B | B - A [95%] | customers |")
    print("|---|---|---|---|---|---|---|---|")
    for phase, phase_cuts in phases.items():
        frame = user_metrics[user_metrics["cut"].isin(phase_cuts)]
        for a, b in pairs:
            comparisons = compare_models(
                frame,
                a,
                b,
                ["recall@10", "ndcg@10"],
                settings.eval.history_buckets,
                settings.eval.bootstrap_resamples,
                settings.models.seed,
            )
            for r in comparisons:
                if (r["slice"], r["metric"]) in {
                    ("discover/overall", "recall@10"),
                    ("discover/overall", "ndcg@10"),
                    ("discover/cold_items", "recall@10"),
                }:
                    print(
                        f"| {phase} | {b} - {a} | {r['slice']} | {r['metric']} | {r['a_value']:.4f} | "
                        f"{r['b_value']:.4f} | {r['delta']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
                        f"{r['n_users']} |"
                    )
    print("\nseconds per source (fit or synthesis, all cuts): " + ", ".join(f"{s} {t:.0f}" for s, t in timing.items()))
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
