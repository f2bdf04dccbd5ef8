"""
### Export the champion's lists (an example consumer of the champion asset)

Scheduled on the `shop_recommender_champion` asset: whenever the nightly run has served its
champion, this DAG copies the day's batch lists into one CSV per view under `<home>/exports/`,
the kind of hand-off a shop's e-mail or storefront system picks up. A template for your own
downstream DAGs.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from ml.pipeline.assets import CHAMPION


@dag(
    dag_id="export_recommendations",
    schedule=[CHAMPION],
    start_date=pendulum.datetime(2009, 12, 1, tz="UTC"),
    catchup=False,
    tags=["recommender", "example"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def export_recommendations():
    @task
    def export(**context) -> list[str]:
        """Write the newest batch lists as ``exports/<day>/<view>.csv``."""
        from ml.config import get_settings
        from ml.serve.batch import export_csv

        return [str(p) for p in export_csv(get_settings())]

    export()


export_recommendations()
