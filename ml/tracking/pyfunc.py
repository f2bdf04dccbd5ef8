"""The one served model: saved recommenders (one per view) as an MLflow ``pyfunc``.

Input, one row per customer: ``user_id`` (string, required) and ``items`` (optional: a list of item
ids, e.g. the current basket or recent purchases; missing, null or empty means none). Params: ``n``
(list length, default 10) and ``view`` (``"discover"``, the default: items the customer already has are
left out; ``"repeat"``: "buy again", already-bought items allowed). Output, one row per recommended
item: ``user_id, rank (1-based), item_id, title, score, source``.

Who gets what (``source``):

* a customer in the vocabulary: the view's model, from their stored history plus the given items
  (appended at the latest stored timestamp) — ``"model"``;
* an unknown customer with items in the vocabulary: the same model, scored from those items alone as
  their history (the customer gets a fresh user index past the vocabulary; the recommender contract
  makes every model score such a customer from the history it is given) — ``"model"``;
* an unknown customer without usable items (none given, or none in the vocabulary): the most bought
  items of the stored history (distinct buyers; the discover view leaves out the given items) —
  :data:`SOURCE_FALLBACK`. No customer is silently left without rows.

Why ``items`` is typed ``Any`` in the signature and not ``Array(string)``: MLflow 3.17.2 does accept an
optional ``Array(string)`` column when every record carries the key (``null`` or ``[]`` included), but
``{"dataframe_records": [{"user_id": "x"}, {"user_id": "y", "items": ["a"]}]}`` becomes a frame whose
missing cell is NaN, and the array check rejects it (``Expected data to be list or numpy array, got
float``). ``Any`` lets such requests through; :meth:`RecommenderModel.predict` checks the cells itself
(a list of ids, or null/NaN/missing) and answers a clear error otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType

from ml import columns as C
from ml.data.interactions import ITEM_IDX, TS, USER_IDX, Interactions, W
from ml.eval.protocol import VIEWS
from ml.eval.ranking import recommendations_frame, top_n

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
ITEMS = "items"  # optional input column: the customer's basket or recent purchases (item ids)
SOURCE = "source"  # output column: where a customer's list came from
SOURCE_MODEL = "model"
SOURCE_FALLBACK = "popularity fallback"
DEFAULT_N = 10
DEFAULT_VIEW = "discover"
BASKET_WEIGHT = 1.0  # confidence of each given item (as one purchase event)
OUTPUT_COLUMNS = [C.USER, C.RANK, C.ITEM, C.TITLE, C.SCORE, SOURCE]

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", C.USER), ColSpec(AnyType(), ITEMS, required=False)]),
    outputs=Schema(
        [
            ColSpec("string", C.USER),
            ColSpec("long", C.RANK),
            ColSpec("string", C.ITEM),
            ColSpec("string", C.TITLE),
            ColSpec("float", C.SCORE),
            ColSpec("string", SOURCE),
        ]
    ),
    params=ParamSchema([ParamSpec("n", "long", DEFAULT_N), ParamSpec("view", "string", DEFAULT_VIEW)]),
)


class RequestError(MlflowException, ValueError):
    """A request the model cannot answer (bad ``view``, ``n`` or ``items``); the server answers 400 with the message."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """The saved recommender of each view plus the vocabulary, titles and history they predict from.

    MLflow calls :meth:`load_context`; outside MLflow, :meth:`from_artifacts` builds one from the
    mapping :func:`stage_artifacts` returns.
    """

    def load_context(self, context) -> None:
        """Read the staged models and data (``context.artifacts``: ``models`` and ``data`` folders)."""
        self._load(context.artifacts)

    @classmethod
    def from_artifacts(cls, artifacts: Mapping[str, str]) -> RecommenderModel:
        """A ready model from staged artifacts (what :func:`stage_artifacts` returns), without MLflow."""
        model = cls()
        model._load(artifacts)
        return model

    def _load(self, artifacts: Mapping[str, str]) -> None:
        from ml.models.base import Recommender
        from ml.models.popularity import popularity_share

        data = Path(artifacts["data"])
        views = json.loads((data / "views.json").read_text())
        folders = Path(artifacts["models"])
        loaded = {name: Recommender.load(folders / name) for name in sorted(set(views.values()))}
        self.models = {view: loaded[name] for view, name in views.items()}
        self.user_ids = pd.read_parquet(data / "users.parquet")[C.USER].astype(str).to_numpy()
        items = pd.read_parquet(data / "items.parquet")
        self.item_ids = items[C.ITEM].astype(str).to_numpy()
        self.titles = items[C.TITLE].fillna("").astype(str).to_numpy(dtype=object)
        h = pd.read_parquet(data / "history.parquet")
        self.history = Interactions.from_arrays(
            h[USER_IDX], h[ITEM_IDX], h[TS], h[W], n_users=len(self.user_ids), n_items=len(self.item_ids)
        )
        self.user_index = pd.Index(self.user_ids)
        self.item_index = pd.Index(self.item_ids)
        self.latest_ts = int(h[TS].max()) if len(h) else 0
        self.popularity = popularity_share(self.history).astype(np.float32)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Top-``n`` items per customer in the requested view (see the module docstring for who gets what).

        Args:
            model_input: ``user_id`` (required) and optionally ``items`` (list of item ids per row; rows
                of the same customer are merged).
            params: ``n`` (default 10) and ``view`` (``"discover"`` default, or ``"repeat"``).
        Returns:
            Long frame ``user_id, rank, item_id, title, score, source``, customers in input order, rank
            from 1; slots a model could not fill are dropped.
        Raises:
            RequestError: (a ValueError) for an unknown ``view``, ``n`` < 1, or an ``items`` cell that is not
                a list of ids.
        """
        params = params or {}
        n = int(params.get("n") if params.get("n") is not None else DEFAULT_N)
        view = params.get("view") or DEFAULT_VIEW
        if view not in self.models:
            raise RequestError(f"view must be one of {sorted(self.models)}, got {view!r}")
        if n < 1:
            raise RequestError(f"n must be at least 1, got {n}")
        exclude = VIEWS[view]
        requests = _requests(model_input)
        customers = list(requests)
        baskets = [self._item_indices(requests[u]) for u in customers]
        user_idx = self.user_index.get_indexer(customers)

        known = np.flatnonzero(user_idx >= 0)
        unknown = np.flatnonzero(user_idx < 0)
        new = [i for i in unknown if len(baskets[i])]  # served by the model from their items alone
        fallback = {i: SOURCE_FALLBACK for i in unknown if not len(baskets[i])}

        model = self.models[view]
        history = self._with_events([user_idx[i] for i in known], [baskets[i] for i in known], len(self.user_ids))
        frames = []
        if len(known):
            ids, scores = model.recommend(user_idx[known], history, n=n, filter_already_liked_items=exclude)
            frames.append(self._frame([customers[i] for i in known], ids, scores, SOURCE_MODEL))
        if new:
            vocab = len(self.user_ids)
            fresh = vocab + np.arange(len(new))
            extended = self._with_events(list(fresh), [baskets[i] for i in new], vocab + len(new), base=history)
            ids, scores = model.recommend(fresh, extended, n=n, filter_already_liked_items=exclude)
            frames.append(self._frame([customers[i] for i in new], ids, scores, SOURCE_MODEL))
        for i, source in fallback.items():
            ids, scores = self._popular(baskets[i] if exclude else np.empty(0, np.int64), n)
            frames.append(self._frame([customers[i]], ids, scores, source))

        if not frames:
            return _empty_output()
        out = pd.concat(frames, ignore_index=True)
        order = pd.Series(np.arange(len(customers)), index=customers)
        out["_order"] = order.reindex(out[C.USER]).to_numpy()
        out = out.sort_values(["_order", C.RANK], kind="stable").drop(columns="_order")
        return out[OUTPUT_COLUMNS].reset_index(drop=True)

    # -- helpers -------------------------------------------------------------------------------

    def _item_indices(self, items: list[str]) -> np.ndarray:
        """Vocabulary indices of the given items, in order; ids outside the vocabulary are ignored."""
        if not items:
            return np.empty(0, np.int64)
        idx = self.item_index.get_indexer(items)
        return idx[idx >= 0].astype(np.int64)

    def _with_events(
        self, users: list[int], baskets: list[np.ndarray], n_users: int, base: Interactions | None = None
    ) -> Interactions:
        """``base`` (default: the stored history) plus each user's basket at the latest timestamp, over ``n_users``."""
        base = self.history if base is None else base
        if not any(len(b) for b in baskets) and n_users == base.n_users:
            return base  # the very object models cached their aggregates for
        lengths = [len(b) for b in baskets]
        events = pd.DataFrame(
            {
                USER_IDX: np.repeat(np.asarray(users, np.int32), lengths),
                ITEM_IDX: np.concatenate(baskets).astype(np.int32) if baskets else np.empty(0, np.int32),
                TS: np.full(sum(lengths), self.latest_ts, np.int64),
                W: np.full(sum(lengths), BASKET_WEIGHT, np.float32),
            }
        )
        return Interactions(pd.concat([base.frame, events], ignore_index=True), n_users, base.n_items)

    def _popular(self, given: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The most bought items of the stored history, without ``given``; ``(1, n)`` ids and scores."""
        import scipy.sparse as sp

        exclude = sp.csr_matrix((np.ones(len(given)), (np.zeros(len(given), np.int64), given)), (1, len(self.item_ids)))
        return top_n(self.popularity[None, :], n, exclude=exclude if len(given) else None)

    def _frame(self, customers: list[str], ids: np.ndarray, scores: np.ndarray, source: str) -> pd.DataFrame:
        frame = recommendations_frame(np.asarray(customers, dtype=object), ids, scores, self.item_ids)
        frame[C.TITLE] = self.titles[self.item_index.get_indexer(frame[C.ITEM])] if len(frame) else []
        frame[SOURCE] = source
        return frame


def _requests(model_input: pd.DataFrame) -> dict[str, list[str]]:
    """Customer -> given item ids (as strings), customers in first-appearance order, rows of one customer merged."""
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(model_input)
    if C.USER not in model_input:
        raise RequestError(f"the input needs a {C.USER!r} column")
    users = model_input[C.USER]
    if users.isna().any():
        raise RequestError(f"{C.USER} must not be null")
    cells = model_input[ITEMS] if ITEMS in model_input else pd.Series([None] * len(model_input))
    out: dict[str, list[str]] = {}
    for user, cell in zip(users.astype(str), cells):
        out.setdefault(user, []).extend(_basket(user, cell))
    return out


def _basket(user: str, cell) -> list[str]:
    """One ``items`` cell as item ids: a list/array of ids, or nothing (None, NaN)."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    if isinstance(cell, (list, tuple, np.ndarray, pd.Series)):
        return [str(x) for x in cell if x is not None and not (isinstance(x, float) and np.isnan(x))]
    raise RequestError(f"{ITEMS} of {user!r} must be a list of item ids, got {type(cell).__name__} {cell!r}")


def _empty_output() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.USER: pd.Series(dtype=object),
            C.RANK: pd.Series(dtype=np.int64),
            C.ITEM: pd.Series(dtype=object),
            C.TITLE: pd.Series(dtype=object),
            C.SCORE: pd.Series(dtype=np.float32),
            SOURCE: pd.Series(dtype=object),
        }
    )


def stage_artifacts(
    models: Mapping[str, Path],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    history: Interactions,
    catalog: pd.DataFrame | None,
    folder: Path,
) -> dict[str, str]:
    """Copy what the served model needs (each view's model folder, vocabulary, titles, history) into ``folder``.

    Args:
        models: view (``"repeat"``, ``"discover"``) -> saved Recommender folder; a folder serving both
            views is copied once.
        user_ids, item_ids: the vocabulary (index -> raw id) the models were fitted over.
        history: the events predictions start from (e.g. train + validation), over that vocabulary.
        catalog: ``item_id, title`` (other columns ignored); None: empty titles.
        folder: scratch folder (its ``models`` and ``data`` subfolders are replaced).
    Returns:
        The ``artifacts`` mapping for ``mlflow.pyfunc.log_model`` (``models`` and ``data`` folders).
    Raises:
        ValueError: views other than exactly ``repeat`` and ``discover``, or a history over another universe.
    """
    if set(models) != set(VIEWS):
        raise ValueError(f"models must map exactly the views {sorted(VIEWS)}, got {sorted(models)}")
    if (history.n_users, history.n_items) != (len(user_ids), len(item_ids)):
        raise ValueError(
            f"history is over {history.n_users} users x {history.n_items} items, "
            f"the vocabulary has {len(user_ids)} x {len(item_ids)}"
        )
    models_dir, data_dir = folder / "models", folder / "data"
    for sub in (models_dir, data_dir):
        if sub.exists():
            shutil.rmtree(sub)
        sub.mkdir(parents=True)
    names: dict[Path, str] = {}
    views = {}
    for view in VIEWS:
        source = Path(models[view]).resolve()
        if source not in names:
            names[source] = f"model_{len(names)}"
            shutil.copytree(source, models_dir / names[source])
        views[view] = names[source]
    (data_dir / "views.json").write_text(json.dumps(views, indent=2))
    items = pd.DataFrame({C.ITEM: np.asarray(item_ids).astype(str)})
    items[C.TITLE] = _titles(items[C.ITEM], catalog)
    pd.DataFrame({C.USER: np.asarray(user_ids).astype(str)}).to_parquet(data_dir / "users.parquet", index=False)
    items.to_parquet(data_dir / "items.parquet", index=False)
    history.frame.to_parquet(data_dir / "history.parquet", index=False)
    return {"models": str(models_dir), "data": str(data_dir)}


def _titles(item_ids: pd.Series, catalog: pd.DataFrame | None) -> np.ndarray:
    if catalog is None or C.TITLE not in catalog:
        return np.full(len(item_ids), "", dtype=object)
    titles = catalog.assign(**{C.ITEM: catalog[C.ITEM].astype(str)}).drop_duplicates(C.ITEM).set_index(C.ITEM)
    return titles[C.TITLE].reindex(item_ids).fillna("").astype(str).to_numpy(dtype=object)


def log_recommender(
    models: Mapping[str, Path],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    history: Interactions,
    catalog: pd.DataFrame | None,
    scratch: Path,
    registered_name: str | None = None,
    name: str = "model",
    tags: Mapping[str, str] | None = None,
):
    """Log the served model (with signature and an input example) in the active run; optionally register it.

    Args:
        models, user_ids, item_ids, history, catalog: as in :func:`stage_artifacts`.
        scratch: staging folder.
        registered_name: register the logged model under this name (a new version).
        name: the logged model's name in the run.
        tags: tags of the logged model.
    Returns:
        mlflow's ModelInfo (``registered_model_version`` set when registered).
    """
    artifacts = stage_artifacts(models, user_ids, item_ids, history, catalog, scratch)
    example = pd.DataFrame({C.USER: [str(user_ids[0]), "example-new-customer"], ITEMS: [None, [str(item_ids[0])]]})
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=RecommenderModel(),
        artifacts=artifacts,
        code_paths=[str(PACKAGE_DIR)],
        signature=SIGNATURE,
        input_example=(example, {"n": DEFAULT_N, "view": DEFAULT_VIEW}),
        registered_model_name=registered_name,
        pip_requirements=_requirements(),
        tags=dict(tags) if tags else None,
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ["mlflow", "numpy", "pandas", "pyarrow", "scipy", "torch", "transformers", "pytorch-lightning", "implicit"]
    return [f"{p}=={version(p)}" for p in pkgs]
