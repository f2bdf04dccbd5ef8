"""BERT4Rec or SASRec variants on the bundled Online Retail data (temporal split), side by side with popularity.

Any other data works the same way: ``--events FILE`` (with ``--catalog FILE`` for titles, as ``python -m ml
benchmark`` takes them) and ``--protocol`` (``temporal``, ``leave-one-out``, ``leave-one-basket-out``). On a
ratings file with a title catalog, ``--variants text:discover,ids:discover`` measures whether title text helps
its sequence model there, paired over the same test users.

Prints test-period NDCG@10 in both views (repeat: all items; discover: items not bought before),
overall and for sparse users, plus Recall@20 on cold items (test purchases of items with at most
``--cold-max`` buyers before the test period) and each training's time and best epoch.

Variants (``--variants``, comma separated), each ``<text>:<view>[:param=value...]``:
  ``ids``, ``text`` or ``enriched`` -- item-id embeddings only, or plus a projection of MiniLM item-text
  vectors of the titles (``text``) or of the titles plus the accepted enrichment in the store
  (``enriched``; fill it with ``python -m ml enrich-backfill``) -- both train with ``text_dropout``,
  0.3 by default, instead of ``dropout``;
  ``repeat`` or ``discover`` -- the validation view early stopping and the kept checkpoint follow;
  ``param=value`` -- any other model argument, e.g. ``dropout=0.3``, ``mask_prob=0.4`` or
  ``lr_decay=plateau`` (a value that is not JSON is taken as a string).

``--model sasrec`` trains the causal model instead of BERT4Rec (same variants). Every variant after the
first is compared with the first on the same test customers (NDCG@10 difference, paired bootstrap 95% interval).

``--seeds 42,43,44`` trains every variant once per seed (as ``<variant>@<seed>``) and adds, per variant, the mean
and spread of its best validation NDCG@10 over the seeds (what a choice is made on) and seed-averaged paired
test differences against the first variant (each customer's metric averaged over the seeds first, as
``python -m ml benchmark --seeds``).

    python bench/bench_bert4rec_retail.py --max-minutes 5 --variants ids:repeat,ids:discover,text:discover
    python bench/bench_bert4rec_retail.py --model sasrec --max-minutes 1000 --max-epochs 80 \
        --variants text:discover,text:discover:lr_decay=plateau
    python bench/bench_bert4rec_retail.py --model sasrec --max-minutes 1000 --max-epochs 80 --seeds 42,43,44 \
        --variants text:discover:block=bert:heads=2:feed_forward=null:activation=gelu,text:discover
    python bench/bench_bert4rec_retail.py --events ratings.csv --catalog movies.csv --protocol leave-one-out \
        --model sasrec --max-minutes 60 --variants text:discover,ids:discover

Variants start from the model's settings section (``models.sasrec`` trains GPT-2's block in SASRec's shape; the
last example compares BERT's block, the earlier default, with it: validation 0.1068 +- 0.0019 vs 0.1103 +- 0.0014).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import SPLIT_PROTOCOLS, Settings
from ml.data.lake import write_json_atomic
from ml.data.prepare import SourceSpec, prepare_split
from ml.models.bert4rec.model import Bert4Rec, SASRec
from ml.pipeline.benchmark import seed_averaged_comparisons
from ml.pipeline.evaluation import evaluate_models
from ml.pipeline.layout import RunFolder
from ml.pipeline.training import fit_model
from ml.synth.enrichment import stored_attributes
from ml.text.encoder import TitleEncoder
from ml.text.items import item_text_vectors


def cold_item_recall(run_dir: Path, data, cold_max: int, k: int = 20) -> dict[str, float]:
    """Per model, the share of discover-view test purchases of cold items found in the top ``k``."""
    history = data.history_for_test().csr(binary=True)
    buyers = pd.Series(np.asarray(history.sum(axis=0)).ravel(), index=data.item_ids)
    cold = set(buyers.index[buyers <= cold_max])
    truth = pd.read_parquet(run_dir / "ground_truth.parquet")
    truth = truth[~truth["repeat"] & truth[C.ITEM].isin(cold)]
    recs = pd.read_parquet(run_dir / "recommendations.parquet")
    recs = recs[(recs["view"] == "discover") & (recs[C.RANK] <= k)]
    out = {}
    for model, frame in recs.groupby(C.MODEL):
        hits = truth.merge(frame[[C.USER, C.ITEM]], on=[C.USER, C.ITEM]).shape[0]
        out[model] = hits / max(len(truth), 1)
    out["_pairs"] = len(truth)
    return out


def parse_value(text: str):
    """A variant's parameter value: JSON where it parses (numbers, true, null), else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def seed_summary(variants: list[str], seeds: list[int], fits: dict, run: RunFolder, settings: Settings) -> list[str]:
    """Lines to print: per variant its best validation NDCG@10 over the seeds (what a choice is made on), then the
    seed-averaged test differences from the first variant."""
    lines = [f"\nover seeds {seeds}: best validation NDCG@10 (mean +- sd, each seed), best epochs, throughput"]
    for variant in variants:
        runs = [fits[f"{variant}@{seed}"] for seed in seeds]
        val = [r["best_val_ndcg@10"] for r in runs]
        lines.append(
            f"{variant:<60} val {np.mean(val):.4f} +- {np.std(val, ddof=1) if len(val) > 1 else 0.0:.4f} "
            f"({', '.join(f'{v:.4f}' for v in val)}); best epochs {[r['best_epoch'] for r in runs]} of "
            f"{[r['epochs_run'] for r in runs]}; {np.mean([r['sequences_per_s'] for r in runs]):.0f} seq/s"
        )
    frame = pd.read_parquet(run.user_metrics)
    named = frame[C.MODEL].str.rpartition("@")
    seeded = named[1] == "@"  # popularity is trained once, without a seed
    frame = frame[seeded].assign(**{C.MODEL: named[0][seeded], "seed": named[2][seeded].astype(int)})
    records = seed_averaged_comparisons(frame, [(variants[0], v) for v in variants[1:]], settings, seeds)
    for r in records:
        if r["slice"] in ("discover/overall", "repeat/overall", "discover/sparse") and r["metric"] == "ndcg@10":
            lines.append(
                f"{r['b']} - {r['a']}: {r['slice']} test NDCG@10, seed-averaged {r['delta']:+.4f} "
                f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] ({r['n_users']} customers)"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="ids:repeat,ids:discover,text:discover")
    parser.add_argument("--model", choices=("bert4rec", "sasrec"), default="bert4rec")
    parser.add_argument("--max-minutes", type=float, default=5.0, help="training time cap per variant")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--cold-max", type=int, default=5, help="items with at most this many buyers are cold")
    parser.add_argument("--out", type=Path, default=None, help="keep models and metrics here (default: temporary)")
    parser.add_argument("--seeds", default=None, help="comma list: train every variant once per seed")
    parser.add_argument("--events", type=Path, default=None, help="an events file instead of the bundled data")
    parser.add_argument("--catalog", type=Path, default=None, help="its item catalog (item_id, title, ...)")
    parser.add_argument("--protocol", choices=list(SPLIT_PROTOCOLS), default="temporal")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("ml.models.bert4rec.lightning").setLevel(logging.INFO)  # one progress line per epoch

    settings = Settings()
    spec = SourceSpec.from_files(settings, [args.events] if args.events else (), args.catalog)
    prepared = prepare_split(spec, settings, args.protocol)
    data, catalog = prepared.data, prepared.catalog
    started = time.perf_counter()
    encoder = TitleEncoder.from_settings(settings)
    vectors = {"ids": None, "text": item_text_vectors(data.item_ids, catalog, encoder=encoder)}
    print(
        f"item text vectors: {vectors['text'].shape} in {time.perf_counter() - started:.1f} s "
        f"({int((np.abs(vectors['text']).sum(1) > 0).sum())} items with text)"
    )
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [None]
    variants = [v.split(":") for v in args.variants.split(",")]  # [text, view, param=value...]
    if any(kind == "text" for kind, *_ in variants) and not np.abs(vectors["text"]).sum():
        raise SystemExit("no item has a title (a ratings file without --catalog?): use ids variants only")
    if any(kind == "enriched" for kind, *_ in variants):
        accepted = stored_attributes(settings, catalog)
        if accepted.empty:
            raise SystemExit("the enrichment store is empty: run `python -m ml enrich-backfill` first")
        vectors["enriched"] = item_text_vectors(data.item_ids, catalog, accepted, encoder=encoder)
        print(f"enriched item text: {len(accepted)} products carry accepted enrichment")

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.out or Path(tmp)
        run = RunFolder(run_dir)
        fit_model("pop", data, settings, run)
        names, fits = ["pop"], {}
        for (kind, view, *extra), seed in ((v, seed) for v in variants for seed in seeds):
            params = {k: parse_value(v) for k, v in (e.split("=", 1) for e in extra)}
            name = "_".join([args.model, kind, view, *extra])
            if seed is not None:
                params["seed"], name = seed, f"{name}@{seed}"
            model = {"bert4rec": Bert4Rec, "sasrec": SASRec}[args.model].from_settings(
                settings.models,
                protocol=args.protocol,
                val_view=view,
                max_minutes=args.max_minutes,
                max_epochs=args.max_epochs,
                item_text=vectors[kind],
                **params,
            )
            t0 = time.perf_counter()
            model.fit(data.train_i, data.valid_i)
            fit_s = time.perf_counter() - t0
            model.save(run.model_dir(name, "final"))
            s = model.training_summary
            fits[name] = s
            write_json_atomic({"fit_seconds": round(fit_s, 1)}, run.fit_record(name))
            names.append(name)
            print(
                f"{name}: {fit_s:.0f} s, {s['epochs_run']} epochs, best epoch {s['best_epoch']} "
                f"(val_ndcg@10 {s['best_val_ndcg@10']}, popularity {s['popularity_val_ndcg@10']}), "
                f"stopped by {s['stopped_by']}, learning rate halved after epochs {s['lr_decays_after_epoch']}, "
                f"baskets {'shuffled' if s['shuffle_baskets'] else 'in the split order'}",
                flush=True,
            )
        # every variant against the first, paired over the same test customers (bootstrap 95% intervals)
        doc = evaluate_models(names, data, settings, run, compare=[(names[1], n) for n in names[2:]])
        cold = cold_item_recall(run_dir, data, args.cold_max)
        keys = ["_".join([args.model, *v]) for v in variants]
        over_seeds = seed_summary(keys, seeds, fits, run, settings) if args.seeds else []

    print(
        f"\n{spec.describe()}, {args.protocol} protocol"
        + (f", test from {data.info['test_start']}" if data.info.get("test_start") else "")
        + "; "
        f"sparse = <= {settings.split.sparse_max_items} items;"
        f" cold items: <= {args.cold_max} buyers ({cold['_pairs']} discover test pairs)"
    )
    print(
        f"{'model':<40}{'rep NDCG@10':>12}{'rep sparse':>11}{'disc NDCG@10':>13}{'disc sparse':>12}"
        f"{'cold R@20':>10}{'best ep':>8}{'fit s':>7}"
    )
    for name in names:
        v = doc["models"][name]["views"]
        s = fits.get(name, {})
        print(
            f"{name:<40}{v['repeat']['overall']['ndcg@10']:>12.4f}"
            f"{v['repeat'].get('sparse', {}).get('ndcg@10', float('nan')):>11.4f}"
            f"{v['discover']['overall']['ndcg@10']:>13.4f}"
            f"{v['discover'].get('sparse', {}).get('ndcg@10', float('nan')):>12.4f}"
            f"{cold.get(name, float('nan')):>10.4f}{str(s.get('best_epoch', '')):>8}"
            f"{doc['models'][name]['fit_seconds'] or 0:>7.0f}"
        )
    shown = {"discover/overall", "discover/sparse", "discover/cold_items", "repeat/overall"}
    for r in doc["comparisons"]:
        if r["slice"] in shown and r["metric"] == "ndcg@10":
            print(
                f"{r['b']} - {r['a']}: {r['slice']} NDCG@10 {r['delta']:+.4f} "
                f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] ({r['n_users']} customers)"
            )
    print("\n".join(over_seeds))
    if args.out:
        (args.out / "training.json").write_text(json.dumps(fits, indent=1, default=str))


if __name__ == "__main__":
    main()
