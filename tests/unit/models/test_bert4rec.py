"""BERT4Rec: masking invariants, network shapes, learning sequential order, persistence, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml import hardware
from ml.data.interactions import Interactions
from ml.hardware import free_cpu_threads
from ml.models.base import Recommender
from ml.models.bert4rec.data import (
    IGNORE,
    LengthBucketBatchSampler,
    MaskingCollator,
    NextItemCollator,
    SequenceDataset,
    prediction_tokens,
)
from ml.models.bert4rec.lightning import (
    PlateauDecay,
    discover_view,
    popularity_loss,
    popularity_ndcg,
    set_metrics,
    time_to_quality,
)
from ml.models.bert4rec.model import Bert4Rec, validation_pairs
from ml.models.bert4rec.network import Bert4RecNetwork, rows

N_ITEMS = 40


def cycle_walks(n_users: int = 240, n_items: int = N_ITEMS, seed: int = 0) -> tuple[Interactions, Interactions]:
    """Each user walks the cycle i -> i+1 (mod n_items) from a random start; last step held out.

    Returns:
        (train, valid): valid holds each user's last item; only order predicts it (every item is
        equally popular, so popularity scores NDCG@10 of about 10 / n_items / 3).
    """
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        start, length = rng.integers(n_items), rng.integers(6, 16)
        users += [u] * length
        items += [(start + t) % n_items for t in range(length)]
        ts += list(range(length))
    users, items, ts = np.array(users), np.array(items), np.array(ts)
    last = np.r_[users[1:] != users[:-1], True]
    make = lambda m: Interactions.from_arrays(users[m], items[m], ts[m], n_users=n_users, n_items=n_items)  # noqa: E731
    return make(~last), make(last)


def small_model(**overrides) -> Bert4Rec:
    params = dict(hidden=32, layers=1, heads=2, max_len=16, batch_size=32, lr=5e-3, warmup_steps=5,
                  max_epochs=60, patience=60, seed=7, num_threads=1, accelerator="cpu")  # fmt: skip
    params.update(overrides)
    return Bert4Rec(**params)


@pytest.fixture(scope="module")
def cycles() -> tuple[Interactions, Interactions]:
    return cycle_walks()


@pytest.fixture(scope="module")
def trained(cycles) -> Bert4Rec:
    train, valid = cycles
    return small_model().fit(train, valid)


# -- masking -----------------------------------------------------------------------------------


def collate_many(collator: MaskingCollator, seqs: list[np.ndarray], repeats: int = 20) -> list[dict]:
    return [collator(seqs) for _ in range(repeats)]


def test_masking_leaves_labels_only_at_masked_positions_and_never_masks_padding():
    seqs = [np.arange(n) for n in (1, 2, 5, 12)]
    collator = MaskingCollator(n_items=N_ITEMS, max_len=8, mask_prob=0.2, seed=0)
    for batch in collate_many(collator, seqs):
        ids, att, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        masked = ids == N_ITEMS + 1
        assert torch.equal(masked, labels != IGNORE)
        assert not masked[att == 0].any()
        assert torch.all(ids[att == 0] == 0)
        assert masked.sum(1).min() >= 1  # at least one mask per sequence, even of length 1


def test_labels_are_the_hidden_item_indices():
    seq = np.array([5, 6, 7, 8, 9])
    batch = MaskingCollator(n_items=N_ITEMS, max_len=8, mask_prob=0.5, seed=1)([seq])
    labels = batch["labels"][0]
    where = labels != IGNORE
    np.testing.assert_array_equal(labels[where].numpy(), seq[where.numpy()])
    unmasked = batch["input_ids"][0][~where]
    np.testing.assert_array_equal(unmasked.numpy(), seq[~where.numpy()] + 1)  # item i is token i + 1


def test_long_sequences_are_cut_to_max_len_windows():
    seq = np.arange(30)
    last = MaskingCollator(N_ITEMS, max_len=8, mask_prob=0.2, crop="last", seed=0)([seq])
    assert last["input_ids"].shape == (1, 8)
    kept = torch.where(last["labels"][0] != IGNORE, last["labels"][0] + 1, last["input_ids"][0]) - 1
    np.testing.assert_array_equal(kept.numpy(), seq[-8:])
    starts = set()
    rand = MaskingCollator(N_ITEMS, max_len=8, mask_prob=0.2, crop="random", seed=0)
    for batch in collate_many(rand, [seq], repeats=30):
        kept = torch.where(batch["labels"][0] != IGNORE, batch["labels"][0] + 1, batch["input_ids"][0]) - 1
        assert np.all(np.diff(kept.numpy()) == 1)  # a contiguous window
        starts.add(int(kept[0]))
    assert len(starts) > 5


def test_mask_rate_is_close_to_mask_prob():
    seqs = [np.arange(50) % N_ITEMS for _ in range(64)]
    batch = MaskingCollator(N_ITEMS, max_len=50, mask_prob=0.2, seed=0)(seqs)
    rate = (batch["labels"] != IGNORE).float().mean().item()
    assert 0.17 < rate < 0.23


def test_prediction_input_is_history_tail_plus_mask():
    tokens = prediction_tokens(np.arange(10), max_len=4, mask_id=N_ITEMS + 1)
    np.testing.assert_array_equal(tokens, [8, 9, 10, N_ITEMS + 1])
    np.testing.assert_array_equal(prediction_tokens(np.array([], np.int64), 4, N_ITEMS + 1), [N_ITEMS + 1])


def test_next_item_batch_points_at_the_mask():
    batch = NextItemCollator(N_ITEMS, max_len=6)([(np.array([1, 2]), 3), (np.arange(9), np.array([9, 11]))])
    rows = torch.arange(2)
    assert torch.all(batch["input_ids"][rows, batch["positions"]] == N_ITEMS + 1)
    assert batch["positions"].tolist() == [2, 5]
    assert batch["targets"].tolist() == [[3, -1], [9, 11]]


def test_length_buckets_cover_every_index_once_with_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 200, 1000)
    batches = list(LengthBucketBatchSampler(lengths, batch_size=50, seed=0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spreads = [np.ptp(lengths[b]) for b in batches]
    assert np.median(spreads) <= 15


# -- network -----------------------------------------------------------------------------------


def test_network_output_head_is_tied_to_item_embeddings_and_excludes_special_tokens():
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=2, max_len=8)
    hidden = torch.randn(3, 16)
    expected = hidden @ net.item_emb.weight[1 : N_ITEMS + 1].T + net.out_bias
    torch.testing.assert_close(net.item_logits(hidden), expected)
    assert net.item_emb.weight.shape == (N_ITEMS + 2, 16)
    assert net.mask_id == N_ITEMS + 1
    assert not any(p is net.item_emb.weight for n, p in net.bert.named_parameters())  # own embedding


def test_network_shapes():
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=2, max_len=8)
    ids = torch.randint(1, N_ITEMS + 2, (3, 8))
    att = torch.ones_like(ids)
    assert net.encode(ids, att).shape == (3, 8, 16)
    assert net(ids, att).shape == (3, 8, N_ITEMS)


def test_padding_does_not_change_real_positions():
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=2, heads=2, max_len=8).eval()
    ids = torch.tensor([[3, 4, 5, N_ITEMS + 1]])
    padded = torch.tensor([[3, 4, 5, N_ITEMS + 1, 0, 0]])
    short = net.encode(ids, torch.ones_like(ids))
    long = net.encode(padded, (padded != 0).long())
    torch.testing.assert_close(short[0], long[0, :4], atol=1e-5, rtol=1e-4)


def test_scaled_inputs_enter_the_transformer_as_sqrt_width_times_the_item_vectors():
    torch.manual_seed(3)
    scaled = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=1, max_len=8, dropout=0.0, scale_inputs=True).eval()
    plain = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=1, max_len=8, dropout=0.0).eval()
    plain.load_state_dict(scaled.state_dict())
    ids = torch.tensor([[3, 4, 5, N_ITEMS + 1]])
    with torch.no_grad():
        states = scaled.encode(ids, torch.ones_like(ids))
        plain.item_emb.weight *= 4.0  # sqrt(16)
        torch.testing.assert_close(states, plain.encode(ids, torch.ones_like(ids)))
        # the output head scores with the unscaled vectors
        unscaled = scaled.item_emb.weight[1 : N_ITEMS + 1]
        torch.testing.assert_close(scaled.item_logits(states), states @ unscaled.T + scaled.out_bias)


def test_without_output_bias_the_scores_carry_none_and_training_leaves_it_at_zero():
    torch.manual_seed(3)
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=1, max_len=8, output_bias=False)
    assert "out_bias" in net.state_dict() and all(p is not net.out_bias for p in net.parameters())
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
    ids = torch.tensor([[3, 4, 5, N_ITEMS + 1]])
    loss = net.item_loss(net.encode(ids, torch.ones_like(ids))[:, -1], torch.tensor([6]))
    loss.backward()
    optimizer.step()
    assert net.out_bias.abs().sum() == 0
    with torch.no_grad():  # the scores are the states against the item vectors, nothing added
        states = net.encode(ids, torch.ones_like(ids))
        torch.testing.assert_close(net.item_logits(states), states @ net.item_emb.weight[1 : N_ITEMS + 1].T)
    with_bias = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=1, max_len=8)  # the control: trained
    optimizer = torch.optim.AdamW(with_bias.parameters(), lr=0.1)
    with_bias.item_loss(with_bias.encode(ids, torch.ones_like(ids))[:, -1], torch.tensor([6])).backward()
    optimizer.step()
    assert with_bias.out_bias.abs().sum() > 0


def test_rows_sums_the_gradient_of_every_use_of_a_row():
    table = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    out = rows(table, torch.tensor([[0, 2], [2, 2]]))
    assert out.tolist() == [[[1.0, 2.0], [5.0, 6.0]], [[5.0, 6.0], [5.0, 6.0]]]
    out.sum().backward()
    assert table.grad.tolist() == [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]]  # row 0 once, row 1 never, row 2 three times


@pytest.mark.parametrize("negatives", [0, 300])
def test_a_training_step_through_the_text_view_gives_the_same_gradients_every_time_on_two_threads(negatives):
    # at this size a tensor index's backward (threaded atomic adds) gave different float sums from run to run
    torch.manual_seed(0)
    n_items = 4000
    net = Bert4RecNetwork(n_items, hidden=64, layers=1, heads=1, max_len=200, dropout=0.0, text_dim=8, causal=True,
                          block="gpt2")  # fmt: skip
    net.set_item_text(torch.randn(n_items, 8))
    ids = torch.randint(1, n_items + 1, (128, 200))
    targets = torch.randint(0, n_items, (128 * 200,))
    sampled = torch.randint(0, n_items, (negatives,))
    grads = []
    with hardware.torch_threads(2):
        for _ in range(3):
            net.zero_grad()
            hidden = net.encode(ids, torch.ones_like(ids)).reshape(-1, 64)
            if negatives:
                logits = net.sampled_logits(hidden, targets, sampled)
                loss = torch.nn.functional.cross_entropy(logits, torch.zeros_like(targets))
            else:
                loss = net.item_loss(hidden, targets)
            loss.backward()
            grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
    for again in grads[1:]:
        for a, b in zip(grads[0], again):
            assert torch.equal(a, b)


@pytest.mark.parametrize("chunked", [True, False])
def test_full_softmax_loss_and_gradients_match_hand_computed_values(chunked):
    net = Bert4RecNetwork(n_items=2, hidden=2, layers=1, heads=1, max_len=4, dropout=0.0)
    with torch.no_grad():
        net.item_emb.weight[1:3] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # items 0 and 1
    states = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    loss = net.item_loss(states, torch.tensor([0, 1]), chunked=chunked)
    loss.backward()
    # both rows score logits [1, 0]: softmax p = [0.731059, 0.268941]; row 0 wants item 0, row 1 item 1
    # loss = mean(log(1 + e) - 1, log(1 + e)) = mean(0.313262, 1.313262)
    assert loss.item() == pytest.approx(0.813262, abs=1e-6)
    # d loss / d state = (p - onehot) @ items / 2; item 1's vector is 0, so only item 0's column counts
    torch.testing.assert_close(states.grad, torch.tensor([[-0.134471, 0.0], [0.365529, 0.0]]), atol=1e-6, rtol=0)
    # d loss / d bias = sum over rows of (p - onehot) / 2
    torch.testing.assert_close(net.out_bias.grad, torch.tensor([0.231059, -0.231059]), atol=1e-6, rtol=0)
    # d loss / d item 0's vector = sum over rows of (p_0 - onehot_0) * state / 2 = ((-0.268941) + 0.731059) / 2
    torch.testing.assert_close(net.item_emb.weight.grad[1], torch.tensor([0.231059, 0.0]), atol=1e-6, rtol=0)


def test_chunked_loss_gives_the_materialised_loss_and_gradients_through_the_text_view():
    torch.manual_seed(0)
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=2, max_len=8, dropout=0.0, text_dim=6)
    net.set_item_text(torch.randn(N_ITEMS, 6))
    states, targets = torch.randn(700, 16), torch.randint(0, N_ITEMS, (700,))  # more rows than one chunk
    grads = []
    for chunked in (True, False):
        net.zero_grad()
        loss = net.item_loss(states, targets, chunked=chunked)
        loss.backward()
        grads.append((loss.detach(), net.item_emb.weight.grad.clone(), net.text_proj.weight.grad.clone()))
    for chunked_value, materialised_value in zip(*grads):
        torch.testing.assert_close(chunked_value, materialised_value, atol=1e-6, rtol=1e-5)


def test_set_metrics_match_hand_computed_ndcg_and_recall():
    logits = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.4, 0.3, 0.2, 0.1]])
    targets = torch.tensor([[2, -1], [3, 0]])
    ndcg, recall = set_metrics(logits, targets, k=2)
    # row 0: ranking 1, 2 -> target 2 at position 2: (1/log2 3) / 1;  row 1: ranking 0, 1 -> one of two
    # targets at position 1: 1 / (1 + 1/log2 3)
    torch.testing.assert_close(ndcg, torch.tensor([1 / np.log2(3), 1 / (1 + 1 / np.log2(3))], dtype=torch.float32))
    torch.testing.assert_close(recall, torch.tensor([1.0, 0.5]))


def test_discover_view_drops_history_from_ranking_and_targets():
    logits = torch.tensor([[0.9, 0.5, 0.3, 0.1]])
    filtered, targets = discover_view(logits, torch.tensor([[0, 2]]), seen=torch.tensor([[0, 4]]))  # 4 = padding
    assert filtered[0, 0] == float("-inf") and torch.isfinite(filtered[0, 1:]).all()
    assert targets.tolist() == [[-1, 2]]


# -- fitting -----------------------------------------------------------------------------------


def test_validation_targets_every_distinct_valid_item_given_the_whole_train_sequence():
    train = Interactions.from_arrays([0, 0, 1], [1, 2, 3], [0, 1, 0], n_users=3, n_items=5)
    valid = Interactions.from_arrays([0, 0, 0, 1], [4, 0, 4, 2], [9, 5, 7, 1], n_users=3, n_items=5)
    seqs, histories, targets = validation_pairs(train.sequences(), valid)
    assert [t.tolist() for t in targets] == [[0, 4], [2]]
    assert [h.tolist() for h in histories] == [[1, 2], [3]]
    assert [s.tolist() for s in seqs] == [[1, 2], [3], []]


def test_without_valid_the_last_train_item_is_held_out():
    train = Interactions.from_arrays([0, 0, 0, 1], [1, 2, 3, 4], [0, 1, 2, 0], n_users=2, n_items=5)
    seqs, histories, targets = validation_pairs(train.sequences(), None)
    assert [t.tolist() for t in targets] == [[3]]
    assert [s.tolist() for s in seqs] == [[1, 2], [4]]


def test_learns_sequential_order_far_beyond_popularity(trained):
    summary = trained.training_summary
    assert summary["best_val_ndcg@10"] > 0.5, summary  # popularity: about 0.1
    assert summary["best_epoch"] is not None and summary["sequences_per_s"] > 0
    assert len(summary["epochs"]) == summary["epochs_run"]


def test_recommends_the_next_item_of_the_cycle(trained, cycles):
    train, valid = cycles
    users = np.arange(20)
    ids, _ = trained.recommend(users, train, n=3, filter_already_liked_items=False)
    last = np.array([s[-1] for s in train.sequences()[:20]])
    assert np.mean(ids[:, 0] == (last + 1) % N_ITEMS) >= 0.8


def test_score_is_float32_over_all_items_and_handles_cold_users(trained, cycles):
    train, _ = cycles
    cold = Interactions.from_arrays([], [], n_users=train.n_users, n_items=N_ITEMS)
    scores = trained.score(np.array([0, 1]), cold)
    assert scores.shape == (2, N_ITEMS) and scores.dtype == np.float32
    assert np.isfinite(scores).all()


def test_save_load_roundtrip_gives_identical_scores(trained, cycles, tmp_path):
    train, _ = cycles
    trained.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(trained.score(users, train), loaded.score(users, train))
    assert loaded.hyperparams() == trained.hyperparams()
    assert loaded.training_summary["best_epoch"] == trained.training_summary["best_epoch"]


def test_same_seed_gives_identical_weights():
    train, valid = cycle_walks(n_users=60)
    first = small_model(max_epochs=2).fit(train, valid)
    second = small_model(max_epochs=2).fit(train, valid)
    for (name, a), b in zip(first.network.state_dict().items(), second.network.state_dict().values()):
        assert torch.equal(a, b), name


def test_best_epoch_weights_are_restored(cycles):
    train, valid = cycles
    model = small_model(max_epochs=6, lr=3e-2)  # a high rate makes later epochs noisy
    model.fit(train, valid)
    best = model.training_summary["best_val_ndcg@10"]
    users = valid.frame["user_idx"].to_numpy()
    scores = model.score(users, train)
    truth = valid.frame["item_idx"].to_numpy()
    rank = (scores > scores[np.arange(len(users)), truth][:, None]).sum(1)
    ndcg = np.where(rank < 10, 1 / np.log2(rank + 2), 0).mean()
    assert ndcg == pytest.approx(best, abs=1e-4)


def test_popularity_baseline_ranks_by_training_frequency():
    seqs = [np.array([0, 0, 0, 1, 1, 2])]
    # target 1 has rank 1 (item 0 is more frequent): 1 / log2(3); target 0 has rank 0: 1.0
    value = popularity_ndcg(seqs, [np.array([5]), np.array([5])], [1, 0], n_items=6, view="repeat")
    assert value == pytest.approx((1 / np.log2(3) + 1.0) / 2)
    filtered = popularity_ndcg(seqs, [np.array([0])], [1], n_items=6, view="discover")
    assert filtered == pytest.approx(1.0)  # item 0 is history, so item 1 ranks first
    # a set of targets {0, 2}: positions 1 and 3 of the ranking 0, 1, 2 -> (1 + 1/2) / (1 + 1/log2 3)
    both = popularity_ndcg(seqs, [np.array([5])], [np.array([0, 2])], n_items=6, view="repeat")
    assert both == pytest.approx(1.5 / (1 + 1 / np.log2(3)))
    # a user whose only target is in their history has nothing to discover and is not counted
    assert popularity_ndcg(seqs, [np.array([0]), np.array([5])], [0, 0], n_items=6, view="discover") == pytest.approx(
        1.0
    )


def test_early_stopping_waits_until_the_model_beats_popularity():
    train, valid = cycle_walks(n_users=60)
    never_armed = small_model(max_epochs=8, patience=1, arm_factor=100.0, arm_loss_margin=None).fit(train, valid)
    assert never_armed.training_summary["epochs_run"] == 8
    assert never_armed.training_summary["early_stopping_armed_epoch"] is None
    armed = small_model(max_epochs=8, patience=1, arm_factor=0.0).fit(train, valid)
    assert armed.training_summary["early_stopping_armed_epoch"] == 0
    assert armed.training_summary["early_stopping_armed_by"] == "margin_over_popularity"


def test_popularity_loss_is_the_cross_entropy_of_item_frequencies():
    # items 0, 0, 1: p = (2/3, 1/3); -(2/3 ln 2/3 + 1/3 ln 1/3) = 0.636514...
    assert popularity_loss([np.array([0, 0]), np.array([1])], n_items=5) == pytest.approx(0.6365141682948128)
    assert popularity_loss([np.array([3, 3, 3])], n_items=5) == pytest.approx(0.0)


def test_early_stopping_arms_once_the_training_loss_leaves_the_popularity_plateau():
    train, valid = cycle_walks(n_users=60)
    # never ahead of popularity by the (impossible) margin, but the walks are learnable: the loss falls below
    model = small_model(max_epochs=30, patience=1, arm_factor=100.0).fit(train, valid)
    summary = model.training_summary
    assert summary["early_stopping_armed_by"] == "loss_below_popularity"
    armed = summary["early_stopping_armed_epoch"]
    assert summary["epochs"][armed]["train_loss_epoch"] < summary["popularity_loss"]
    assert summary["stopped_by"] == "early_stopping" and summary["epochs_run"] < 30
    # a model that learns nothing never leaves the plateau: no epoch count arms patience, the caps end it
    stuck = small_model(max_epochs=6, patience=1, arm_factor=100.0, lr=0.0).fit(train, valid)
    assert stuck.training_summary["early_stopping_armed_epoch"] is None
    assert (stuck.training_summary["stopped_by"], stuck.training_summary["epochs_run"]) == ("max_epochs", 6)


def test_plateau_decay_halves_the_rate_after_patience_validations_without_improvement():
    decay = PlateauDecay(factor=0.5, patience=2)
    values = [0.1, 0.2, 0.2, 0.15, 0.3, 0.3, 0.3, 0.3]
    # 0.2 twice not beaten (0.2, 0.15): halve; a new best 0.3 resets; 0.3 twice more: halve again
    assert [decay.update(v) for v in values] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert decay.decays == [3, 6]


def test_plateau_decay_does_not_count_before_the_model_leaves_the_popularity_plateau():
    decay = PlateauDecay(factor=0.5, patience=1)
    assert [decay.update(0.1, counting=False) for _ in range(4)] == [1, 1, 1, 1]
    assert decay.update(0.1, counting=True) == 0.5  # counted from here: one validation without improvement
    with pytest.raises(ValueError, match="factor"):
        PlateauDecay(factor=1.0)
    with pytest.raises(ValueError, match="patience"):
        PlateauDecay(patience=0)


def test_plateau_decay_lowers_the_optimizers_learning_rate_during_training(cycles):
    import pytorch_lightning as pl

    class RecordLr(pl.Callback):
        def __init__(self) -> None:
            self.rates: list[float] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    train, valid = cycles
    record = RecordLr()
    # a high rate makes validation noisy, so one validation without a new best comes soon and halves it
    model = small_model(max_epochs=8, lr=3e-2, lr_decay="plateau", decay_patience=1, arm_factor=0.0, callbacks=[record])
    model.fit(train, valid)
    decays = model.training_summary["lr_decays_after_epoch"]
    assert decays, "no validation without improvement in 8 noisy epochs"
    scales = [row["lr_scale"] for row in model.training_summary["epochs"]]
    first = decays[0]
    assert scales[: first + 1] == [1.0] * (first + 1) and scales[first + 1] == 0.5
    # the optimizer really ran epoch first+1 at half the rate (warm-up is over after 5 steps)
    assert record.rates[first + 1] == pytest.approx(0.5 * record.rates[first])
    assert record.rates[0] == pytest.approx(3e-2)
    with pytest.raises(ValueError, match="lr_decay"):
        small_model(lr_decay="cosine")


def test_time_to_quality_is_the_first_epoch_within_95_percent_of_the_best():
    epochs = [
        {"epoch": 0, "elapsed_seconds": 5.0, "val_ndcg@10": 0.10},
        {"epoch": 1, "elapsed_seconds": 10.0},  # not validated
        {"epoch": 2, "elapsed_seconds": 15.0, "val_ndcg@10": 0.19},  # 0.95 x 0.20 = 0.19: reached
        {"epoch": 3, "elapsed_seconds": 20.0, "val_ndcg@10": 0.20},
        {"epoch": 4, "elapsed_seconds": 25.0, "val_ndcg@10": 0.18},
    ]
    assert time_to_quality(epochs) == {"epoch": 2, "elapsed_seconds": 15.0}
    assert time_to_quality(epochs, share=1.0) == {"epoch": 3, "elapsed_seconds": 20.0}
    assert time_to_quality([{"epoch": 0, "elapsed_seconds": 1.0}]) is None


def test_the_training_summary_reports_time_to_quality(trained):
    summary = trained.training_summary
    assert summary["epoch_to_95pct_of_best"] <= summary["best_epoch"]
    assert 0 < summary["seconds_to_95pct_of_best"] <= summary["best_elapsed_seconds"]


@pytest.mark.parametrize(("load", "expected"), [(1.0, 2), (1.4, 2), (2.0, 1), (3.5, 1)])
def test_threads_leave_cores_busy_with_other_processes(monkeypatch, load, expected):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(hardware.os, "getloadavg", lambda: (load, load, load))
    assert free_cpu_threads(own_threads=1) == expected


def test_from_settings_takes_the_bert4rec_section_and_seed():
    from ml.config import ModelSettings

    settings = ModelSettings.model_validate(
        {"seed": 7, "bert4rec": {"hidden": 32, "layers": 3, "lr": 0.002, "patience": 9}}
    )
    model = Bert4Rec.from_settings(settings, max_epochs=3)
    assert (model.hidden, model.layers, model.heads, model.max_len) == (32, 3, 2, 200)
    assert (model.lr, model.patience, model.seed, model.val_view, model.accelerator) == (
        0.002,
        9,
        7,
        "discover",
        "auto",
    )
    assert model.item_text is None  # the section's item_text mode is no vector
    assert model.max_epochs == 3
    assert model.num_threads is None  # the free cores, re-read every epoch
    pinned = ModelSettings.model_validate({"bert4rec": {"num_threads": 2}})
    assert Bert4Rec.from_settings(pinned).num_threads == 2


def test_from_settings_reads_baskets_as_the_protocol_asks_and_an_override_wins():
    from ml.config import ModelSettings
    from ml.models.bert4rec.model import SASRec

    settings = ModelSettings()
    assert SASRec.from_settings(settings).shuffle_baskets is True  # temporal unless told
    assert SASRec.from_settings(settings, protocol="leave-one-out").shuffle_baskets is False
    assert Bert4Rec.from_settings(settings, protocol="leave-one-basket-out").shuffle_baskets is True
    assert SASRec.from_settings(settings, protocol="leave-one-out", shuffle_baskets=True).shuffle_baskets is True


def test_only_the_causal_model_takes_its_loss_in_chunks_by_default():
    from ml.config import ModelSettings
    from ml.models.bert4rec.model import SASRec

    settings = ModelSettings()
    assert Bert4Rec.from_settings(settings).chunked_loss is False  # few masked positions: chunks cost more
    assert SASRec.from_settings(settings).chunked_loss is True  # loss at every position
    assert (Bert4Rec().chunked_loss, SASRec().chunked_loss) == (False, True)
    assert Bert4Rec(chunked_loss=True).chunked_loss is True


def test_the_block_comes_from_each_models_section(monkeypatch):
    from ml.config import Settings
    from ml.models.bert4rec.model import SASRec

    settings = Settings().models
    causal, masked = SASRec.from_settings(settings), Bert4Rec.from_settings(settings)
    # SASRec's width is 128, BERT4Rec's 64 (each chosen on validation)
    assert (causal.hidden, masked.hidden) == (128, 64)
    assert (causal.block, causal.heads, causal.feed_forward, causal.activation) == ("gpt2", 1, 128, "relu")
    assert (masked.block, masked.heads, masked.feed_forward, masked.activation) == ("bert", 2, 256, "gelu")
    monkeypatch.setenv("RECO_MODELS__SASREC__BLOCK", "bert")
    monkeypatch.setenv("RECO_MODELS__SASREC__HEADS", "2")
    monkeypatch.setenv("RECO_MODELS__SASREC__ACTIVATION", "gelu")
    monkeypatch.setenv("RECO_MODELS__SASREC__FEED_FORWARD_RATIO", "4")
    causal = SASRec.from_settings(Settings().models)
    assert (causal.block, causal.heads, causal.feed_forward, causal.activation) == ("bert", 2, 512, "gelu")


def test_the_feed_forward_follows_the_width_it_is_a_multiple_of(monkeypatch):
    from ml.config import Settings
    from ml.models.bert4rec.model import SASRec

    monkeypatch.setenv("RECO_MODELS__SASREC__HIDDEN", "96")
    settings = Settings().models
    assert SASRec.from_settings(settings).feed_forward == 96  # SASRec's shape: as wide as the model
    assert SASRec.from_settings(settings, hidden=32).feed_forward == 32  # a bench override of the width too
    assert SASRec.from_settings(settings, feed_forward_ratio=2.5).feed_forward == 240
    assert SASRec.from_settings(settings, feed_forward=50).feed_forward == 50  # a width given outright wins
    assert Bert4Rec.from_settings(settings, hidden=32).feed_forward == 128  # BERT's: four times as wide


def test_every_epoch_prints_one_progress_line(cycles, caplog):
    import logging

    from ml.models.bert4rec.lightning import epoch_line

    row = {"epoch": 4, "train_loss_epoch": 2.5, "val_ndcg@10": 0.25, "sequences_per_s": 612.4, "elapsed_seconds": 33.3}
    assert epoch_line(row) == "bert4rec epoch 5, loss 2.5000, valid ndcg@10 0.2500, 612 seq/s, 33 s"
    train, valid = cycles
    with caplog.at_level(logging.INFO, logger="ml.models.bert4rec.lightning"):
        model = Bert4Rec(hidden=16, layers=1, heads=1, max_len=8, max_epochs=2, batch_size=16, seed=0)
        model.fit(train, valid)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bert4rec epoch")]
    assert [line.split(",")[0] for line in lines] == ["bert4rec epoch 1", "bert4rec epoch 2"]
    assert all("valid ndcg@10" in line and "seq/s" in line for line in lines)


def test_basket_shuffle_permutes_items_only_within_equal_timestamps():
    # baskets by time: [10, 11, 12] at t=1, [13] at t=2, [14, 15] at t=3
    seq, times = np.array([10, 11, 12, 13, 14, 15]), np.array([1, 1, 1, 2, 3, 3])
    data = SequenceDataset([seq], [times], seed=0)
    seen = {tuple(data[0]) for _ in range(200)}
    for drawn in seen:
        assert sorted(drawn[:3]) == [10, 11, 12] and drawn[3] == 13 and sorted(drawn[4:]) == [14, 15]
    assert len({d[:3] for d in seen}) == 6 and len({d[4:] for d in seen}) == 2  # every order occurs
    assert tuple(data.sequences[0]) == (10, 11, 12, 13, 14, 15)  # the stored sequence is untouched
    assert tuple(SequenceDataset([seq])[0]) == (10, 11, 12, 13, 14, 15)  # without times: as given


def test_basket_shuffle_refuses_times_that_do_not_match_the_items():
    with pytest.raises(ValueError, match="one timestamp per item"):
        SequenceDataset([np.array([1, 2, 3])], [np.array([1, 1])])


def test_context_positions_are_never_masked():
    from ml.models.bert4rec.data import IGNORE

    seq, context = np.array([3, 4, 5, 6]), np.array([True, True, False, False])
    collator = MaskingCollator(n_items=N_ITEMS, max_len=8, mask_prob=1.0, seed=0)
    batch = collator([(seq, context)])
    # every learnable position is masked (mask_prob 1), the two context positions stay as they are
    assert batch["input_ids"][0].tolist() == [4, 5, N_ITEMS + 1, N_ITEMS + 1]
    assert batch["labels"][0].tolist() == [IGNORE, IGNORE, 5, 6]
    low = MaskingCollator(n_items=N_ITEMS, max_len=8, mask_prob=0.01, seed=0)
    for _ in range(20):  # the forced mask of a sequence lands on a learnable position
        labels = low([(seq, context)])["labels"][0].tolist()
        assert labels[:2] == [IGNORE, IGNORE] and any(x != IGNORE for x in labels[2:])
