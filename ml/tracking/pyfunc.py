"""Any fitted recommender as an MLflow ``pyfunc`` model: user ids in, ranked item ids and scores out."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from ml import columns as C
from ml.eval.ranking import recommendations_frame

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", C.USER)]),
    outputs=Schema(
        [ColSpec("string", C.USER), ColSpec("long", C.RANK), ColSpec("string", C.ITEM), ColSpec("float", C.SCORE)]
    ),
    params=ParamSchema([ParamSpec("n", "long", 10), ParamSpec("exclude_seen", "boolean", False)]),
)


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """Loads a saved ``Recommender`` plus the vocabulary and history it predicts from."""

    def load_context(self, context) -> None:
        """Read the model folder and the dataset artifacts."""
        from ml.data.interactions import Interactions
        from ml.models.base import Recommender

        self.model = Recommender.load(context.artifacts["model"])
        data = Path(context.artifacts["data"])
        self.user_ids = pd.read_parquet(data / "users.parquet")[C.USER].astype(str).to_numpy()
        self.item_ids = pd.read_parquet(data / "items.parquet")[C.ITEM].astype(str).to_numpy()
        h = pd.read_parquet(data / "history.parquet")
        self.history = Interactions.from_arrays(
            h["user_idx"], h["item_idx"], h["ts"], h["weight"], n_users=len(self.user_ids), n_items=len(self.item_ids)
        )
        self.user_index = pd.Index(self.user_ids)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Top-``n`` items for each known ``user_id`` (unknown users get no rows).

        Args:
            model_input: a frame with a ``user_id`` column.
            params: ``n`` (default 10) and ``exclude_seen`` (default False: repeat purchases allowed).
        Returns:
            Long frame ``user_id, rank, item_id, score`` (rank starts at 1).
        """
        params = params or {}
        n = int(params.get("n", 10))
        exclude = bool(params.get("exclude_seen", False))
        users = model_input[C.USER].astype(str).to_numpy()
        idx = self.user_index.get_indexer(users)
        known = idx >= 0
        ids, scores = self.model.recommend(idx[known], self.history, n=n, filter_already_liked_items=exclude)
        return recommendations_frame(users[known], ids, scores, self.item_ids)


def stage_artifacts(model_dir: Path, data, folder: Path) -> dict[str, str]:
    """Copy what the pyfunc model needs (model folder, vocabulary, history) into ``folder``.

    Args:
        model_dir: the saved model.
        data: the SplitData it predicts for (history = train + validation).
        folder: scratch folder.
    Returns:
        The ``artifacts`` mapping for ``mlflow.pyfunc.log_model``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, folder / "model", dirs_exist_ok=True)
    data_dir = folder / "data"
    data_dir.mkdir(exist_ok=True)
    pd.DataFrame({C.USER: data.user_ids}).to_parquet(data_dir / "users.parquet", index=False)
    pd.DataFrame({C.ITEM: data.item_ids}).to_parquet(data_dir / "items.parquet", index=False)
    data.history_for_test().frame.to_parquet(data_dir / "history.parquet", index=False)
    return {"model": str(folder / "model"), "data": str(data_dir)}


def log_recommender(model_dir: Path, data, scratch: Path, registered_name: str | None = None, name: str = "model"):
    """Log a saved recommender as a pyfunc model (with signature) in the active run; optionally register it.

    Returns:
        mlflow's ModelInfo (``registered_model_version`` set when registered).
    """
    artifacts = stage_artifacts(model_dir, data, scratch)
    example = pd.DataFrame({C.USER: [str(data.user_ids[0])]})
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=RecommenderModel(),
        artifacts=artifacts,
        code_paths=[str(PACKAGE_DIR)],
        signature=SIGNATURE,
        input_example=example,
        registered_model_name=registered_name,
        pip_requirements=_requirements(),
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ["mlflow", "numpy", "pandas", "pyarrow", "scipy", "torch", "transformers", "pytorch-lightning", "implicit"]
    return [f"{p}=={version(p)}" for p in pkgs]
