"""The online model server: ``mlflow models serve`` on the registered model's champion alias.

Run it with ``python -m ml.serve.online`` (it prints the URL and an example, then becomes the server)::

    mlflow models serve -m models:/shop-recommender@champion --env-manager local -h 127.0.0.1 -p 5001

with ``MLFLOW_TRACKING_URI`` set to the platform's tracking store (``settings.mlflow_uri``) and the
virtual environment's ``bin`` on ``PATH`` (the CLI starts the server as ``uvicorn …`` by name).

Request (``POST /invocations``, ``Content-Type: application/json``); ``items`` is optional per record
(a current basket or recent purchases), ``n`` defaults to 10 and ``view`` to ``"discover"``
(``"repeat"``: "buy again", already-bought items allowed)::

    {"dataframe_records": [{"user_id": "13085"},
                           {"user_id": "new-customer", "items": ["85123A", "71053"]},
                           {"user_id": "another-new-one"}],
     "params": {"n": 3, "view": "discover"}}

Answer (``200``): one record per recommended item, customers in request order, ``rank`` from 1
(ids and titles from the bundled shop data; scores illustrative)::

    {"predictions": [
      {"user_id": "13085", "rank": 1, "item_id": "22423", "title": "REGENCY CAKESTAND 3 TIER",
       "score": 0.93, "source": "model"},
      ...
      {"user_id": "new-customer", "rank": 1, "item_id": "84879", "title": "ASSORTED COLOUR BIRD ORNAMENT",
       "score": 0.41, "source": "model"},
      ...
      {"user_id": "another-new-one", "rank": 1, "item_id": "85123A", "title": "WHITE HANGING HEART T-LIGHT HOLDER",
       "score": 1.0, "source": "popularity fallback"}, ...]}

``source`` is ``"model"`` (a known customer, or an unknown one scored from the given items),
or ``"popularity fallback"`` (an unknown customer without items in the vocabulary). An unknown ``view``
or a malformed ``items`` cell answers ``400`` with ``error_code`` ``INVALID_PARAMETER_VALUE`` and a
message naming the problem. ``GET /ping`` answers 200 once the model is loaded. See
:mod:`ml.tracking.pyfunc` for the model's behaviour.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from ml.config import Settings
from ml.tracking import registry
from ml.tracking.registry import champion_uri

EXAMPLE_REQUEST = {
    "dataframe_records": [
        {"user_id": "13085"},
        {"user_id": "new-customer", "items": ["85123A", "71053"]},
        {"user_id": "another-new-one"},
    ],
    "params": {"n": 3, "view": "discover"},
}
ANSWER_FIELDS = ["user_id", "rank", "item_id", "title", "score", "source"]  # one answer record per item


def serve_command(settings: Settings, model_uri: str | None = None) -> list[str]:
    """The ``mlflow models serve`` command line for ``model_uri`` (default: the champion).

    Run it with :func:`serve_env` (the tracking URI, and the venv on ``PATH``).
    """
    return [
        _mlflow_executable(),
        "models",
        "serve",
        "-m",
        model_uri or champion_uri(settings),
        "--env-manager",
        "local",
        "-h",
        settings.serve.host,
        "-p",
        str(settings.serve.port),
    ]


def serve_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) with ``MLFLOW_TRACKING_URI`` and the venv's ``bin`` first on ``PATH``.

    ``mlflow models serve --env-manager local`` starts ``uvicorn`` by name: without the venv on ``PATH``
    it exits with status 127.
    """
    env = dict(os.environ if base is None else base)
    env["MLFLOW_TRACKING_URI"] = settings.mlflow_uri
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]])
    return env


def invocations_url(settings: Settings) -> str:
    """Where the server answers predictions."""
    return f"http://{settings.serve.host}:{settings.serve.port}/invocations"


def _mlflow_executable() -> str:
    beside = Path(sys.executable).with_name("mlflow")
    return str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")


def main() -> None:
    """Print the URL and the request/answer schema, then exec the server on the champion."""
    from ml.config import get_settings

    settings = get_settings()
    champion = registry.champion(settings)
    if champion is None:
        sys.exit(
            f"no {champion_uri(settings)} in {settings.mlflow_uri}: run the nightly pipeline first "
            "(promotion sets the alias)"
        )
    cmd = serve_command(settings)
    url = invocations_url(settings)
    print(f"serving {champion_uri(settings)} (version {champion.version}; tracking {settings.mlflow_uri})")
    print(f"POST {url} (Content-Type: application/json); GET {url.rsplit('/', 1)[0]}/ping answers 200 when ready")
    print("request:", json.dumps(EXAMPLE_REQUEST))
    print(f'answer:  {{"predictions": [one record per recommended item: {", ".join(ANSWER_FIELDS)}]}}')
    print(f"try: curl -s {url} -H 'Content-Type: application/json' -d '{json.dumps(EXAMPLE_REQUEST)}'", flush=True)
    os.execvpe(cmd[0], cmd, serve_env(settings))


if __name__ == "__main__":
    main()
