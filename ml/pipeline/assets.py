"""The Airflow Assets the pipeline updates, named in one place for the DAGs that produce and consume them.

Only DAG files import this module (it needs Airflow); it holds nothing but the asset definitions.
"""

from __future__ import annotations

from airflow.sdk import Asset

# the lake's cleaned interactions, updated by the nightly ``clean`` task
CLEAN_INTERACTIONS = Asset("shop_clean_interactions")
# the champion model and its batch lists for the day, updated by the nightly ``recommend`` task
CHAMPION = Asset("shop_recommender_champion")
