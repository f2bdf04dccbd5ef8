"""Lightning wrapper for :class:`Bert4RecNetwork`: training, validation and timing.

Training loss is the full-softmax cross-entropy over all items, computed only at masked positions:
hidden states are gathered first and only those (about ``mask_prob`` of the tokens) are multiplied
with the item embeddings. This is the main speed-up over scoring every position; on CPU the loss is
also taken in chunks (:meth:`Bert4RecNetwork.item_loss`), so the logits are never held all at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import EarlyStopping

from ml.models.bert4rec.data import IGNORE
from ml.models.bert4rec.network import Bert4RecNetwork

K = 10
VAL_METRIC = f"val_ndcg@{K}"

log = logging.getLogger(__name__)


VIEWS = ("repeat", "discover")  # discover: items already in the history are neither ranked nor counted


def view_metric(view: str, name: str = "ndcg") -> str:
    """Logged name of a validation metric for one view, e.g. ``val_discover_ndcg@10``."""
    return f"val_{view}_{name}@{K}"


def set_metrics(logits: torch.Tensor, targets: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row NDCG@k and Recall@k of ranking all items by ``logits`` against a set of targets.

    Same definitions as :mod:`ml.eval.metrics` (binary relevance; IDCG over ``min(|targets|, k)``).

    Args:
        logits: ``(batch, n_items)`` scores; ``-inf`` excludes an item.
        targets: ``(batch, t)`` target item indices, ``-1`` padded; rows without targets get 0.
    Returns:
        (ndcg, recall), each ``(batch,)`` float32.
    """
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    valid = targets >= 0
    hits = (top[:, :, None] == targets[:, None, :]).any(-1).float()
    discounts = 1.0 / torch.log2(torch.arange(2, top.shape[1] + 2, device=logits.device, dtype=torch.float32))
    n_rel = valid.sum(1)
    ideal = torch.cat([discounts.new_zeros(1), discounts.cumsum(0)])[n_rel.clamp(max=top.shape[1])]
    ndcg = (hits * discounts).sum(1) / ideal.clamp(min=1e-12)
    recall = hits.sum(1) / n_rel.clamp(min=1).float()
    return ndcg, recall


def discover_view(logits: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop history items from the ranking (score -inf) and from the targets (set to -1).

    Args:
        logits: ``(batch, n_items)``.
        targets: ``(batch, t)``, ``-1`` padded.
        seen: ``(batch, s)`` history item indices padded with ``n_items``.
    """
    padded = F.pad(logits, (0, 1))  # column n_items absorbs the padding of ``seen``
    filtered = padded.scatter(1, seen, float("-inf"))[:, :-1]
    in_history = (targets[:, :, None] == seen[:, None, :]).any(-1)
    return filtered, torch.where(in_history, torch.full_like(targets, -1), targets)


def popularity_ndcg(
    train_seqs: list[np.ndarray], histories: list[np.ndarray], targets: list, n_items: int, view: str = "repeat"
) -> float:
    """Validation NDCG@10 of ranking items by training frequency (the level of BERT4Rec's plateau).

    Args:
        train_seqs: training sequences (item indices) whose counts define popularity.
        histories, targets: validation histories and their target item(s).
        n_items: catalog size.
        view: ``repeat`` or ``discover`` (history items excluded from ranking and targets).
    Returns:
        Mean NDCG@10 over validation rows that have targets in this view.
    """
    counts = np.bincount(np.concatenate([*train_seqs, np.empty(0, np.int64)]), minlength=n_items).astype(float)
    order = np.argsort(-counts, kind="stable")
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    total, rows = 0.0, 0
    for history, target in zip(histories, targets):
        target = np.atleast_1d(np.asarray(target, np.int64))
        ranking = order
        if view == "discover":
            target = np.setdiff1d(target, history)
            ranking = order[~np.isin(order, history)]
        if len(target) == 0:
            continue
        hits = np.isin(ranking[:K], target)
        total += float(hits @ discounts[: len(hits)]) / discounts[: min(len(target), K)].sum()
        rows += 1
    return total / max(rows, 1)


def time_to_quality(epochs: list[dict], metric: str = VAL_METRIC, share: float = 0.95) -> dict | None:
    """The first epoch whose ``metric`` reached ``share`` of its best value over ``epochs``.

    Args:
        epochs: per-epoch rows with ``epoch``, ``elapsed_seconds`` and (when validated) ``metric``.
    Returns:
        ``{"epoch", "elapsed_seconds"}``, or None when no epoch was validated.
    """
    scored = [e for e in epochs if metric in e]
    if not scored:
        return None
    best = max(e[metric] for e in scored)
    first = next(e for e in scored if e[metric] >= share * best)
    return {"epoch": first["epoch"], "elapsed_seconds": first["elapsed_seconds"]}


def popularity_loss(train_seqs: list[np.ndarray], n_items: int) -> float:
    """Cross-entropy (nats) of predicting every training item by its training frequency: the loss level of
    the popularity plateau (a model that ignores the sequence and predicts item frequencies reaches it).

    Args:
        train_seqs: training sequences (item indices).
        n_items: catalog size.
    """
    counts = np.bincount(np.concatenate([*train_seqs, np.empty(0, np.int64)]), minlength=n_items).astype(float)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class PlateauDecay:
    """Learning-rate decay on a validation plateau (as ``torch.optim.lr_scheduler.ReduceLROnPlateau``).

    The learning rate's scale is multiplied by ``factor`` each time ``patience`` validations in a row
    have not improved on the best value; the count starts again after each decay. It only counts once
    ``counting`` is true, so a model still on its popularity plateau (where early stopping does not
    count either) keeps its full learning rate to leave it. Early stopping's own patience keeps
    running through decays, so with patience 20 and ``patience`` 5 a model gets three halvings before
    it is stopped.

    Args:
        factor: multiplier of the scale at each decay, in (0, 1).
        patience: validations without improvement before a decay.
    """

    def __init__(self, factor: float = 0.5, patience: int = 5) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"decay factor must lie in (0, 1), got {factor}")
        if patience < 1:
            raise ValueError(f"decay patience must be at least 1, got {patience}")
        self.factor, self.patience = factor, patience
        self.scale = 1.0
        self.best = float("-inf")
        self.bad = 0
        self.validations = 0
        self.decays: list[int] = []  # validations (0-based: the epoch, validating once per epoch) that lowered it

    def update(self, value: float, counting: bool = True) -> float:
        """Record one validation's metric (higher is better); returns the scale to train with next."""
        if value > self.best:
            self.best, self.bad = value, 0
        elif counting:
            self.bad += 1
            if self.bad >= self.patience:
                self.scale *= self.factor
                self.bad = 0
                self.decays.append(self.validations)
        self.validations += 1
        return self.scale


class PlateauAwareEarlyStopping(EarlyStopping):
    """Early stopping that counts patience only once the model has left the popularity plateau.

    BERT4Rec first sits for tens of epochs on a plateau where it predicts popularity (attention has
    not yet learned to use positions); plain patience stops it there. The model has left it when
    either its validation metric exceeds ``arm_above`` (a clear margin over the popularity
    baseline: ``margin_over_popularity``) or its mean training loss over an epoch has fallen below
    ``arm_below_loss`` (under the popularity plateau's own loss, :func:`popularity_loss`: it
    predicts better than item frequencies, ``loss_below_popularity``). Where a model never gets that
    far ahead of popularity on validation (retail baskets in their listing order did not), its loss
    still says it has left the plateau, so training does not run to the time cap; no epoch count
    arms it. (On the bundled data with shuffled baskets BERT4Rec cleared the margin at epoch 8.)
    """

    def __init__(
        self, arm_above: float, arm_below_loss: float | None = None, decay: PlateauDecay | None = None, **kwargs
    ) -> None:
        super().__init__(check_on_train_epoch_end=False, **kwargs)
        self.arm_above = arm_above
        self.arm_below_loss = arm_below_loss
        self.decay = decay
        self.armed_epoch: int | None = None
        self.armed_by: str | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and not trainer.sanity_checking:
            self._arm(trainer, pl_module, value)
            if self.decay is not None:
                self.decay.update(float(value), counting=self.armed_epoch is not None)
        if self.armed_epoch is not None:  # once armed, EarlyStopping's own checks run (a missing metric fails)
            super().on_validation_end(trainer, pl_module)

    def _arm(self, trainer: pl.Trainer, pl_module: pl.LightningModule, value) -> None:
        """Arm patience (once) when the metric clears the margin or the epoch's loss the plateau's."""
        if self.armed_epoch is not None:
            return
        loss = getattr(pl_module, "epoch_loss", None)
        if float(value) >= self.arm_above:
            self.armed_by = "margin_over_popularity"
        elif self.arm_below_loss is not None and loss is not None and loss <= self.arm_below_loss:
            self.armed_by = "loss_below_popularity"
        else:
            return
        self.armed_epoch = trainer.current_epoch


class Bert4RecModule(pl.LightningModule):
    """Masked-item training and next-item validation of a :class:`Bert4RecNetwork`.

    Args:
        network: the network to train.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay on matrices (not on biases, norms or embeddings).
        warmup_steps: linear warm-up from 0 to ``lr``; constant afterwards unless ``decay`` lowers it.
        decay: a :class:`PlateauDecay` that scales the learning rate down on a validation plateau (fed by
            :class:`PlateauAwareEarlyStopping` with the monitored metric); None = constant after warm-up.
        negatives: 0 = cross-entropy over every item (full softmax); ``k`` > 0 = sampled softmax: each
            trained position's item against ``k`` items drawn uniformly for the whole batch (a drawn item
            equal to the position's own is left out), as SASRec+'s sampled variant.
        val_view: the view whose validation NDCG@10 is ``val_ndcg@10`` (what early stopping and
            checkpointing follow): ``repeat`` ranks all items, ``discover`` leaves out history items.
            Both views are always logged.
        chunked_loss: take the full-softmax loss with PyTorch's chunked linear cross-entropy on CPU
            (:meth:`Bert4RecNetwork.item_loss`); False materialises every trained position's logits.
    """

    def __init__(
        self,
        network: Bert4RecNetwork,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        val_view: str = "repeat",
        negatives: int = 0,
        decay: PlateauDecay | None = None,
        chunked_loss: bool = True,
    ) -> None:
        super().__init__()
        self.chunked_loss = chunked_loss
        self.network = network
        self.decay = decay
        self.negatives = negatives
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        if val_view not in VIEWS:
            raise ValueError(f"val_view must be one of {VIEWS}, got {val_view!r}")
        self.val_view = val_view
        self.seen_sequences = 0
        self._seen_masked = torch.zeros((), dtype=torch.int64)  # a tensor: no device sync per step
        self._loss_sum, self._loss_steps = torch.zeros(()), 0

    @property
    def lr_scale(self) -> float:
        """Factor on the warmed-up learning rate: 1 unless the plateau decay has lowered it."""
        return self.decay.scale if self.decay is not None else 1.0

    @property
    def epoch_loss(self) -> float | None:
        """Mean training loss of the current epoch's steps so far (None before the first step)."""
        return float(self._loss_sum) / self._loss_steps if self._loss_steps else None

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_steps = torch.zeros((), device=self.device), 0

    @property
    def seen_masked(self) -> int:
        """Masked tokens trained on so far."""
        return int(self._seen_masked)

    def masked_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy at the trained (labelled) positions only, over every item or sampled negatives
        (``negatives``); returns (loss, trained positions)."""
        hidden = self.network.encode(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        where = labels != IGNORE
        states, targets = hidden[where], labels[where]
        if 0 < self.negatives < self.network.n_items:
            drawn = torch.randint(0, self.network.n_items, (self.negatives,), device=targets.device)
            logits = self.network.sampled_logits(states, targets, drawn)
            return F.cross_entropy(logits.float(), torch.zeros_like(targets)), where.sum()
        return self.network.item_loss(states, targets, self.chunked_loss), where.sum()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, n_masked = self.masked_loss(batch)
        self.seen_sequences += batch["input_ids"].shape[0]
        self._seen_masked = self._seen_masked.to(n_masked.device) + n_masked
        self._loss_sum = self._loss_sum.to(loss.device) + loss.detach().float()
        self._loss_steps += 1
        self.log("train_loss", loss, on_step=True, on_epoch=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def next_item_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Item logits at each row's [MASK] position: ``(batch, n_items)`` float32."""
        hidden = self.network.encode(batch["input_ids"], batch["attention_mask"])
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self.network.item_logits(hidden[rows, batch["positions"]]).float()

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {view: torch.zeros(3, device=self.device) for view in VIEWS}  # ndcg, recall, rows

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.next_item_logits(batch)
        views = {
            "repeat": (logits, batch["targets"]),
            "discover": discover_view(logits, batch["targets"], batch["seen"]),
        }
        for view, (scores, targets) in views.items():
            ndcg, recall = set_metrics(scores, targets)
            has = (targets >= 0).any(1)
            self._val_sums[view] += torch.stack([ndcg[has].sum(), recall[has].sum(), has.sum().float()])

    def on_validation_epoch_end(self) -> None:
        for view, (ndcg, recall, rows) in self._val_sums.items():
            rows = rows.clamp(min=1.0)
            self.log(view_metric(view), ndcg / rows)
            self.log(view_metric(view, "recall"), recall / rows)
            if view == self.val_view:
                self.log(VAL_METRIC, ndcg / rows, prog_bar=True)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.network.named_parameters():
            (decay if p.ndim >= 2 and "emb" not in name else no_decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        warmup = max(self.warmup_steps, 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) * self.lr_scale
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class TrainingClock(pl.Callback):
    """Records per-epoch training seconds, throughput and validation metrics against wall time."""

    def __init__(self, name: str = "bert4rec") -> None:
        self.name = name  # the model's name, at the start of each progress line
        self.epochs: list[dict] = []
        self._fit_start = 0.0
        self._epoch_start = 0.0
        self._train_seconds = 0.0
        self._val_start = 0.0
        self._val_seconds = 0.0
        self._seqs = 0
        self._masked = 0
        self._lr_scale = 1.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Bert4RecModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Bert4RecModule) -> None:
        self._epoch_start = time.perf_counter()
        self._train_seconds = 0.0
        self._seqs, self._masked = pl_module.seen_sequences, pl_module.seen_masked
        self._lr_scale = pl_module.lr_scale

    def _close_training_part(self) -> None:
        if not self._train_seconds:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_validation_start(self, trainer: pl.Trainer, pl_module: Bert4RecModule) -> None:
        self._close_training_part()
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: Bert4RecModule) -> None:
        self._val_seconds = time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Bert4RecModule) -> None:
        self._close_training_part()
        seqs = pl_module.seen_sequences - self._seqs
        masked = pl_module.seen_masked - self._masked
        metrics = trainer.callback_metrics
        row = {
            "epoch": trainer.current_epoch,
            "train_seconds": round(self._train_seconds, 3),
            "val_seconds": round(self._val_seconds, 3),
            "elapsed_seconds": round(time.perf_counter() - self._fit_start, 3),
            "threads": torch.get_num_threads(),
            "sequences": seqs,
            "masked_tokens": masked,
            "sequences_per_s": round(seqs / self._train_seconds, 1) if self._train_seconds else 0.0,
            "masked_tokens_per_s": round(masked / self._train_seconds, 1) if self._train_seconds else 0.0,
            "lr_scale": self._lr_scale,  # the plateau decay's factor on the learning rate during this epoch
        }
        keys = [VAL_METRIC, *(view_metric(v, m) for v in VIEWS for m in ("ndcg", "recall")), "train_loss_epoch"]
        for key in keys:
            if key in metrics:
                row[key] = round(float(metrics[key]), 5)
        self.epochs.append(row)
        self._val_seconds = 0.0
        log.info("%s", epoch_line(row, self.name))


def epoch_line(row: dict, name: str = "bert4rec") -> str:
    """One progress line per epoch: epoch, training loss, validation NDCG@10, throughput, elapsed time."""
    parts = [f"{name} epoch {row['epoch'] + 1}"]
    if "train_loss_epoch" in row:
        parts.append(f"loss {row['train_loss_epoch']:.4f}")
    if VAL_METRIC in row:
        parts.append(f"valid ndcg@10 {row[VAL_METRIC]:.4f}")
    parts.append(f"{row['sequences_per_s']:.0f} seq/s")
    if row.get("lr_scale", 1.0) != 1.0:
        parts.append(f"lr x{row['lr_scale']:g}")
    parts.append(f"{row['elapsed_seconds']:.0f} s")
    return ", ".join(parts)


class AdaptiveThreads(pl.Callback):
    """Sets torch's CPU thread count at each epoch start from ``choose()`` (e.g. free cores)."""

    def __init__(self, choose: Callable[[], int]) -> None:
        self.choose = choose

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        threads = self.choose()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
