"""The MLflow model registry: one served model, its ``champion`` alias, and the alias's audit trail.

The registered model ``settings.tracking.registered_model`` holds one version per night that passed
its checks; the ``champion`` alias points at the version in production (``models:/<name>@champion``).
Every move of the alias is an event kept as a tag on the registered model
(``alias_event.<seq>`` = JSON: version, previous, at, by, why, forced), so the history survives the
alias itself moving on. A version carries its configuration (tag ``config``: which model and the
settings it was fitted with), the pipeline run that made it (``pipeline_key``), the as-of date and
the promotion decision with its reasons.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml.config import Settings
from ml.tracking.runs import PIPELINE_KEY, configure

CONFIG_TAG = "config"
EVENT_PREFIX = "alias_event."
TAG_LIMIT = 5000  # MLflow's limit on a tag value


def _client(settings: Settings) -> MlflowClient:
    configure(settings)
    return MlflowClient()


def champion_uri(settings: Settings) -> str:
    """``models:/<registered_model>@<champion_alias>``: what the batch lists and the online server load."""
    return f"models:/{settings.tracking.registered_model}@{settings.tracking.champion_alias}"


def champion(settings: Settings) -> ModelVersion | None:
    """The version the champion alias points at; None before the first promotion."""
    client = _client(settings)
    try:
        return client.get_model_version_by_alias(settings.tracking.registered_model, settings.tracking.champion_alias)
    except MlflowException:  # no registered model yet, or no alias on it
        return None


def config_of(version: ModelVersion) -> dict:
    """The configuration a version was fitted with (its ``config`` tag), ``{}`` when it has none."""
    return json.loads(version.tags.get(CONFIG_TAG) or "{}")


def version_of_run(settings: Settings, pipeline_key: str) -> ModelVersion | None:
    """The version a pipeline run already registered (a retried task reuses it instead of adding one)."""
    client = _client(settings)
    name = settings.tracking.registered_model
    try:
        found = client.search_model_versions(f"name = '{name}' and tags.{PIPELINE_KEY} = '{pipeline_key}'")
    except MlflowException:
        return None
    return max(found, key=lambda v: int(v.version)) if found else None


def register(
    settings: Settings, model_uri: str, pipeline_key: str, tags: dict[str, str], run_id: str | None = None
) -> ModelVersion:
    """Register ``model_uri`` as a version of the served model (once per pipeline run) and tag it.

    Args:
        model_uri: the logged, smoke-checked model (``models:/<model id>`` or ``runs:/<run>/model``).
        run_id: the run that logged it (shown with the version in the UI).
        pipeline_key: the pipeline run; registering again under the same key returns the same version.
        tags: the version's tags (config, as_of, decision...); values longer than MLflow allows are cut.
    """
    client = _client(settings)
    name = settings.tracking.registered_model
    version = version_of_run(settings, pipeline_key)
    if version is None:
        try:
            client.create_registered_model(name, description="The shop's recommender; @champion is served.")
        except MlflowException:
            pass  # it exists
        # a tracking server checks that a ``models:/<model id>`` source names the logged model it registers
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        version = client.create_model_version(name, model_uri, run_id=run_id, model_id=model_id)
    for key, value in {PIPELINE_KEY: pipeline_key, **tags}.items():
        client.set_model_version_tag(name, str(version.version), key, str(value)[:TAG_LIMIT])
    return client.get_model_version(name, str(version.version))


def alias_history(settings: Settings) -> list[dict]:
    """Every move of the champion alias, oldest first."""
    client = _client(settings)
    try:
        tags = client.get_registered_model(settings.tracking.registered_model).tags
    except MlflowException:
        return []
    events = [json.loads(v) for k, v in tags.items() if k.startswith(EVENT_PREFIX)]
    return sorted(events, key=lambda e: e["seq"])


def move_champion(
    settings: Settings, version: int | str, why: str, by: str | None = None, forced: bool = False
) -> dict:
    """Point the champion alias at ``version`` and record the event (who, why, from which version).

    Returns:
        The recorded event.
    """
    client = _client(settings)
    name = settings.tracking.registered_model
    client.get_model_version(name, str(version))  # refuses an unknown version before anything moves
    previous = champion(settings)
    history = alias_history(settings)
    if previous is not None and int(previous.version) == int(version) and history and not forced:
        return history[-1]  # already there (a retried task): no second event
    event = {
        "seq": (history[-1]["seq"] + 1) if history else 1,
        "alias": settings.tracking.champion_alias,
        "version": int(version),
        "previous": int(previous.version) if previous else None,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": by or getpass.getuser(),
        "why": why[:2000],
        "forced": forced,
    }
    client.set_registered_model_alias(name, settings.tracking.champion_alias, str(version))
    client.set_registered_model_tag(name, f"{EVENT_PREFIX}{event['seq']:06d}", json.dumps(event))
    client.set_model_version_tag(name, str(version), "champion_since", event["at"])
    return event


def rollback(settings: Settings, version: int | str | None, why: str, by: str | None = None) -> dict:
    """Point the champion back at ``version``, or at the champion before the current one.

    Raises:
        ValueError: no earlier champion to go back to.
    """
    if version is None:
        current = champion(settings)
        earlier = [
            e["previous"]
            for e in reversed(alias_history(settings))
            if current is not None and e["version"] == int(current.version) and e["previous"] is not None
        ]
        if not earlier:
            raise ValueError("no earlier champion to roll back to: give a version")
        version = earlier[0]
    return move_champion(settings, version, why=f"rollback: {why}", by=by)
