"""
### Weekly evaluation: the slow models backtested

The nightly run backtests only the cheap models (popularity, re-buy, ALS, the cold-item controls,
fusion) so that it fits its budget. Once a week this DAG replays the same rolling cuts with every
model, BERT4Rec included (on its `eval.backtest.slow_cuts` last cuts), over the lake the nightly
run cleaned. Its figures and intervals are logged to an MLflow run of their own (tag
`weekly_backtest`) and written to `runs/<day>/backtest_weekly/`.

Then it runs the synthesis ablation (`python -m ml synth-ablation`, settings `synth.strategies.ablation_*`)
on the same cuts: every strategy against real only and its controls, with paired intervals, the arm
chosen on the earlier cuts and its check on the later ones (`runs/<day>/synth_ablation_weekly/`, an
MLflow run tagged `ablation`). The nightly strategy (`synth.strategies.nightly`) is a reviewed setting:
the task's result says whether the ablation still chooses it. About an hour on 2 CPU cores.

It reads the lake as the nightly `clean` task left it; trigger it by hand with an as-of date to
backtest an earlier day.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from ml.pipeline.placement import gpu_task


@dag(
    dag_id="weekly_evaluation",
    schedule="0 5 * * 0",  # Sundays, after the nightly run
    start_date=pendulum.datetime(2009, 12, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["recommender", "weekly", "evaluation"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="As-of date",
            description="Backtest the cuts before this day (YYYY-MM-DD). Empty: the run's logical date.",
        ),
    },
    doc_md=__doc__,
)
def weekly_evaluation():
    @task(**gpu_task(), execution_timeout=timedelta(hours=3))
    def backtest_all_models(params=None, **context) -> dict:
        """Rolling backtest of every model (BERT4Rec on the last cuts), logged to its own MLflow run."""
        from ml.pipeline.airflow_params import run_context
        from ml.pipeline.steps import weekly_backtest_step

        run = run_context(params, context.get("logical_date"), context.get("run_after"), context.get("run_id"))
        return weekly_backtest_step(run.settings, run.as_of, run.run_id)

    @task(**gpu_task(), execution_timeout=timedelta(hours=3))
    def synthesis_ablation(params=None, **context) -> dict:
        """Every synthesis strategy against real only and its controls on the same cuts, logged to MLflow."""
        from ml.pipeline.airflow_params import run_context
        from ml.pipeline.steps import weekly_ablation_step

        run = run_context(params, context.get("logical_date"), context.get("run_after"), context.get("run_id"))
        return weekly_ablation_step(run.settings, run.as_of, run.run_id)

    backtest_all_models() >> synthesis_ablation()


weekly_evaluation()
