"""
### Nightly recommender retraining

Cleans the shop's transactions (every dropped row quarantined with its reason), gates them with
Great Expectations, builds a leak-free temporal split, synthesizes extra training data with a
language model (grounded in the catalog, gated), trains the recommenders on real data and on
real + synthetic data, fuses them, evaluates on the held-out future period and records everything
in MLflow, including what synthesis was worth.

`ingest -> clean -> gate -> build_dataset -> start_tracking -> synthesize -> gate_synthetic -> train_*
-> fuse -> evaluate -> summary`, and beside training a rolling `backtest` of the cheap models (the last 12
weeks replayed night by night, new customers and new products counted, 95% intervals).

A generator outage or a failed synthetic gate never fails the run: it continues on real data only
and says so (MLflow tag `synthetic_status`, the summary).

Trigger it by hand with the form to choose the as-of date, the models and a few settings; all other
settings come from `RECO_*` environment variables or the file in `RECO_SETTINGS_FILE`. BERT4Rec runs
in the `gpu` pool so a worker with a GPU can take it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from ml.models.registry import BASE_MODELS, DEFAULT_MODELS

MODEL_CHOICES = list(BASE_MODELS)


def _ctx(params, context):
    """The run's settings, as-of date, params and id (see ml.pipeline.airflow_params.run_context)."""
    from ml.pipeline.airflow_params import run_context

    return run_context(params, context.get("logical_date"), context.get("run_after"), context.get("run_id"))


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
            description="Use data up to this day (YYYY-MM-DD). Empty: the run's logical date.",
        ),
        "models": Param(
            list(DEFAULT_MODELS),
            type="array",
            items={"type": "string", "enum": MODEL_CHOICES},
            title="Models",
            description="Base models to train; fusion combines those trained (newest and text_knn are controls).",
        ),
        "test_days": Param(
            100, type="integer", minimum=1, title="Test days", description="Length of the held-out test period."
        ),
        "validation_days": Param(
            31,
            type="integer",
            minimum=1,
            title="Validation days",
            description="Length of the validation period before the test.",
        ),
        "bert_max_epochs": Param(
            200,
            type="integer",
            minimum=1,
            title="BERT4Rec max epochs",
            description="Upper bound; early stopping usually ends sooner.",
        ),
        "bert_max_minutes": Param(
            60,
            type="number",
            minimum=1,
            title="BERT4Rec time cap (minutes)",
            description="Wall-time cap per BERT4Rec training; the best epoch so far is kept.",
        ),
        "bert_item_text": Param(
            "augment",
            type="string",
            enum=["none", "augment"],
            title="BERT4Rec item text",
            description="augment: add MiniLM vectors of item titles and enrichment to BERT4Rec's item embeddings.",
        ),
        "seed": Param(42, type="integer", title="Seed", description="Random seed of every model."),
        "synthesis": Param(
            True,
            type="boolean",
            title="Synthesize training data",
            description="Generate synthetic purchases for sparse users with the language model.",
        ),
        "synth_backend": Param(
            "embedded",
            type="string",
            enum=["embedded", "openai"],
            title="Generator",
            description="embedded: the bundled SmolLM2 model; openai: the OpenAI-compatible server in settings.",
        ),
        "synth_max_per_user": Param(
            3,
            type="integer",
            minimum=1,
            maximum=20,
            title="Synthetic purchases per user",
            description="Cap on accepted synthetic interactions per sparse user (the synthetic share).",
        ),
        "backtest": Param(
            True,
            type="boolean",
            title="Backtest the cheap models",
            description="Replay the last 12 weeks night by night (popularity, re-buy, ALS, controls, fusion).",
        ),
        "register_models": Param(
            True,
            type="boolean",
            title="Register models",
            description="Log every model as an MLflow pyfunc and register it.",
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

    @task
    def clean(ingested: dict, params=None, **context) -> dict:
        """Clean into the lake: interactions, catalog, quarantine (with reasons)."""
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
        return start_tracking_step(
            run.settings, run.as_of, run.run_id, dataset, run.params, tags={"airflow_run_id": run.run_id}
        )

    @task
    def synthesize(dataset: dict, params=None, **context) -> dict:
        """Language-model synthesis: sparse users' next purchases, item attributes, user profiles."""
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
        return train_task_step(run.settings, run.as_of, "baselines", run.models, parent_run_id, run.run_id, {})

    @task
    def train_als(parent_run_id: str, synthetic: dict, params=None, **context) -> list[dict]:
        """ALS (implicit), on the GPU when implicit has CUDA; again on real + synthetic data when it passed its gate."""
        from ml.pipeline.steps import train_task_step

        run = _ctx(params, context)
        return train_task_step(run.settings, run.as_of, "als", run.models, parent_run_id, run.run_id, synthetic)

    @task(pool="gpu")
    def train_bert4rec(parent_run_id: str, synthetic: dict, params=None, **context) -> list[dict]:
        """BERT4Rec (Lightning + transformers), early-stopped on validation NDCG@10; again on real + synthetic data."""
        from ml.pipeline.steps import train_task_step

        run = _ctx(params, context)
        return train_task_step(run.settings, run.as_of, "bert4rec", run.models, parent_run_id, run.run_id, synthetic)

    @task
    def fuse(
        parent_run_id: str, baselines: list[dict], als: list[dict], bert: list[dict], params=None, **context
    ) -> dict:
        """Fusion weights per view, chosen on validation."""
        from ml.pipeline.steps import fuse_step

        run = _ctx(params, context)
        return fuse_step(
            run.settings, run.as_of, [r["model"] for r in baselines + als + bert], parent_run_id, run.run_id
        )

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
        """Full-ranking metrics on the test period; models logged and registered in MLflow."""
        from ml.pipeline.steps import evaluate_step

        run = _ctx(params, context)
        models = [r["model"] for r in baselines + als + bert] + [fused["model"]]
        return evaluate_step(
            run.settings, run.as_of, models, parent_run_id, run.run_id, register=run.params.get("register_models", True)
        )

    @task
    def summary(
        cleaned: dict,
        dataset: dict,
        synth: dict,
        synth_gate: dict,
        fused: dict,
        evaluated: dict,
        backtested: dict,
        params=None,
        **context,
    ) -> str:
        """A short summary of the run, also written next to its metrics."""
        from ml.pipeline.report import write_summary

        run = _ctx(params, context)
        results = {
            "clean": cleaned,
            "dataset": dataset,
            "synthesis": synth,
            "synthetic_gate": synth_gate,
            "fusion": fused,
            "evaluate": evaluated,
            "backtest": backtested,
        }
        return write_summary(run.settings, run.as_of, results)

    cleaned = clean(ingest())
    dataset = build_dataset(gate(cleaned))
    parent = start_tracking(dataset)
    synth = synthesize(dataset)
    synth_gate = gate_synthetic(synth, parent)
    trained = (train_baselines(dataset, parent), train_als(parent, synth_gate), train_bert4rec(parent, synth_gate))
    fused = fuse(parent, *trained)
    backtested = backtest(dataset, parent)
    summary(cleaned, dataset, synth, synth_gate, fused, evaluate(parent, fused, *trained), backtested)


nightly_recommender()
