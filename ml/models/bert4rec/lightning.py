"""Lightning wrapper for :class:`Bert4RecNetwork`: training, validation and timing.

Training loss is the full-softmax cross-entropy over all items, computed only at masked positions:
hidden states are gathered first and only those (about ``mask_prob`` of the tokens) are multiplied
with the item embeddings. This is the main speed-up over scoring every position.
"""

from __future__ import annotations

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


def rank_of_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each row's target among all items (items scored higher than it)."""
    target_scores = logits.gather(1, targets[:, None])
    return (logits > target_scores).sum(1)


def popularity_ndcg(
    train_seqs: list[np.ndarray], histories: list[np.ndarray], targets: list[int], n_items: int, filter_seen: bool
) -> float:
    """Validation NDCG@10 of ranking items by training frequency (the level of BERT4Rec's plateau)."""
    counts = np.bincount(np.concatenate([*train_seqs, np.empty(0, np.int64)]), minlength=n_items).astype(float)
    total = 0.0
    for history, target in zip(histories, targets):
        better = counts > counts[target]
        if filter_seen and len(history):
            better[np.asarray(history)] = False
        rank = int(better.sum())
        total += 1.0 / np.log2(rank + 2.0) if rank < K else 0.0
    return total / max(len(targets), 1)


class PlateauAwareEarlyStopping(EarlyStopping):
    """Early stopping that only starts counting patience once the metric exceeds ``arm_above``.

    BERT4Rec first sits for tens of epochs on a plateau where it predicts popularity (attention has
    not yet learned to use positions); plain patience stops it there. Set ``arm_above`` a clear
    margin over the popularity baseline: until then training runs on (bounded by max_epochs/time).
    """

    def __init__(self, arm_above: float, **kwargs) -> None:
        super().__init__(check_on_train_epoch_end=False, **kwargs)
        self.arm_above = arm_above
        self.armed_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.armed_epoch is None:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None or trainer.sanity_checking or float(value) < self.arm_above:
                return
            self.armed_epoch = trainer.current_epoch
        super().on_validation_end(trainer, pl_module)


class Bert4RecModule(pl.LightningModule):
    """Masked-item training and next-item validation of a :class:`Bert4RecNetwork`.

    Args:
        network: the network to train.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay on matrices (not on biases, norms or embeddings).
        warmup_steps: linear warm-up from 0 to ``lr``; constant afterwards (as the replications).
        filter_seen_valid: exclude history items when ranking the validation target.
    """

    def __init__(
        self,
        network: Bert4RecNetwork,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        filter_seen_valid: bool = False,
    ) -> None:
        super().__init__()
        self.network = network
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.filter_seen_valid = filter_seen_valid
        self.seen_sequences = 0
        self._seen_masked = torch.zeros((), dtype=torch.int64)  # a tensor: no device sync per step

    @property
    def seen_masked(self) -> int:
        """Masked tokens trained on so far."""
        return int(self._seen_masked)

    def masked_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy over all items at masked positions only; returns (loss, masked count)."""
        hidden = self.network.encode(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        where = labels != IGNORE
        logits = self.network.item_logits(hidden[where])
        return F.cross_entropy(logits.float(), labels[where]), where.sum()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, n_masked = self.masked_loss(batch)
        self.seen_sequences += batch["input_ids"].shape[0]
        self._seen_masked = self._seen_masked.to(n_masked.device) + n_masked
        self.log("train_loss", loss, on_step=True, on_epoch=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def next_item_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Item logits at each row's [MASK] position: ``(batch, n_items)`` float32."""
        hidden = self.network.encode(batch["input_ids"], batch["attention_mask"])
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self.network.item_logits(hidden[rows, batch["positions"]]).float()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.next_item_logits(batch)
        if self.filter_seen_valid:
            padded = F.pad(logits, (0, 1))  # column n_items absorbs the padding of ``seen``
            logits = padded.scatter(1, batch["seen"], float("-inf"))[:, :-1]
        rank = rank_of_targets(logits, batch["targets"])
        hit = rank < K
        ndcg = torch.where(hit, 1.0 / torch.log2(rank.float() + 2.0), torch.zeros_like(rank, dtype=torch.float32))
        n = logits.shape[0]
        self.log(VAL_METRIC, ndcg.mean(), on_epoch=True, prog_bar=True, batch_size=n)
        self.log(f"val_recall@{K}", hit.float().mean(), on_epoch=True, batch_size=n)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.network.named_parameters():
            (decay if p.ndim >= 2 and "emb" not in name else no_decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        warmup = max(self.warmup_steps, 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class TrainingClock(pl.Callback):
    """Records per-epoch training seconds, throughput and validation metrics against wall time."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []
        self._fit_start = 0.0
        self._epoch_start = 0.0
        self._train_seconds = 0.0
        self._val_start = 0.0
        self._val_seconds = 0.0
        self._seqs = 0
        self._masked = 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Bert4RecModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Bert4RecModule) -> None:
        self._epoch_start = time.perf_counter()
        self._train_seconds = 0.0
        self._seqs, self._masked = pl_module.seen_sequences, pl_module.seen_masked

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
        }
        for key in (VAL_METRIC, f"val_recall@{K}", "train_loss_epoch"):
            if key in metrics:
                row[key] = round(float(metrics[key]), 5)
        self.epochs.append(row)
        self._val_seconds = 0.0


class AdaptiveThreads(pl.Callback):
    """Sets torch's CPU thread count at each epoch start from ``choose()`` (e.g. free cores)."""

    def __init__(self, choose: Callable[[], int]) -> None:
        self.choose = choose

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        threads = self.choose()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
