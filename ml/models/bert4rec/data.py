"""Batches for the sequence models: masked training sequences and history + [MASK] inputs (BERT4Rec);
shifted next-item sequences and [START] + history inputs (the causal model).

All batches are right-padded with token 0, so position ``p`` is the ``p``-th kept item. Training
and validation batches come from :class:`LengthBucketBatchSampler`, which groups sequences of
similar length so that padding (wasted compute) stays at a few percent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

from ml.models.bert4rec.network import PAD_ID

IGNORE = -100  # label of positions that carry no loss
CROP_MODES = ("random", "last")


def pad_right(rows: Sequence[np.ndarray], value: int) -> np.ndarray:
    """Stack 1-d integer arrays into a ``(len(rows), longest)`` int64 matrix padded with ``value``."""
    longest = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(longest, 1)), value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def prediction_tokens(history: np.ndarray, max_len: int, mask_id: int) -> np.ndarray:
    """Model input that asks for the next item: the last ``max_len - 1`` items + [MASK].

    Args:
        history: the user's item indices, oldest first.
        max_len: model input length.
        mask_id: the [MASK] token (``n_items + 1``).
    Returns:
        int64 token ids (item ``i`` is token ``i + 1``), at most ``max_len`` long, ending in [MASK].
    """
    kept = np.asarray(history[len(history) - (max_len - 1) :] if max_len > 1 else history[:0], np.int64)
    return np.append(kept + 1, mask_id)


def split_entry(entry) -> tuple[np.ndarray, np.ndarray]:
    """A dataset entry as ``(items, context mask)``: a bare item array has no context-only position."""
    if isinstance(entry, tuple):
        return np.asarray(entry[0], np.int64), np.asarray(entry[1], bool)
    seq = np.asarray(entry, np.int64)
    return seq, np.zeros(len(seq), bool)


class SequenceDataset(Dataset):
    """Item sequences (any length), returned whole; cropping happens in the collator.

    With ``context`` (per sequence, True at positions that are context only: prepended synthetic
    pseudo-history), an entry is ``(items, mask)``; the collators never take a loss on those positions.

    With ``times`` (each sequence's timestamps, position by position), the items of each basket (a run
    of equal times) come in a fresh random order every time a sequence is read: the order in which a
    basket's lines are listed carries no information about what is bought next, and a model trained on
    one fixed order learns that order instead (on the bundled data, SASRec's validation fell from its
    second epoch on while its training loss kept falling).
    """

    def __init__(
        self,
        sequences: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
        seed: int = 0,
        context: Sequence[np.ndarray] | None = None,
    ):
        self.sequences = [np.asarray(s, np.int64) for s in sequences]
        self.context = None
        if context is not None:
            if [len(c) for c in context] != [len(s) for s in self.sequences]:
                raise ValueError("context must give one flag per item of each sequence")
            self.context = [np.asarray(c, bool) for c in context]
        self._baskets = None
        if times is not None:
            if [len(t) for t in times] != [len(s) for s in self.sequences]:
                raise ValueError("times must give one timestamp per item of each sequence")
            self._baskets = [_basket_runs(np.asarray(t)) for t in times]
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, idx: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        seq = self.sequences[idx]
        ctx = self.context[idx] if self.context is not None else None
        if self._baskets is not None and self._baskets[idx] is not None:
            order = np.arange(len(seq))
            for start, end in self._baskets[idx]:
                order[start:end] = start + self._rng.permutation(end - start)
            seq = seq[order]
            ctx = ctx[order] if ctx is not None else None
        return seq if ctx is None else (seq, ctx)


def _basket_runs(times: np.ndarray) -> list[tuple[int, int]] | None:
    """``(start, end)`` of every run of two or more equal times; None when there is none."""
    if len(times) < 2:
        return None
    starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
    ends = np.r_[starts[1:], len(times)]
    runs = [(int(a), int(b)) for a, b in zip(starts, ends) if b - a > 1]
    return runs or None


class MaskingCollator:
    """Turns item sequences into a masked-item-prediction batch.

    Each sequence is cut to ``max_len`` items (its last window, or a random window when
    ``crop="random"``), each real position is masked with probability ``mask_prob`` and at least
    one position per sequence is masked. Labels are item indices at masked positions, -100 elsewhere.

    Args:
        n_items: number of real items (mask token = ``n_items + 1``).
        max_len: longest training window.
        mask_prob: masking probability per item.
        crop: ``"random"`` (a random window of long sequences each time) or ``"last"``.
        seed: seed of the collator's own generator (reseeded per DataLoader worker).
    """

    def __init__(self, n_items: int, max_len: int, mask_prob: float, crop: str = "random", seed: int = 0) -> None:
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
        if not 0.0 < mask_prob <= 1.0:
            raise ValueError("mask_prob must lie in (0, 1]")
        self.n_items, self.max_len, self.mask_prob, self.crop = n_items, max_len, mask_prob, crop
        self.mask_id = n_items + 1
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._worker_seeded: int | None = None

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        if info is not None and self._worker_seeded != info.seed:
            self._rng = np.random.default_rng([self._seed, info.seed])
            self._worker_seeded = info.seed
        return self._rng

    def _window(self, n: int, rng: np.random.Generator) -> slice:
        if n <= self.max_len:
            return slice(0, n)
        end = n if self.crop == "last" else int(rng.integers(self.max_len, n + 1))
        return slice(end - self.max_len, end)

    def __call__(self, sequences: Sequence) -> dict[str, torch.Tensor]:
        """Collate a list of item sequences (arrays, or ``(items, context mask)`` pairs).

        Context-only positions are never masked, so they carry no loss; a sequence with a learnable
        position gets at least one mask there.

        Returns:
            ``input_ids``, ``attention_mask`` and ``labels``, each ``(batch, length)`` int64.
        """
        rng = self._generator()
        entries = [split_entry(e) for e in sequences]
        windows = [self._window(len(seq), rng) for seq, _ in entries]
        tokens = pad_right([seq[w] + 1 for (seq, _), w in zip(entries, windows)], PAD_ID)
        real = tokens != PAD_ID
        learnable = real & ~pad_right([ctx[w] for (_, ctx), w in zip(entries, windows)], 0).astype(bool)
        masked = (rng.random(tokens.shape) < self.mask_prob) & learnable
        for row in np.flatnonzero(~masked.any(1) & learnable.any(1)):
            masked[row, np.flatnonzero(learnable[row])[rng.integers(learnable[row].sum())]] = True
        labels = np.where(masked, tokens - 1, IGNORE)
        inputs = np.where(masked, self.mask_id, tokens)
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "labels": torch.from_numpy(labels),
        }


def causal_tokens(history: np.ndarray, max_len: int, start_id: int) -> np.ndarray:
    """The causal model's input for predicting what follows ``history``: [START] + history, its last ``max_len``.

    Returns:
        int64 token ids (item ``i`` is token ``i + 1``), at most ``max_len`` long; [START] only while the
        history is shorter than ``max_len``, and alone for a customer without history (a learned prior).
    """
    tokens = np.append(np.int64(start_id), np.asarray(history, np.int64) + 1)
    return tokens[-max_len:]


class CausalCollator:
    """Next-item training batches for the causal model: every position predicts the token after it.

    Each sequence becomes [START] + items; its last ``max_len + 1`` tokens (or a random window when
    ``crop="random"``) give ``input_ids`` (all but the last) and ``labels`` (all but the first, as item
    indices; -100 at padding). Loss is taken at every real position (SASRec's objective).

    Args:
        n_items: number of real items (the [START] token is ``n_items + 1``, BERT4Rec's [MASK] id).
        max_len: longest input.
        crop: ``"last"`` or ``"random"`` window of long sequences.
        seed: seed of the collator's generator.
    """

    def __init__(self, n_items: int, max_len: int, crop: str = "last", seed: int = 0) -> None:
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
        self.n_items, self.max_len, self.crop = n_items, max_len, crop
        self.start_id = n_items + 1
        self._rng = np.random.default_rng(seed)

    def _window(self, n: int) -> slice:
        span = self.max_len + 1
        if n <= span:
            return slice(0, n)
        end = n if self.crop == "last" else int(self._rng.integers(span, n + 1))
        return slice(end - span, end)

    def __call__(self, sequences: Sequence) -> dict[str, torch.Tensor]:
        """Collate item sequences (each at least one item long; arrays, or ``(items, context mask)`` pairs).

        A position whose next token is context only (prepended pseudo-history) carries no loss.

        Returns:
            ``input_ids``, ``attention_mask`` and ``labels``, each ``(batch, length)`` int64.
        """
        tokens, context = [], []
        for seq, ctx in map(split_entry, sequences):
            full = np.append(np.int64(self.start_id), seq + 1)
            w = self._window(len(full))
            tokens.append(full[w])
            context.append(np.append(False, ctx)[w])
        inputs = pad_right([t[:-1] for t in tokens], PAD_ID)
        targets = pad_right([t[1:] for t in tokens], PAD_ID)
        no_loss = pad_right([c[1:] for c in context], 0).astype(bool)
        real = inputs != PAD_ID
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "labels": torch.from_numpy(np.where(real & ~no_loss, targets - 1, IGNORE)),
        }


class NextItemDataset(Dataset):
    """(history, target items) pairs for validation: the model must rank ``targets`` after ``history``.

    ``targets`` per row is one item (leave-one-out) or the set of items bought in a validation
    period (every one of them is a correct next purchase).
    """

    def __init__(self, histories: Sequence[np.ndarray], targets: Sequence) -> None:
        if len(histories) != len(targets):
            raise ValueError("histories and targets differ in length")
        self.histories = [np.asarray(h, np.int64) for h in histories]
        self.targets = [np.atleast_1d(np.asarray(t, np.int64)) for t in targets]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        return self.histories[idx], self.targets[idx]


class NextItemCollator:
    """Batches history + [MASK] inputs (see :func:`prediction_tokens`) with their target sets; with
    ``causal=True``, [START] + history inputs (:func:`causal_tokens`) scored at their last token.

    Returns dicts with ``input_ids``, ``attention_mask``, ``positions`` (index of [MASK], or of the last
    token, per row),
    ``targets`` (target item indices, padded with ``-1``) and ``seen`` (the whole history as item
    indices, padded with ``n_items``).
    """

    def __init__(self, n_items: int, max_len: int, causal: bool = False) -> None:
        self.n_items, self.max_len, self.mask_id = n_items, max_len, n_items + 1
        self.causal = causal

    def __call__(self, batch: Sequence[tuple[np.ndarray, np.ndarray | int]]) -> dict[str, torch.Tensor]:
        histories = [h for h, _ in batch]
        tokenize = causal_tokens if self.causal else prediction_tokens
        tokens = pad_right([tokenize(h, self.max_len, self.mask_id) for h in histories], PAD_ID)
        real = tokens != PAD_ID
        return {
            "input_ids": torch.from_numpy(tokens),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "positions": torch.from_numpy(real.sum(1) - 1),
            "targets": torch.from_numpy(pad_right([np.atleast_1d(np.asarray(t, np.int64)) for _, t in batch], -1)),
            "seen": torch.from_numpy(pad_right(histories, self.n_items)),
        }


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of indices whose sequences have similar length, in random batch order.

    Each epoch: shuffle, stable-sort by length (ties stay shuffled), cut into batches, shuffle the
    batches. With ``shuffle=False`` the batches are the sorted cut, in order (for evaluation).

    Args:
        lengths: effective length of each sequence (after truncation to the model's max length).
        batch_size: sequences per batch.
        shuffle: randomise membership among equal lengths and the batch order.
        seed: seed of the sampler's generator.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0) -> None:
        self.lengths = np.asarray(lengths, np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = self._rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in self._rng.permutation(len(batches))]
        for b in batches:
            yield b.tolist()
