"""Synthetic interactions per second with the embedded SmolLM2-135M on real sparse users of the bundled data.

Three ways to get next purchases from the same model for the same users (30 by default):

* likelihood: score each real candidate (PMI, shared prefill, several users per forward pass);
  every pick is a real catalog item by construction, then the quality filter runs;
* structured: the HTTP backend's JSON prompt ({"choices": [numbers]}) answered by the same model,
  parsed and validated;
* free text: "name the product they buy next", matched to a catalog title (the naive baseline).

Also prints choice accuracy on held-out real next purchases (hit@3 / MRR vs baselines), and item
enrichment seconds for the most popular items uncached (an empty cache) next to the same run again
fully cached (every item answered by the cache: no model call, so about nothing).

    python bench/bench_synth.py [--users 30] [--threads 1,2] [--lake PATH] [--accuracy-users 60] [--enrich-items 10]

Prints figures only (target: >= 10 accepted synthetic interactions/s with likelihood scoring on 2 cores).
Rates exclude model loading, title embeddings and one warm-up call. Likelihood scoring is measured
twice per thread count: "cold prior" scores the PMI prior of every candidate title (an empty prior
store, as on a new install), "next night" is another seeded sample of users whose prior scores come
partly from that store (as in the nightly run, which keeps the store under <home>/cache).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_bundled(lake: Path | None, settings):
    from ml.data.prepare import SourceSpec, prepare_split, read_lake_catalog, split_lake

    if lake is not None:
        return split_lake(lake, settings), read_lake_catalog(lake)
    prepared = prepare_split(SourceSpec.bundled(settings), settings)
    return prepared.data, prepared.catalog


def free_text(tasks, gen, index, max_tokens: int) -> dict:
    """Naive generation: a product name per user, valid when it is exactly a catalog title not already bought."""
    from ml.synth import prompts
    from ml.synth.llm.base import Prompt
    from ml.synth.prompts import plain

    template = prompts.load("next_purchase_freetext")
    by_title = {plain(t): i for i, t in zip(index.item_ids, index.titles)}
    started = time.perf_counter()
    answers = gen.generate(
        [Prompt(template.render(titles=[t for o in task.orders for t in o["titles"]])) for task in tasks],
        max_tokens=max_tokens,
        stop=["\n"],
    )
    seconds = time.perf_counter() - started
    outcome = {"valid": 0, "echo_of_history": 0, "not_in_catalog": 0}
    for task, answer in zip(tasks, answers):
        item = by_title.get(plain(answer.strip().strip(".\"'")))
        if item is None:
            outcome["not_in_catalog"] += 1
        elif item in task.history:
            outcome["echo_of_history"] += 1
        else:
            outcome["valid"] += 1
    return {
        "answers": len(answers),
        **outcome,
        "validity_rate": round(outcome["valid"] / max(len(answers), 1), 3),
        "seconds": round(seconds, 2),
        "valid_per_s": round(outcome["valid"] / seconds, 3),
        "examples": answers[:3],
    }


def likelihood_rate(tasks, gen, settings, data, catalog) -> dict:
    """Accepted synthetic interactions/s of likelihood scoring + the quality filter.

    The prior store lies under ``settings``' home.
    """
    from ml.synth.expansion import propose
    from ml.synth.quality import count_reasons, eligible_items, filter_proposals

    s = settings.synth
    cut, eligible = data.training_cut, eligible_items(data, catalog)
    t = time.perf_counter()
    proposals, _, prior = propose(tasks, gen, settings)
    flagged = filter_proposals(proposals, data.train, eligible, cut, s.min_score, s.max_per_user)
    seconds = time.perf_counter() - t
    counts = count_reasons(flagged)
    return {
        "users": len(tasks),
        **counts,
        **prior,
        "validity_rate": 1.0,
        "seconds": round(seconds, 2),
        "accepted_per_s": round(counts["accepted"] / seconds, 2),
    }


def enrichment_seconds(catalog, gen, settings, n_items: int) -> dict:
    """Wall seconds of :func:`ml.synth.enrichment.enrich_items` for ``n_items`` items, uncached then fully cached.

    ``settings``' home must be an empty temporary folder (the cache lies under it).
    """
    from ml import columns as C
    from ml.synth.enrichment import enrich_items

    s = settings.with_overrides({"synth": {"enrich_max_items": n_items}})
    order = [C.POPULARITY, C.ITEM] if C.POPULARITY in catalog else [C.ITEM]
    # only these items: the full catalog would make the second run enrich the next n_items (not a cached run)
    top = catalog.sort_values(order, ascending=[False, True][-len(order) :], kind="stable").head(n_items)
    out = {}
    for label in ("uncached", "cached"):
        t = time.perf_counter()
        _, report = enrich_items(top, gen, s)
        out[label] = {
            "seconds": round(time.perf_counter() - t, 3),
            **{k: report[k] for k in ("attempted", "ok", "from_cache")},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument(
        "--threads", default="1,2", help="comma-separated CPU thread counts to measure likelihood scoring with"
    )
    parser.add_argument(
        "--lake", type=Path, help="an existing lake (default: prepare the bundled data into a temp folder)"
    )
    parser.add_argument("--accuracy-users", type=int, default=60)
    parser.add_argument(
        "--enrich-items", type=int, default=10, help="items to enrich uncached, then again cached (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from ml.config import get_settings
    from ml.synth.candidates import CandidateIndex
    from ml.synth.evaluation import choice_accuracy, held_out_tasks
    from ml.synth.expansion import plan_users, propose_by_choice
    from ml.synth.llm.embedded import EmbeddedGenerator
    from ml.synth.quality import count_reasons, eligible_items, filter_proposals
    from ml.text.encoder import TitleEncoder

    threads = [int(n) for n in args.threads.split(",")]
    settings = get_settings().with_overrides(
        {"synth": {"max_users": args.users, "torch_threads": max(threads), "seed": args.seed}}
    )
    s = settings.synth
    t = time.perf_counter()
    data, catalog = load_bundled(args.lake, settings)
    print(
        f"data: {data.info['train_events']:,} training events, cut {data.info['validation_start']} "
        f"({time.perf_counter() - t:.1f} s)"
    )
    t = time.perf_counter()
    gen = EmbeddedGenerator.from_settings(settings)
    print(
        f"model: {gen.name} on {gen.device}, {gen.model.dtype}, load {time.perf_counter() - t:.1f} s; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    t = time.perf_counter()
    index = CandidateIndex(data.train, catalog, TitleEncoder.from_settings(settings, threads=max(threads)))
    tonight, info = plan_users(data, catalog, index, settings)
    next_night, _ = plan_users(data, catalog, index, settings.with_overrides({"synth": {"seed": args.seed + 1}}))
    print(
        f"candidates: {len(index)} eligible items, {info['users_planned']} of {info['sparse_users']} sparse users, "
        f"{len(tonight[0].candidates) if tonight else 0} candidates each "
        f"({time.perf_counter() - t:.1f} s incl. title embeddings)"
    )

    gen.score("Orders:\n2011-01-01:", [" warm up\n"] * 4)  # one-time kernel set-up is not throughput
    likelihood = {}
    with tempfile.TemporaryDirectory(prefix="bench-prior-") as tmp:
        for n in threads:
            g, home = gen.with_options(threads=n), settings.with_overrides({"paths": {"home": f"{tmp}/{n}"}})
            likelihood[f"{n} thread(s), cold prior"] = likelihood_rate(tonight, g, home, data, catalog)
            likelihood[f"{n} thread(s), next night"] = likelihood_rate(next_night, g, home, data, catalog)

    cut, eligible = data.training_cut, eligible_items(data, catalog)
    t = time.perf_counter()
    chosen = filter_proposals(
        propose_by_choice(tonight, gen, s.max_per_user, s.seed), data.train, eligible, cut, s.min_score, s.max_per_user
    )
    seconds = time.perf_counter() - t
    c = count_reasons(chosen)
    malformed = c["rejected"]["invalid_answer"] + c["rejected"]["not_a_candidate"]
    structured = {
        "users": len(tonight),
        **c,
        "validity_rate": round((c["generated"] - malformed) / max(c["generated"], 1), 3),
        "answers_parsed": round(1 - c["rejected"]["invalid_answer"] / max(len(tonight), 1), 3),
        "seconds": round(seconds, 2),
        "accepted_per_s": round(c["accepted"] / seconds, 3),
    }
    naive = free_text(tonight, gen, index, max_tokens=24)
    enrichment = None
    if args.enrich_items:
        with tempfile.TemporaryDirectory(prefix="bench-enrich-") as tmp:
            enrichment = enrichment_seconds(
                catalog, gen, settings.with_overrides({"paths": {"home": tmp}}), args.enrich_items
            )

    print(
        json.dumps(
            {"likelihood": likelihood, "structured_json": structured, "free_text": naive, "enrichment": enrichment},
            indent=2,
        )
    )
    print(f"{'method':<40}{'accepted/s':>12}{'validity':>10}{'prior cached/computed':>24}")
    for name, r in likelihood.items():
        print(
            f"{'likelihood, ' + name:<40}{r['accepted_per_s']:>12.2f}{r['validity_rate']:>10.2f}"
            f"{r['prior_cached']:>14}/{r['prior_computed']}"
        )
    print(
        f"{f'structured JSON, {max(threads)} thread(s)':<40}{structured['accepted_per_s']:>12.2f}"
        f"{structured['validity_rate']:>10.2f}"
    )
    print(f"{f'free text, {max(threads)} thread(s)':<40}{naive['valid_per_s']:>12.2f}{naive['validity_rate']:>10.2f}")
    if enrichment:
        cold, warm = enrichment["uncached"], enrichment["cached"]
        print(f"{'item enrichment':<40}{'uncached s':>12}{'cached s':>10}{'items new/from cache':>24}")
        print(
            f"{f'{args.enrich_items} items, {max(threads)} thread(s)':<40}{cold['seconds']:>12.2f}"
            f"{warm['seconds']:>10.3f}{cold['attempted']:>14}/{warm['from_cache']}"
        )

    if args.accuracy_users:
        t = time.perf_counter()
        held = held_out_tasks(data, catalog, index, args.accuracy_users, args.seed, s.n_copurchase, s.n_text)
        acc = choice_accuracy(held, gen, index)
        print(f"choice accuracy on held-out real next purchases ({time.perf_counter() - t:.1f} s): {json.dumps(acc)}")


if __name__ == "__main__":
    main()
