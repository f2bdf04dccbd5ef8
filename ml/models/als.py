"""Implicit-feedback matrix factorization (``implicit``'s ALS) behind the Recommender contract."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ml.data.interactions import TS, Interactions
from ml.models.base import HistoryCache, Recommender
from ml.models.popularity import NS_PER_DAY, popularity_share

log = logging.getLogger(__name__)

TIE_BREAK = 1e-6  # x max-normalized training buyers: orders only items whose dot products tie (e.g. a zero user vector)
BM25_K1 = 100.0
BM25_B = 0.8


class BM25:
    """BM25 confidence weighting with statistics frozen on the training matrix.

    ``fit_transform`` is exactly ``implicit.nearest_neighbours.bm25_weight``; ``transform`` reuses the
    training item idf and average row length, so a user's history rows are weighted as in training.
    """

    def __init__(self, k1: float = BM25_K1, b: float = BM25_B):
        self.k1, self.b = k1, b
        self.idf: np.ndarray | None = None
        self.average_length: float = 1.0

    def fit_transform(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """Learn idf and average row length from ``x`` and return its weighted copy (CSR)."""
        from implicit.nearest_neighbours import bm25_weight

        n_rows = float(x.shape[0])
        self.idf = np.log(n_rows) - np.log1p(np.bincount(x.indices, minlength=x.shape[1]))
        self.average_length = float(np.ravel(x.sum(axis=1)).mean()) or 1.0
        return bm25_weight(x, K1=self.k1, B=self.b).tocsr()

    def transform(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """Weight ``x`` with the training statistics."""
        x = sp.csr_matrix(x, dtype=np.float64, copy=True)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        length_norm = (1.0 - self.b) + self.b * np.ravel(x.sum(axis=1)) / self.average_length
        x.data = x.data * (self.k1 + 1.0) / (self.k1 * length_norm[rows] + x.data) * self.idf[x.indices]
        return x.astype(np.float32)


class ALS(Recommender):
    """Alternating least squares on BM25- (or log1p-) weighted summed event weights.

    Args:
        factors, regularization, iterations: as in ``implicit``.
        alpha: confidence scaling, passed to ``implicit`` (C = alpha * weighted matrix).
        weighting: "bm25" (K1=100, B=0.8) or "log1p".
        seed: random state of the factor initialisation.
        use_gpu: None = the GPU model when ``implicit.gpu.HAS_CUDA``; True requires CUDA; False = CPU.
            ``self.device`` records which one was used ("cpu" or "gpu"); scoring always runs on CPU.
        num_threads: threads of implicit's CPU solver (0 = all cores).
        window_days: fit only on the events of the last ``window_days`` days before the latest training
            event (``ts`` in nanoseconds); None = every training event. Scoring still folds in the
            whole ``history`` given.
        user_factors: "recalculate" (default) solves each scored user's factors from ``history``
            (least squares against the fixed item factors), so events after training (validation)
            count and users unseen in training get factors; "trained" uses the factors learned in
            ``fit`` (zeros for users without training events). "recalculate" wins on the bundled
            data's validation month (cut 2011-08-01, whole history folded in, see
            ``ml.pipeline.tuning.ValidationNight``): NDCG@10 0.213 vs 0.155,
            mean of both views, with the tuned defaults.
    """

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        iterations: int = 20,
        alpha: float = 2.0,
        weighting: str = "bm25",
        seed: int = 42,
        use_gpu: bool | None = None,
        num_threads: int = 0,
        user_factors: str = "recalculate",
        window_days: int | None = None,
    ):
        if weighting not in ("bm25", "log1p"):
            raise ValueError(f"weighting must be 'bm25' or 'log1p', got {weighting!r}")
        if user_factors not in ("recalculate", "trained"):
            raise ValueError(f"user_factors must be 'recalculate' or 'trained', got {user_factors!r}")
        self.params = dict(
            factors=factors,
            regularization=regularization,
            iterations=iterations,
            alpha=alpha,
            weighting=weighting,
            seed=seed,
            use_gpu=use_gpu,
            num_threads=num_threads,
            user_factors=user_factors,
            window_days=window_days,
        )
        self.name = "als"
        self.device: str | None = None
        self.bm25 = BM25()
        self.model = None  # implicit.cpu.als.AlternatingLeastSquares once fitted
        self.popularity: np.ndarray | None = None  # max-normalized distinct buyers in the fitted events
        self._cache = HistoryCache()

    def weight(self, x: sp.csr_matrix, fit: bool = False) -> sp.csr_matrix:
        """Confidence weighting of a user x item matrix of summed event weights (before ``alpha``)."""
        if self.params["weighting"] == "log1p":
            x = sp.csr_matrix(x, dtype=np.float32, copy=True)
            x.data = np.log1p(x.data)
            return x
        return (self.bm25.fit_transform(x) if fit else self.bm25.transform(x)).astype(np.float32)

    def _implicit_model(self, use_gpu: bool):
        import implicit.als

        p = self.params
        kwargs = dict(
            factors=p["factors"],
            regularization=p["regularization"],
            alpha=p["alpha"],
            iterations=p["iterations"],
            random_state=p["seed"],
        )
        if use_gpu:
            return implicit.als.AlternatingLeastSquares(use_gpu=True, **kwargs)
        return implicit.als.AlternatingLeastSquares(use_gpu=False, num_threads=p["num_threads"], **kwargs)

    def fit(self, train: Interactions, valid: Interactions | None = None) -> ALS:
        """Factorize the weighted ``train`` matrix (``valid`` is unused: fixed iterations)."""
        import implicit.gpu

        use_gpu = self.params["use_gpu"]
        if use_gpu is None:
            use_gpu = implicit.gpu.HAS_CUDA
        elif use_gpu and not implicit.gpu.HAS_CUDA:
            raise RuntimeError("ALS(use_gpu=True) but implicit was built without CUDA")
        window = self.params["window_days"]
        if window and len(train):
            ts = train.frame[TS].to_numpy()
            train = Interactions(train.frame[ts >= ts.max() - window * NS_PER_DAY], train.n_users, train.n_items)
        self.popularity = popularity_share(train).astype(np.float32)
        weighted = self.weight(train.csr(), fit=True)
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads only contend
            model = self._implicit_model(use_gpu)
            model.fit(weighted, show_progress=False)
        self.model = model.to_cpu() if use_gpu else model
        self.device = "gpu" if use_gpu else "cpu"
        self._cache = HistoryCache()
        log.info("ALS fitted on %s: %d users x %d items, %d nnz", self.device, *weighted.shape, weighted.nnz)
        return self

    def user_vectors(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Factors of ``users`` (float32, ``(len(users), factors)``) per the ``user_factors`` setting."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if self.params["user_factors"] == "trained":
            factors = np.zeros((len(users), self.model.factors), np.float32)
            known = users < self.model.user_factors.shape[0]
            factors[known] = self.model.user_factors[users[known]]
            return factors
        weighted = self._cache.get(history, lambda h: self.weight(h.csr()))
        with threadpool_limits(1, "blas"):
            return np.asarray(self.model.recalculate_user(users, weighted[users]), dtype=np.float32)

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Dot products of user factors and item factors, ``(len(users), n_items)`` float32."""
        scores = self.user_vectors(users, history) @ self.model.item_factors.T
        if self.popularity is not None:  # a customer whose items all lie outside the window has a zero vector
            scores += TIE_BREAK * self.popularity
        return scores.astype(np.float32, copy=False)

    def similar_items(self, items: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Cosine-nearest items in factor space, excluding the item itself; ``(len(items), n)`` each."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        n_items = self.model.item_factors.shape[0]
        m = min(n + 1, n_items)
        ids, scores = self.model.similar_items(items, N=m)
        ids, scores = (
            np.asarray(ids, np.int64).reshape(len(items), m),
            np.asarray(scores, np.float32).reshape(len(items), m),
        )
        order = np.argsort(ids == items[:, None], axis=1, kind="stable")  # the item itself moves last
        ids, scores = np.take_along_axis(ids, order, 1)[:, :n], np.take_along_axis(scores, order, 1)[:, :n]
        if ids.shape[1] < n:
            pad = n - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        self_left = ids == items[:, None]
        ids[self_left], scores[self_left] = -1, -np.inf
        return ids, scores

    def _check_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError("ALS is not fitted")

    def _save(self, path: Path) -> None:
        self._check_fitted()
        np.savez(
            path / "factors.npz",
            user_factors=self.model.user_factors,
            item_factors=self.model.item_factors,
            idf=self.bm25.idf if self.bm25.idf is not None else np.empty(0),
            popularity=self.popularity if self.popularity is not None else np.empty(0),
        )
        meta = {"params": self.params, "device": self.device, "average_length": self.bm25.average_length}
        (path / "params.json").write_text(json.dumps(meta))

    @classmethod
    def _load(cls, path: Path) -> ALS:
        meta = json.loads((path / "params.json").read_text())
        model = cls(**meta["params"])
        model.device = meta["device"]
        with np.load(path / "factors.npz") as data, threadpool_limits(1, "blas"):
            model.model = model._implicit_model(use_gpu=False)
            model.model.user_factors = data["user_factors"]
            model.model.item_factors = data["item_factors"]
            if data["idf"].size:
                model.bm25.idf = data["idf"]
            if "popularity" in data and data["popularity"].size:
                model.popularity = data["popularity"]
        model.bm25.average_length = meta["average_length"]
        return model
