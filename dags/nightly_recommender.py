"""
### Nightly recommender retraining

Cleans the shop's transactions (every dropped row quarantined with its reason), gates them with
Great Expectations, builds a leak-free temporal split, synthesizes extra training data with a
language model (grounded in the catalog, gated), trains the recommenders on real data and on
real + synthetic data, fuses them and evaluates them on the held-out future period. Then the
challenger (the best on validation) meets the champion's configuration on today's test data; the
configuration that wins is refit on everything up to the as-of date, smoke-checked, registered as
a version of the served model and given the `champion` alias, and the champion writes the day's
batch lists for every active customer.

`ingest -> clean -> gate -> build_dataset -> start_tracking -> synthesize -> gate_synthetic -> train_*
-> fuse -> evaluate -> decide -> refit -> smoke_check -> register -> recommend -> summary`, and beside
training a rolling `backtest` of the cheap models (the last 12 weeks replayed night by night, new
customers and new products counted, 95% intervals).

Nothing moves the alias before the refit model passed its smoke check; a failed gate or a dry run
keeps the champion serving. A generator outage or a failed synthetic gate never fails the run: it
continues on real data only and says so (MLflow tag `synthetic_status`, the summary).

Assets: `shop_clean_interactions` (after `clean`) and `shop_recommender_champion` (after `recommend`:
the champion and its lists for the day) let downstream DAGs schedule on them (`export_recommendations`).

Trigger it by hand with the form to choose the as-of date, the models and a few settings; all other
settings come from `RECO_*` environment variables or the file in `RECO_SETTINGS_FILE`. Sequence-model
training and synthesis run in the `gpu` pool and on the Celery queue `RECO_ORCHESTRATION__GPU_QUEUE`
(`default` on one machine; `gpu` where a worker on a GPU machine consumes it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import get_args

import pendulum
from airflow.sdk import Param, dag, task

from ml.config import NewProductSource
from ml.models.registry import BASE_MODELS
from ml.pipeline.assets import CHAMPION, CLEAN_INTERACTIONS
from ml.pipeline.placement import gpu_task
from ml.synth.arms import nightly_choices

GPU = gpu_task()  # pool and Celery queue of GPU work (RECO_ORCHESTRATION__GPU_QUEUE)

MODEL_CHOICES = list(BASE_MODELS)
DATA, MODELS, SYNTHESIS, PROMOTION = "Data", "Models", "Synthesis", "Promotion and serving"


def _ctx(params, context):
    """The run's settings, as-of date, params and ids (see ml.pipeline.airflow_params.run_context)."""
    from ml.pipeline.airflow_params import run_context
    from ml.pipeline.replay import ReplayFinished

    ti, dag_ = context.get("ti"), context.get("dag")
    try:
        return run_context(
            params,
            context.get("logical_date"),
            context.get("run_after"),
            context.get("run_id"),
            dag_id=getattr(dag_, "dag_id", "") or "",
            task_id=getattr(ti, "task_id", "") or "",
        )
    except ReplayFinished as exc:  # the live demo shop has released all of its history: skip, say why
        from airflow.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from exc


def _nightly_models() -> list[str]:
    from ml.config import get_settings

    return list(get_settings().models.nightly)


def _nightly_strategy() -> str:
    from ml.config import get_settings

    return get_settings().synth.strategies.nightly


def _new_product_slot() -> str:
    from ml.config import get_settings

    return get_settings().serve.new_product_slot


@dag(
    dag_id="nightly_recommender",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2009, 12, 1, tz="UTC"),  # first day of the bundled history: any day can be replayed
    catchup=False,
    max_active_runs=1,
    tags=["recommender", "nightly"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="As-of date",
            description="Use data up to this day (YYYY-MM-DD). Empty: the run's logical date (or its replayed day).",
            section=DATA,
        ),
        "test_days": Param(
            100,
            type="integer",
            minimum=1,
            title="Test days",
            description="Length of the held-out test period.",
            section=DATA,
        ),
        "validation_days": Param(
            31,
            type="integer",
            minimum=1,
            title="Validation days",
            description="Length of the validation period before the test.",
            section=DATA,
        ),
        "models": Param(
            _nightly_models(),
            type="array",
            items={"type": "string", "enum": MODEL_CHOICES},
            title="Models",
            description="Base models; fusion combines those trained (controls: newest, text_knn, markov, item_knn).",
            section=MODELS,
        ),
        "bert_max_epochs": Param(
            200,
            type="integer",
            minimum=1,
            title="BERT4Rec max epochs",
            description="Upper bound; early stopping usually ends sooner.",
            section=MODELS,
        ),
        "bert_max_minutes": Param(
            60,
            type="number",
            minimum=1,
            title="BERT4Rec time cap (minutes)",
            description="Wall-time cap per BERT4Rec training; the best epoch so far is kept.",
            section=MODELS,
        ),
        "bert_item_text": Param(
            "augment",
            type="string",
            enum=["none", "augment", "init", "init+augment"],
            title="BERT4Rec item text",
            description="augment: add MiniLM title vectors to the item embeddings; init: start them from their PCA.",
            section=MODELS,
        ),
        "seed": Param(42, type="integer", title="Seed", description="Random seed of every model.", section=MODELS),
        "backtest": Param(
            True,
            type="boolean",
            title="Backtest the cheap models",
            description="Replay the last 12 weeks night by night (popularity, re-buy, ALS, controls, fusion).",
            section=MODELS,
        ),
        "synthesis": Param(
            True,
            type="boolean",
            title="Synthesize training data",
            description="Synthesize training data (the strategy below); models also train on real data only.",
            section=SYNTHESIS,
        ),
        "synth_strategy": Param(
            _nightly_strategy(),
            type="string",
            enum=nightly_choices(_nightly_strategy()),
            title="Synthesis strategy",
            description="prior: pseudo-history before short histories (chosen by the ablation); item: buyers for new "
            "products; appended: next purchases; _llm: re-ranked by the language model; expansion: its own picks.",
            section=SYNTHESIS,
        ),
        "synth_backend": Param(
            "embedded",
            type="string",
            enum=["embedded", "openai"],
            title="Generator",
            description="embedded: the bundled SmolLM2 model; openai: the OpenAI-compatible server in settings.",
            section=SYNTHESIS,
        ),
        "synth_max_per_user": Param(
            3,
            type="integer",
            minimum=1,
            maximum=20,
            title="Synthetic purchases per user",
            description="Cap on accepted synthetic interactions per sparse user (the synthetic share).",
            section=SYNTHESIS,
        ),
        "top_k": Param(
            10,
            type="integer",
            minimum=1,
            maximum=100,
            title="K (list length)",
            description="Items per customer and view in the batch lists.",
            section=PROMOTION,
        ),
        "new_product_slot": Param(
            _new_product_slot(),
            type="string",
            enum=list(get_args(NewProductSource)),
            title="New-product slot",
            description="Rank serve.new_product_position (10) of each served discover list goes to the best new "
            "product (5 buyers or fewer) of the newest-products model or content-kNN; off: the champion as evaluated.",
            section=PROMOTION,
        ),
        "promotion_margin": Param(
            0.0,
            type="number",
            minimum=0,
            title="Promotion margin",
            description="The challenger must beat the champion's configuration by at least this much "
            "(discover NDCG@10 on today's test), with the 95% interval of the delta above zero.",
            section=PROMOTION,
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Decide and report, but register nothing and leave the champion alias where it is.",
            section=PROMOTION,
        ),
    },
    doc_md=__doc__,
)
def nightly_recommender():
    @task
    def ingest(params=None, **context) -> dict:
        """Read the source up to the as-of date, gate the raw rows, stage them."""
        from ml.pipeline.steps import ingest_step

        run = _ctx(params, context)
        return ingest_step(run.settings, run.as_of)

    @task(outlets=[CLEAN_INTERACTIONS])
    def clean(ingested: dict, params=None, **context) -> dict:
        """Clean into the lake: interactions, catalog, quarantine (with reasons); updates the asset."""
        from ml.pipeline.steps import clean_step

        run = _ctx(params, context)
        return clean_step(run.settings, run.as_of)

    @task
    def gate(cleaned: dict, params=None, **context) -> dict:
        """Great Expectations gates on interactions and catalog; a failure stops the run."""
        from ml.pipeline.steps import gate_step

        run = _ctx(params, context)
        return gate_step(run.settings, run.as_of)

    @task
    def build_dataset(gated: dict, params=None, **context) -> dict:
        """Leak-free temporal split for the as-of date."""
        from ml.pipeline.steps import build_dataset_step

        run = _ctx(params, context)
        return build_dataset_step(run.settings, run.as_of)

    @task
    def start_tracking(dataset: dict, params=None, **context) -> str:
        """Open the MLflow parent run and log settings and the dataset."""
        from ml.pipeline.steps import start_tracking_step

        run = _ctx(params, context)
        return start_tracking_step(run.settings, run.as_of, run.run_id, dataset, run.params, tags=run.tags)

    @task(**GPU)
    def synthesize(dataset: dict, params=None, **context) -> dict:
        """Synthesis: the nightly strategy's synthetic interactions and language-model item attributes."""
        from ml.pipeline.steps import synthesize_step

        run = _ctx(params, context)
        return synthesize_step(run.settings, run.as_of, enabled=run.params.get("synthesis", True))

    @task
    def gate_synthetic(synth: dict, parent_run_id: str, params=None, **context) -> dict:
        """Synthetic-data gate (GX suite + KL vs real); failing keeps synthetic data out of training."""
        from ml.pipeline.steps import gate_synthetic_step

        run = _ctx(params, context)
        return gate_synthetic_step(run.settings, run.as_of, synth, parent_run_id)

    @task
    def train_baselines(dataset: dict, parent_run_id: str, params=None, **context) -> list[dict]:
        """Popularity (all-time, recent) and re-buy baselines."""
        from ml.pipeline.steps import train_task_step

        run = _ctx(params, context)
        return train_task_step(
            run.settings, run.as_of, "baselines", run.models, parent_run_id, run.run_id, {}, run.tags
        )

    @task
    def train_als(parent_run_id: str, synthetic: dict, params=None, **context) -> list[dict]:
        """ALS (implicit), on the GPU when implicit has CUDA; again on real + synthetic data when it passed its gate."""
        from ml.pipeline.steps import train_task_step

        run = _ctx(params, context)
        return train_task_step(
            run.settings, run.as_of, "als", run.models, parent_run_id, run.run_id, synthetic, run.tags
        )

    @task(**GPU)
    def train_bert4rec(parent_run_id: str, synthetic: dict, params=None, **context) -> list[dict]:
        """Sequence models (BERT4Rec, causal SASRec), early-stopped on validation NDCG@10; BERT4Rec on synthetic too."""
        from ml.pipeline.steps import train_task_step

        run = _ctx(params, context)
        return train_task_step(
            run.settings, run.as_of, "bert4rec", run.models, parent_run_id, run.run_id, synthetic, run.tags
        )

    @task
    def fuse(
        parent_run_id: str, baselines: list[dict], als: list[dict], bert: list[dict], params=None, **context
    ) -> dict:
        """Fusion weights per view, chosen on validation."""
        from ml.pipeline.steps import fuse_step

        run = _ctx(params, context)
        trained = [r["model"] for r in baselines + als + bert]
        return fuse_step(run.settings, run.as_of, trained, parent_run_id, run.run_id, run.tags)

    @task
    def backtest(dataset: dict, parent_run_id: str, params=None, **context) -> dict:
        """Rolling backtest of the cheap models: weekly cuts, new customers and cold items counted, intervals."""
        from ml.pipeline.steps import backtest_step

        run = _ctx(params, context)
        if not run.params.get("backtest", True):
            return {"skipped": True}
        return backtest_step(run.settings, run.as_of, parent_run_id)

    @task
    def evaluate(
        parent_run_id: str,
        fused: dict,
        baselines: list[dict],
        als: list[dict],
        bert: list[dict],
        params=None,
        **context,
    ) -> dict:
        """Full-ranking metrics of every model on the test period, logged to each model's MLflow run."""
        from ml.pipeline.steps import evaluate_step

        run = _ctx(params, context)
        models = [r["model"] for r in baselines + als + bert] + ([fused["model"]] if fused.get("model") else [])
        return evaluate_step(run.settings, run.as_of, models, parent_run_id, run.run_id)

    @task
    def decide(evaluated: dict, gated: dict, synth_gate: dict, parent_run_id: str, params=None, **context) -> dict:
        """Challenger (best on validation) vs the champion's configuration on today's test: promote, keep, hold."""
        from ml.pipeline.promotion_steps import decide_step

        run = _ctx(params, context)
        return decide_step(run.settings, run.as_of, list(evaluated["models"]), gated, synth_gate, parent_run_id)

    @task
    def refit(decision: dict, parent_run_id: str, synth_gate: dict, params=None, **context) -> dict:
        """Refit the decided configuration on everything up to the as-of date; log it as an MLflow model."""
        from ml.pipeline.promotion_steps import refit_step

        run = _ctx(params, context)
        return refit_step(run.settings, run.as_of, decision, parent_run_id, run.run_id, run.tags, synth_gate)

    @task
    def smoke_check(refitted: dict, params=None, **context) -> dict:
        """Load the logged model through MLflow and check its lists; a failure registers nothing."""
        from ml.pipeline.promotion_steps import smoke_check_step

        run = _ctx(params, context)
        return smoke_check_step(run.settings, run.as_of, refitted)

    @task
    def register(decision: dict, refitted: dict, smoke: dict, parent_run_id: str, params=None, **context) -> dict:
        """Register the checked model as a version of the served model and move the champion alias to it."""
        from ml.pipeline.promotion_steps import register_step

        run = _ctx(params, context)
        return register_step(run.settings, run.as_of, decision, refitted, smoke, run.run_id, parent_run_id)

    @task(outlets=[CHAMPION])
    def recommend(registered: dict, params=None, **context) -> dict:
        """The champion's batch lists (buy again, discover) for every active customer. Updates the champion asset."""
        from ml.pipeline.promotion_steps import recommend_step

        run = _ctx(params, context)
        return recommend_step(run.settings, run.as_of, registered)

    @task
    def summary(results: dict, params=None, **context) -> str:
        """A short summary of the run, also written next to its metrics and set as the MLflow run's description."""
        from ml.pipeline.report import write_summary

        run = _ctx(params, context)
        return write_summary(run.settings, run.as_of, results, results.get("parent_run_id"))

    cleaned = clean(ingest())
    gated = gate(cleaned)
    dataset = build_dataset(gated)
    parent = start_tracking(dataset)
    synth = synthesize(dataset)
    synth_gate = gate_synthetic(synth, parent)
    trained = (train_baselines(dataset, parent), train_als(parent, synth_gate), train_bert4rec(parent, synth_gate))
    fused = fuse(parent, *trained)
    evaluated = evaluate(parent, fused, *trained)
    decision = decide(evaluated, gated, synth_gate, parent)
    refitted = refit(decision, parent, synth_gate)
    registered = register(decision, refitted, smoke_check(refitted), parent)
    served = recommend(registered)
    backtested = backtest(dataset, parent)
    summary(
        {
            "parent_run_id": parent,
            "clean": cleaned,
            "dataset": dataset,
            "synthesis": synth,
            "synthetic_gate": synth_gate,
            "fusion": fused,
            "evaluate": evaluated,
            "backtest": backtested,
            "promotion": decision,
            "registered": registered,
            "serving": served,
        }
    )


nightly_recommender()
