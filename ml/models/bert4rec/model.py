"""``Bert4Rec`` and ``SASRec``: the BERT4Rec network behind the project's :class:`Recommender` contract,
bidirectional with masked-item training, or causal with next-item training at every position."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.data.interactions import ITEM_IDX, USER_IDX, Interactions
from ml.hardware import free_cpu_threads
from ml.models.base import Recommender
from ml.models.bert4rec.data import (
    CausalCollator,
    LengthBucketBatchSampler,
    MaskingCollator,
    NextItemCollator,
    NextItemDataset,
    SequenceDataset,
)
from ml.models.bert4rec.network import Bert4RecNetwork, check_shape

HPARAMS = (
    "hidden", "layers", "heads", "max_len", "mask_prob", "dropout", "attention_dropout", "batch_size", "lr",
    "weight_decay", "warmup_steps", "max_epochs", "patience", "seed", "crop", "val_max_users",
    "val_view", "max_minutes", "arm_factor", "arm_loss_margin", "precision", "text_dropout", "text_mode",
    "shuffle_baskets", "negatives", "lr_decay", "decay_factor", "decay_patience", "chunked_loss", "block",
    "feed_forward", "activation", "scale_inputs", "output_bias",
)  # fmt: skip
TEXT_MODES = ("augment", "init", "init+augment")
LR_DECAYS = ("none", "plateau")  # after warm-up: constant, or lowered on a validation plateau (lightning.PlateauDecay)


def text_pca(vectors: np.ndarray, dim: int, std: float, seed: int = 0) -> np.ndarray:
    """Item vectors of width ``dim`` from text vectors: their top principal components, scaled to ``std``.

    Items without text (all-zero rows) get a random ``N(0, std)`` vector, as an untouched embedding would.
    """
    vectors = np.asarray(vectors, np.float64)
    has_text = np.abs(vectors).sum(1) > 0
    out = np.random.default_rng(seed).normal(0.0, std, (len(vectors), dim))
    if has_text.sum() > 1:
        known = vectors[has_text] - vectors[has_text].mean(0)
        _, _, components = np.linalg.svd(known, full_matrices=False)
        projected = known @ components[:dim].T
        projected *= std / (projected.std() or 1.0)
        out[has_text, : projected.shape[1]] = projected
    return out.astype(np.float32)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's info banners (GPU available, tips) for the duration of a fit."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def validation_pairs(train_seqs: list[np.ndarray], valid: Interactions | None) -> tuple[list, list, list]:
    """Training sequences and (history, targets) validation pairs.

    With ``valid`` (a validation period): every user with validation events is validated on the
    set of distinct items they bought in it, given their whole training sequence -- the same task
    as the test period, so the checkpoint chosen is the one that serves that task best. Without
    it (leave-one-out), each user with at least two training items holds out their last item,
    which is then also removed from training.

    Returns:
        (training sequences, validation histories, validation target arrays).
    """
    if valid is None:
        histories, targets, kept = [], [], []
        for seq in train_seqs:
            if len(seq) >= 2:
                histories.append(seq[:-1])
                targets.append(seq[-1:].astype(np.int64))
                kept.append(seq[:-1])
            else:
                kept.append(seq)
        return kept, histories, targets
    pairs = valid.frame[[USER_IDX, ITEM_IDX]].drop_duplicates().sort_values([USER_IDX, ITEM_IDX], kind="stable")
    users = pairs[USER_IDX].to_numpy()
    items = pairs[ITEM_IDX].to_numpy().astype(np.int64)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    return train_seqs, [train_seqs[users[a]] for a in starts], [items[a:b] for a, b in zip(starts, ends)]


class Bert4Rec(Recommender):
    """BERT4Rec (Sun et al., 2019) trained to convergence with early stopping on validation NDCG@10.

    Args:
        hidden, layers, heads, max_len, dropout: network shape (see :class:`Bert4RecNetwork`).
        block, feed_forward, activation: the transformer block (``"bert"``, or ``"gpt2"`` or ``"sasrec"`` for
            the causal model only), its feed-forward width (None: 4 x ``hidden``) and activation (see
            :class:`Bert4RecNetwork`).
        scale_inputs: multiply the item vectors entering the transformer by ``sqrt(hidden)`` (SASRec's reference
            code; see :class:`Bert4RecNetwork`). Off: on the bundled data it lowered SASRec's best validation
            NDCG@10 (0.1062 vs 0.1105, three seeds).
        output_bias: a learned per-item bias on the scores; off, it stays 0 (SASRec's reference code). On: off
            gave 0.1104 vs 0.1110 best validation NDCG@10 for SASRec on the bundled data (three seeds).
        attention_dropout: dropout on attention weights (0 keeps the fast attention kernel).
        mask_prob: probability of masking each training item.
        batch_size: training sequences per step.
        lr, weight_decay, warmup_steps: AdamW with linear warm-up, then a constant learning rate unless
            ``lr_decay`` lowers it.
        lr_decay: ``"none"`` (constant after warm-up) or ``"plateau"``: the learning rate is multiplied by
            ``decay_factor`` each time ``decay_patience`` validations in a row bring no improvement, counted
            (as ``patience``) only once the model has left the popularity plateau
            (:class:`~ml.models.bert4rec.lightning.PlateauDecay`). Without validation data it stays constant.
        max_epochs: upper bound on epochs (one epoch = one window per training user).
        patience: validations without improvement of ``val_ndcg@10`` before stopping; counted only
            once the model has left the popularity plateau (BERT4Rec first plateaus at popularity level,
            and plain patience stops it there): the metric exceeds ``arm_factor`` x the popularity
            baseline on the same validation targets, or the training loss leaves the plateau
            (``arm_loss_margin``).
        arm_factor: see ``patience``.
        arm_loss_margin: patience also starts counting once an epoch's mean training loss is this
            fraction below the popularity plateau's loss (:func:`~ml.models.bert4rec.lightning.popularity_loss`):
            the model then predicts better than item frequencies even where it never gets
            ``arm_factor`` x ahead of popularity on validation (None: only that margin arms it).
        seed: seeds weights, masking, cropping and batch order.
        crop: window of sequences longer than ``max_len``: ``"last"`` (as the replications; it
            scored higher than ``"random"`` windows in our runs) or ``"random"`` each epoch.
        val_max_users: validate on at most this many users (a fixed seeded sample); None = all.
        val_view: view whose validation NDCG@10 drives early stopping and the kept checkpoint:
            ``repeat`` (all items ranked) or ``discover`` (items already bought left out).
        max_minutes: stop training after this wall time (best epoch so far is kept); None = no cap.
        negatives: 0 = full-softmax cross-entropy over every item; ``k`` > 0 = sampled softmax against
            ``k`` uniform negatives per batch (:class:`~ml.models.bert4rec.lightning.Bert4RecModule`).
            Its training loss is not comparable with the popularity plateau's, so only the validation
            margin (``arm_factor``) arms patience then.
        chunked_loss: on CPU, take the full-softmax loss in chunks (PyTorch's ``linear_cross_entropy``):
            the same loss and gradients without holding every position's logits at once. None: on for the
            causal model, which takes loss at every position (ML-1M-shaped set, 2 cores: 300 vs 182
            sequences/s), off for BERT4Rec, whose few masked positions it did not speed up (397 vs 448).
        accelerator: Lightning accelerator (``"auto"`` uses CUDA when present).
        precision: Lightning precision; ``"auto"`` = ``bf16-mixed`` on a GPU, ``32-true`` on CPU (at
            this width bf16 autocast on CPU is slower: 7.7 vs 5.2 s per Online Retail epoch here,
            even with AMX).
        num_workers: DataLoader workers (batches are cheap to build: 0 is usually fastest).
        logger: a Lightning logger (e.g. ``MLFlowLogger``), or None for no logging.
        checkpoint_dir: where the best-epoch checkpoint is written (default: a temporary folder).
        num_threads: torch CPU threads; default: the cores not busy with other processes,
            re-checked every epoch (see :func:`free_cpu_threads`). A seeded fit is bit-reproducible at one
            thread count; another count changes its float sums.
        callbacks: extra Lightning callbacks for ``fit`` (e.g. progress printing); not saved.
        item_text: fixed text vectors of the items, ``(n_items, dim)`` in item-index order (see
            :mod:`ml.text.items`); the network adds a learned projection of them to the id
            embeddings. Saved with the weights.
        text_dropout: ``dropout`` used instead when the text projection is on: it adds ``dim x hidden``
            weights that overfit quickly (on Online Retail, 0.1 peaked on validation after 1 epoch; 0.3
            after 7, with test discover NDCG@10 0.074 vs 0.054).
        text_mode: how ``item_text`` is used: ``"augment"`` (the frozen text vector through a learned
            projection, added to the id embedding), ``"init"`` (the id embeddings start from a PCA of
            the text vectors, :func:`text_pca`), or ``"init+augment"`` (both).
        shuffle_baskets: read each training sequence with the items of every basket (equal timestamps)
            in a fresh random order (:class:`SequenceDataset`), so that no listing order is learned.
    """

    name = "bert4rec"
    causal = False  # bidirectional attention, masked-item training
    settings_section = "bert4rec"

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        max_len: int = 200,
        mask_prob: float = 0.2,
        dropout: float = 0.1,
        batch_size: int = 128,
        lr: float = 1e-3,
        max_epochs: int = 200,
        patience: int = 5,
        seed: int = 42,
        accelerator: str = "auto",
        num_workers: int = 0,
        logger: Any = None,
        checkpoint_dir: str | Path | None = None,
        attention_dropout: float = 0.0,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        crop: str = "last",
        val_max_users: int | None = 10_000,
        val_view: str = "repeat",
        max_minutes: float | None = None,
        arm_factor: float = 1.5,
        arm_loss_margin: float | None = 0.05,
        precision: str = "auto",
        num_threads: int | None = None,
        callbacks: list | None = None,
        item_text: np.ndarray | None = None,
        text_dropout: float = 0.3,
        text_mode: str = "augment",
        shuffle_baskets: bool = True,
        negatives: int = 0,
        lr_decay: str = "none",
        decay_factor: float = 0.5,
        decay_patience: int = 5,
        chunked_loss: bool | None = None,
        block: str = "bert",
        feed_forward: int | None = None,
        activation: str = "gelu",
        scale_inputs: bool = False,
        output_bias: bool = True,
    ) -> None:
        self.hidden, self.layers, self.heads, self.max_len = hidden, layers, heads, max_len
        self.mask_prob, self.dropout, self.attention_dropout = mask_prob, dropout, attention_dropout
        self.batch_size, self.lr, self.weight_decay, self.warmup_steps = batch_size, lr, weight_decay, warmup_steps
        self.max_epochs, self.patience, self.seed, self.crop = max_epochs, patience, seed, crop
        self.val_max_users, self.val_view, self.max_minutes = val_max_users, val_view, max_minutes
        self.accelerator, self.num_workers = accelerator, num_workers
        self.logger, self.checkpoint_dir = logger, checkpoint_dir
        self.arm_factor, self.arm_loss_margin, self.precision = arm_factor, arm_loss_margin, precision
        self.num_threads, self.callbacks = num_threads, list(callbacks or [])
        if text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {TEXT_MODES}, got {text_mode!r}")
        self.text_mode = text_mode
        self.item_text = None if item_text is None else np.asarray(item_text, np.float32)
        augment = self.item_text is not None and "augment" in text_mode
        self.text_dim = self.item_text.shape[1] if augment else 0
        self.text_dropout = text_dropout
        self.shuffle_baskets = shuffle_baskets
        if negatives < 0:
            raise ValueError(f"negatives must be 0 (full softmax) or a positive count, got {negatives}")
        self.negatives = negatives
        if lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {lr_decay!r}")
        self.lr_decay, self.decay_factor, self.decay_patience = lr_decay, decay_factor, decay_patience
        self.chunked_loss = self.causal if chunked_loss is None else chunked_loss
        try:  # refused at construction, before any data is read, by the network's own check
            check_shape(block, self.causal, activation)
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from None
        self.block, self.feed_forward, self.activation = block, feed_forward, activation
        self.scale_inputs, self.output_bias = scale_inputs, output_bias
        self.network: Bert4RecNetwork | None = None
        self.n_items = 0
        self.training_summary: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Any, protocol: str = "temporal", **overrides: Any) -> Bert4Rec:
        """Build from ``ModelSettings``: its ``bert4rec`` section and ``seed``; ``overrides`` win.

        The section's ``item_text`` mode becomes ``text_mode``; the caller passes the vectors themselves
        as ``item_text=`` when the mode asks for them (any mode but ``"none"``). The feed-forward width is
        ``feed_forward_ratio`` x ``hidden`` (either may be overridden), unless ``feed_forward=`` gives it.
        ``protocol`` is the split the model will train on: it resolves ``shuffle_baskets="auto"``
        (``Bert4RecSettings.shuffles``).
        """
        config = getattr(settings, cls.settings_section)
        section = config.model_dump()
        params = {k: v for k, v in section.items() if k in HPARAMS or k in ("accelerator", "num_threads")}
        params["shuffle_baskets"] = config.shuffles(protocol)
        if section.get("item_text", "none") != "none":
            params["text_mode"] = section["item_text"]
        params["seed"] = settings.seed
        ratio = overrides.pop("feed_forward_ratio", section["feed_forward_ratio"])
        params.update(overrides)
        params.setdefault("feed_forward", max(1, round(ratio * params["hidden"])))
        return cls(**params)

    # -- fitting -------------------------------------------------------------------------------

    def _use_cuda(self) -> bool:
        return torch.cuda.is_available() and self.accelerator in ("auto", "gpu", "cuda")

    def _precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "bf16-mixed" if self._use_cuda() else "32-true"

    def _network(self, n_items: int) -> Bert4RecNetwork:
        dropout = self.text_dropout if self.text_dim else self.dropout
        return Bert4RecNetwork(
            n_items,
            self.hidden,
            self.layers,
            self.heads,
            self.max_len,
            dropout,
            self.attention_dropout,
            text_dim=self.text_dim,
            causal=self.causal,
            block=self.block,
            feed_forward=self.feed_forward,
            activation=self.activation,
            scale_inputs=self.scale_inputs,
            output_bias=self.output_bias,
        )

    def _train_collator(self):
        return MaskingCollator(self.n_items, self.max_len, self.mask_prob, self.crop, seed=self.seed)

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Bert4Rec:
        """Train with early stopping on validation NDCG@10 and keep the best epoch's weights.

        Args:
            train: training events.
            valid: held-out next events (e.g. each user's second-to-last item); None holds out
                each user's last training item.
        Returns:
            self, with ``training_summary`` (best epoch and metric, per-epoch times and throughput).
        """
        import pytorch_lightning as pl
        from pytorch_lightning.callbacks import ModelCheckpoint
        from torch.utils.data import DataLoader

        from ml.models.bert4rec.lightning import (
            VAL_METRIC,
            AdaptiveThreads,
            Bert4RecModule,
            PlateauAwareEarlyStopping,
            PlateauDecay,
            TrainingClock,
            popularity_loss,
            popularity_ndcg,
        )

        pl.seed_everything(self.seed, workers=True, verbose=False)
        if not self._use_cuda():
            torch.set_num_threads(self.num_threads or free_cpu_threads())
        self.n_items = train.n_items
        sequences, times = train.sequences(with_times=True)
        context = train.context_masks()  # prepended pseudo-history: read as input, never a target
        seqs, histories, targets = validation_pairs(sequences, valid)
        times = [t[: len(s)] for s, t in zip(seqs, times) if len(s) > 0]  # validation_pairs keeps prefixes
        if context is not None:
            context = [c[: len(s)] for s, c in zip(seqs, context) if len(s) > 0]
        seqs = [s for s in seqs if len(s) > 0]
        if not seqs:
            raise ValueError(f"{self.name} needs at least one user with training events")
        if self.val_max_users is not None and len(targets) > self.val_max_users:
            pick = np.sort(np.random.default_rng(self.seed).choice(len(targets), self.val_max_users, replace=False))
            histories, targets = [histories[i] for i in pick], [targets[i] for i in pick]

        baseline = popularity_ndcg(seqs, histories, targets, self.n_items, self.val_view)
        plateau_loss = popularity_loss(seqs, self.n_items)
        lengths = np.minimum([len(s) for s in seqs], self.max_len)
        train_loader = DataLoader(
            SequenceDataset(seqs, times if self.shuffle_baskets else None, seed=self.seed, context=context),
            batch_sampler=LengthBucketBatchSampler(lengths, self.batch_size, shuffle=True, seed=self.seed),
            collate_fn=self._train_collator(),
            num_workers=self.num_workers,
        )
        val_loader = None
        if targets:
            val_lengths = np.minimum([len(h) + 1 for h in histories], self.max_len)
            val_loader = DataLoader(
                NextItemDataset(histories, targets),
                batch_sampler=LengthBucketBatchSampler(val_lengths, 256, shuffle=False),
                collate_fn=NextItemCollator(self.n_items, self.max_len, self.causal),
                num_workers=self.num_workers,
            )

        self.network = self._network(self.n_items)
        if self.text_dim:
            self.network.set_item_text(self.item_text)
        if self.item_text is not None and "init" in self.text_mode:
            self.network.init_item_embeddings(text_pca(self.item_text, self.hidden, 0.02, self.seed))
        decay = None
        if self.lr_decay == "plateau" and val_loader is not None:
            decay = PlateauDecay(self.decay_factor, self.decay_patience)
        module = Bert4RecModule(
            self.network, self.lr, self.weight_decay, self.warmup_steps, self.val_view, self.negatives, decay=decay,
            chunked_loss=self.chunked_loss,
        )  # fmt: skip
        clock = TrainingClock(self.name)
        with tempfile.TemporaryDirectory(prefix=f"{self.name}-") as tmp, warnings.catch_warnings(), _quiet_lightning():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=".*MLFlow only allows.*")  # it logs "@" as "_", once per epoch
            ckpt_dir = Path(self.checkpoint_dir) if self.checkpoint_dir else Path(tmp)
            callbacks: list = [clock, *self.callbacks]
            if not self._use_cuda() and self.num_threads is None:
                callbacks.append(AdaptiveThreads(lambda: free_cpu_threads(torch.get_num_threads())))
            checkpoint = stopper = None
            if val_loader is not None:
                checkpoint = ModelCheckpoint(
                    dirpath=ckpt_dir, filename="best", monitor=VAL_METRIC, mode="max", save_top_k=1,
                    save_weights_only=True,
                )  # fmt: skip
                stopper = PlateauAwareEarlyStopping(
                    arm_above=self.arm_factor * baseline,
                    arm_below_loss=None
                    if self.arm_loss_margin is None or self.negatives
                    else (1 - self.arm_loss_margin) * plateau_loss,
                    monitor=VAL_METRIC,
                    mode="max",
                    patience=self.patience,
                    decay=decay,
                )
                callbacks += [stopper, checkpoint]
            trainer = pl.Trainer(
                accelerator="gpu" if self._use_cuda() else ("cpu" if self.accelerator == "auto" else self.accelerator),
                devices=1,
                precision=self._precision(),
                max_epochs=self.max_epochs,
                max_time={"minutes": self.max_minutes} if self.max_minutes else None,
                callbacks=callbacks,
                logger=self.logger if self.logger is not None else False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                **({} if val_loader is not None else {"limit_val_batches": 0}),
                log_every_n_steps=min(50, len(train_loader)),
                default_root_dir=str(ckpt_dir),
            )
            trainer.fit(module, train_loader, val_loader)
            best_path = checkpoint.best_model_path if checkpoint is not None else ""
            if best_path:
                state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
                module.load_state_dict(state)
        self.network = module.network.cpu().eval()
        self.training_summary = self._summary(clock.epochs, stopper, trainer, len(seqs), len(targets))
        self.training_summary[f"popularity_{VAL_METRIC}"] = round(float(baseline), 5)
        self.training_summary["lr_decays_after_epoch"] = list(decay.decays) if decay else []
        self.training_summary["popularity_loss"] = round(plateau_loss, 5)
        return self

    def _summary(self, epochs: list[dict], stopper, trainer, n_train: int, n_valid: int) -> dict[str, Any]:
        from ml.models.bert4rec.lightning import VAL_METRIC, time_to_quality

        scored = [e for e in epochs if VAL_METRIC in e]
        best = max(scored, key=lambda e: e[VAL_METRIC]) if scored else None  # first of equals, as the checkpoint
        reached_95 = time_to_quality(epochs)
        train_s = sum(e["train_seconds"] for e in epochs)
        if stopper is not None and stopper.stopped_epoch > 0:
            stopped_by = "early_stopping"
        elif len(epochs) >= self.max_epochs:
            stopped_by = "max_epochs"
        else:
            stopped_by = "max_time"
        return {
            "best_epoch": best["epoch"] if best else (epochs[-1]["epoch"] if epochs else None),
            f"best_{VAL_METRIC}": best[VAL_METRIC] if best else None,
            "best_elapsed_seconds": best["elapsed_seconds"] if best else None,
            # time-to-quality: the first epoch within 95% of the best validation NDCG@10
            "seconds_to_95pct_of_best": reached_95["elapsed_seconds"] if reached_95 else None,
            "epoch_to_95pct_of_best": reached_95["epoch"] if reached_95 else None,
            "epochs_run": len(epochs),
            "stopped_by": stopped_by,
            "early_stopping_armed_epoch": stopper.armed_epoch if stopper is not None else None,
            "early_stopping_armed_by": stopper.armed_by if stopper is not None else None,
            "train_seconds": round(train_s, 2),
            "total_seconds": epochs[-1]["elapsed_seconds"] if epochs else 0.0,
            "sequences_per_s": round(sum(e["sequences"] for e in epochs) / train_s, 1) if train_s else 0.0,
            "masked_tokens_per_s": round(sum(e["masked_tokens"] for e in epochs) / train_s, 1) if train_s else 0.0,
            "train_users": n_train,
            "valid_users": n_valid,
            "device": "cuda" if self._use_cuda() else f"cpu x{torch.get_num_threads()}",
            "shuffle_baskets": self.shuffle_baskets,
            "epochs": epochs,
        }

    # -- scoring -------------------------------------------------------------------------------

    def score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Next-item logits over all items for each user, from their last ``max_len - 1`` events.

        Args:
            users: user indices.
            history: events known at prediction time (users without events get the [MASK]-only
                prior, i.e. a learned popularity).
        Returns:
            ``(len(users), n_items)`` float32.
        """
        if self.network is None:
            raise RuntimeError("fit or load the model first")
        users = np.asarray(users, np.int64)
        seqs = history.sequences()
        device = torch.device("cuda" if self._use_cuda() else "cpu")
        if device.type == "cpu":
            torch.set_num_threads(self.num_threads or free_cpu_threads())
        net = self.network.to(device).eval()
        collate = NextItemCollator(self.n_items, self.max_len, self.causal)
        hist = [seqs[u] for u in users]
        order = np.argsort([min(len(h) + 1, self.max_len) for h in hist], kind="stable")
        out = np.empty((len(users), self.n_items), np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), 256):
                rows = order[start : start + 256]
                batch = collate([(hist[i], np.empty(0, np.int64)) for i in rows])
                hidden = net.encode(batch["input_ids"].to(device), batch["attention_mask"].to(device))
                last = hidden[torch.arange(len(rows), device=device), batch["positions"].to(device)]
                out[rows] = net.item_logits(last).float().cpu().numpy()
        return out

    def similar_items(self, items: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items whose (tied input/output) embeddings are closest in cosine, excluding the item itself.

        Returns:
            (item_ids, cosine similarities), both ``(len(items), n)``.
        """
        import scipy.sparse as sp

        from ml.eval.ranking import top_n

        if self.network is None:
            raise RuntimeError("fit or load the model first")
        items = np.asarray(items, np.int64)
        with torch.no_grad():
            emb = torch.nn.functional.normalize(self.network.item_table()[1 : self.n_items + 1].float(), dim=1)
            sims = (emb[items] @ emb.T).cpu().numpy()
        itself = sp.csr_matrix((np.ones(len(items)), (np.arange(len(items)), items)), shape=sims.shape)
        return top_n(sims, n, exclude=itself)

    # -- persistence ---------------------------------------------------------------------------

    def hyperparams(self) -> dict[str, Any]:
        """The constructor arguments that define the model (JSON-serialisable)."""
        return {k: getattr(self, k) for k in HPARAMS}

    def _save(self, path: Path) -> None:
        if self.network is None:
            raise RuntimeError("fit the model before saving it")
        torch.save(self.network.state_dict(), path / "weights.pt")
        meta = {
            "hyperparams": self.hyperparams(),
            "n_items": self.n_items,
            "text_dim": self.text_dim,
            "training_summary": self.training_summary,
        }
        (path / "bert4rec.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def _load(cls, path: Path) -> Bert4Rec:
        meta = json.loads((path / "bert4rec.json").read_text())
        # hyper-parameters that no longer exist (arm_after_epochs) are left out: the weights do not depend on them
        # keys an older save lacks take the class defaults, which are what it was trained with (BERT's block:
        # the platform's SASRec default, GPT-2's, lives in its settings section, never in the class)
        model = cls(**{k: v for k, v in meta["hyperparams"].items() if k in HPARAMS})
        model.n_items, model.text_dim = meta["n_items"], meta.get("text_dim", 0)
        model.training_summary = meta.get("training_summary", {})
        model.network = model._network(model.n_items)
        model.network.load_state_dict(torch.load(path / "weights.pt", map_location="cpu", weights_only=True))
        model.network.eval()
        return model


class SASRec(Bert4Rec):
    """The causal next-item transformer from the same parts ("SASRec+", Klenitskiy & Vasilev, RecSys 2023).

    A transformer with causal self-attention (each position sees itself and earlier items only):
    ``transformers.BertModel`` with a causal mask (the class default), or ``GPT2Model``'s pre-norm block
    with ``block="gpt2"`` (the platform's default, from ``models.sasrec``, chosen on validation), trained
    with full-softmax cross-entropy at **every** position: the input is [START] + the sequence without
    its last item, the labels are the sequence itself. A customer is scored from the hidden state of
    their last item (a customer without history from [START]: a learned prior). Early stopping
    (patience counted from the first epoch: ``arm_factor=0``), checkpointing, the time cap, item
    text and scoring are BERT4Rec's; ``mask_prob`` is unused.
    """

    name = "sasrec"
    causal = True
    settings_section = "sasrec"

    def __init__(self, *args: Any, arm_factor: float = 0.0, **kwargs: Any) -> None:
        # no popularity plateau to wait out: trained at every position it leaves popularity within an
        # epoch or two (on Online Retail its best epoch was the 3rd), so patience counts from the start
        super().__init__(*args, arm_factor=arm_factor, **kwargs)

    def _train_collator(self):
        return CausalCollator(self.n_items, self.max_len, self.crop, seed=self.seed)
