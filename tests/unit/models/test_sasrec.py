"""The causal next-item model: no position sees the future, every position carries loss, it learns order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ml.models.bert4rec.data import IGNORE, CausalCollator, NextItemCollator, causal_tokens
from ml.models.bert4rec.lightning import Bert4RecModule
from ml.models.bert4rec.model import SASRec
from ml.models.bert4rec.network import Bert4RecNetwork
from tests.unit.models.recommender_contract import RecommenderContract
from tests.unit.models.test_bert4rec import N_ITEMS, cycle_walks

START = N_ITEMS + 1


def test_training_batch_shifts_the_sequence_by_one_with_a_start_token():
    batch = CausalCollator(n_items=N_ITEMS, max_len=4)([np.array([5, 6, 7]), np.array([9]), np.arange(10, 17)])
    # tokens are item + 1; [START] = n_items + 1; every real input position predicts the next item.
    # items 10..16 are tokens [START, 11..17]; their last max_len + 1 = 5 tokens 13..17 give
    # inputs 13..16 and labels 14..17 - 1 = items 13..16
    assert batch["input_ids"].tolist() == [[START, 6, 7, 0], [START, 0, 0, 0], [13, 14, 15, 16]]
    assert batch["labels"].tolist() == [[5, 6, 7, IGNORE], [9, IGNORE, IGNORE, IGNORE], [13, 14, 15, 16]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]


def test_prediction_input_is_start_plus_history_scored_at_its_last_token():
    assert causal_tokens(np.array([5, 6]), max_len=4, start_id=START).tolist() == [START, 6, 7]
    assert causal_tokens(np.array([], np.int64), max_len=4, start_id=START).tolist() == [START]
    assert causal_tokens(np.arange(10), max_len=4, start_id=START).tolist() == [7, 8, 9, 10]  # items 6..9
    batch = NextItemCollator(N_ITEMS, max_len=4, causal=True)([(np.array([5, 6]), 7), (np.array([], np.int64), 1)])
    assert batch["input_ids"].tolist() == [[START, 6, 7], [START, 0, 0]]
    assert batch["positions"].tolist() == [2, 0]


@pytest.mark.parametrize("block", ["bert", "gpt2", "sasrec"])
def test_no_position_sees_the_future(block):
    torch.manual_seed(0)
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=2, heads=2, max_len=8, dropout=0.0, causal=True, block=block)
    net.eval()
    ids = torch.tensor([[START, 3, 4, 5, 6, 7]])
    changed = ids.clone()
    changed[0, 3:] = torch.tensor([30, 31, 32])  # a different future from position 3 on
    mask = torch.ones_like(ids)
    with torch.no_grad():
        a, b = net.encode(ids, mask), net.encode(changed, mask)
        shorter = net.encode(ids[:, :3], mask[:, :3])  # no future at all
        padded = net.encode(torch.tensor([[START, 3, 4, 0, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0, 0]]))
    torch.testing.assert_close(a[0, :3], b[0, :3])
    torch.testing.assert_close(a[0, :3], shorter[0])
    torch.testing.assert_close(padded[0, :3], shorter[0])  # right padding is no future either
    assert not torch.allclose(a[0, 3:], b[0, 3:])
    bidirectional = Bert4RecNetwork(N_ITEMS, hidden=16, layers=2, heads=2, max_len=8, dropout=0.0).eval()
    with torch.no_grad():  # the control: BERT4Rec's attention does see later tokens
        assert not torch.allclose(bidirectional.encode(ids, mask)[0, :3], bidirectional.encode(changed, mask)[0, :3])


def test_gpt2_block_has_sasrecs_shape_when_asked():
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=2, heads=1, causal=True, block="gpt2", feed_forward=16,
                          activation="relu")  # fmt: skip
    block = net.gpt2.h[0]
    # layer norm before attention and before the feed-forward layer, one more after the last block
    assert isinstance(block.ln_1, torch.nn.LayerNorm) and isinstance(block.ln_2, torch.nn.LayerNorm)
    assert isinstance(net.gpt2.ln_f, torch.nn.LayerNorm) and len(net.gpt2.h) == 2
    assert block.attn.num_heads == 1 and isinstance(block.mlp.act, torch.nn.ReLU)
    assert block.mlp.c_fc.weight.shape == (16, 16)  # feed-forward width = hidden, as SASRec
    default = Bert4RecNetwork(N_ITEMS, hidden=16, causal=True, block="gpt2")
    assert default.gpt2.h[0].mlp.c_fc.weight.shape == (16, 64)  # GPT-2's 4 x hidden
    bert = Bert4RecNetwork(N_ITEMS, hidden=16, causal=True, feed_forward=16, activation="relu")
    layer = bert.bert.encoder.layer[0]
    assert layer.intermediate.dense.out_features == 16  # BERT's block takes the same two settings
    assert isinstance(layer.intermediate.intermediate_act_fn, torch.nn.ReLU)


def test_sasrec_reference_block_adds_attention_to_the_normalised_query_over_raw_keys_and_values():
    from ml.models.bert4rec.network import SASRecStack

    stack = SASRecStack(hidden=3, layers=1, heads=1, max_len=2, feed_forward=3, activation="relu", dropout=0.0,
                        attention_dropout=0.0, init_std=0.02).eval()  # fmt: skip
    with torch.no_grad():  # identity projections, no positions, a feed-forward that adds nothing
        stack.positions.weight.zero_()
        attention = stack.attentions[0]
        attention.in_proj_weight.copy_(torch.eye(3).repeat(3, 1))
        attention.in_proj_bias.zero_()
        attention.out_proj.weight.copy_(torch.eye(3))
        stack.feed_forwards[0][3].weight.zero_()
        out = stack(torch.tensor([[[3.0, 0, 0], [0, 3.0, 0]]]), torch.ones(1, 2), torch.arange(2)[None])
    # by hand, LN = layer norm without scale. Position 0 sees only itself: LN(LN(x0) + x0) = LN(x0) =
    # [2, -1, -1] / sqrt(2). Position 1: q = LN(x1) = [-0.7071, 1.4142, -0.7071] against the raw keys x0, x1:
    # scores q.x / sqrt(3) = [-1.2247, 2.4495], weights [0.02474, 0.97526], attention = 0.02474 x0 + 0.97526 x1
    # = [0.0742, 2.9258, 0]; q + attention = [-0.6329, 4.3400, -0.7071], whose layer norm is [-0.6913, 1.4141,
    # -0.7228] (the feed-forward adds 0; later layer norms leave a normalised vector as it is)
    expected = torch.tensor([[[1.4142, -0.7071, -0.7071], [-0.6913, 1.4141, -0.7228]]])
    torch.testing.assert_close(out, expected, atol=2e-4, rtol=0)


def test_gpt2_block_is_refused_where_attention_must_see_both_ways():
    from ml.models.bert4rec.model import Bert4Rec

    with pytest.raises(ValueError, match="causal only"):
        Bert4RecNetwork(N_ITEMS, block="gpt2")
    with pytest.raises(ValueError, match="bert4rec: block 'gpt2' is causal only"):
        Bert4Rec(block="gpt2")
    with pytest.raises(ValueError, match="block 'sasrec' is causal only"):
        Bert4RecNetwork(N_ITEMS, block="sasrec")
    with pytest.raises(ValueError, match="block must be one of"):
        Bert4RecNetwork(N_ITEMS, causal=True, block="gpt3")
    with pytest.raises(ValueError, match="activation must be one of"):
        Bert4RecNetwork(N_ITEMS, causal=True, activation="tanh")


def test_the_loss_is_taken_at_every_real_position_and_only_there():
    torch.manual_seed(0)
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=2, max_len=8, dropout=0.0, causal=True)
    module = Bert4RecModule(net)
    batch = CausalCollator(N_ITEMS, max_len=4)([np.array([5, 6, 7]), np.array([9])])
    loss, counted = module.masked_loss(batch)
    assert int(counted) == 4  # three targets of the first sequence, one of the second
    hidden = net.encode(batch["input_ids"], batch["attention_mask"])
    logits = net.item_logits(hidden)
    picks = [(0, 0, 5), (0, 1, 6), (0, 2, 7), (1, 0, 9)]
    by_hand = torch.stack([-torch.log_softmax(logits[r, p], -1)[t] for r, p, t in picks]).mean()
    torch.testing.assert_close(loss, by_hand)


def test_sampled_softmax_scores_each_target_against_the_drawn_items_and_never_against_itself():
    torch.manual_seed(0)
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=2, max_len=8, dropout=0.0, causal=True)
    states = torch.randn(2, 16)
    targets, drawn = torch.tensor([5, 9]), torch.tensor([3, 9, 20])
    got = net.sampled_logits(states, targets, drawn)
    full = net.item_logits(states)  # the same scores, taken from the full table by hand below
    expected = torch.stack(
        [
            torch.stack([full[0, 5], full[0, 3], full[0, 9], full[0, 20]]),
            torch.stack([full[1, 9], full[1, 3], torch.tensor(float("-inf")), full[1, 20]]),  # 9 is row 1's own
        ]
    )
    torch.testing.assert_close(got, expected)


def test_with_sampled_softmax_the_loss_is_the_targets_share_among_the_drawn_items():
    torch.manual_seed(0)
    net = Bert4RecNetwork(N_ITEMS, hidden=16, layers=1, heads=2, max_len=8, dropout=0.0, causal=True)
    module = Bert4RecModule(net, negatives=4)
    batch = CausalCollator(N_ITEMS, max_len=4)([np.array([5, 6, 7])])
    torch.manual_seed(1)
    loss, counted = module.masked_loss(batch)
    torch.manual_seed(1)
    drawn = torch.randint(0, N_ITEMS, (4,))  # what the module drew
    logits = net.item_logits(net.encode(batch["input_ids"], batch["attention_mask"]))[0, :3]
    by_hand = []
    for p, t in enumerate([5, 6, 7]):
        others = [int(d) for d in drawn if int(d) != t]
        row = torch.stack([logits[p, t]] + [logits[p, d] for d in others])
        by_hand.append(-torch.log_softmax(row, -1)[0])
    assert int(counted) == 3
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())


def test_learns_the_next_item_of_the_cycle_with_sampled_negatives_too():
    train, valid = cycle_walks()
    model = SASRec(hidden=32, layers=1, heads=2, max_len=16, batch_size=32, lr=5e-3, warmup_steps=5, negatives=8,
                   max_epochs=30, patience=30, seed=7, num_threads=1, accelerator="cpu")  # fmt: skip
    model.fit(train, valid)
    assert model.training_summary["best_val_ndcg@10"] > 0.5, model.training_summary  # popularity: about 0.1


def test_learns_the_next_item_of_the_cycle():
    train, valid = cycle_walks()
    model = SASRec(hidden=32, layers=1, heads=2, max_len=16, batch_size=32, lr=5e-3, warmup_steps=5,
                   max_epochs=30, patience=30, seed=7, num_threads=1, accelerator="cpu")  # fmt: skip
    model.fit(train, valid)
    assert model.training_summary["best_val_ndcg@10"] > 0.5, model.training_summary  # popularity: about 0.1
    assert model.training_summary["early_stopping_armed_epoch"] == 0  # patience counts from the start
    ids, _ = model.recommend(np.arange(20), train, n=1, filter_already_liked_items=False)
    last = np.array([s[-1] for s in train.sequences()[:20]])
    assert (ids[:, 0] == (last + 1) % N_ITEMS).mean() >= 0.9


def test_learns_the_next_item_of_the_cycle_with_gpt2s_block():
    train, valid = cycle_walks()
    model = SASRec(hidden=32, layers=1, heads=1, max_len=16, batch_size=32, lr=5e-3, warmup_steps=5, block="gpt2",
                   feed_forward=32, activation="relu", max_epochs=30, patience=30, seed=7, num_threads=1,
                   accelerator="cpu")  # fmt: skip
    model.fit(train, valid)
    assert model.training_summary["best_val_ndcg@10"] > 0.5, model.training_summary  # popularity: about 0.1


@pytest.mark.parametrize("block", ["bert", "gpt2"])
def test_saved_model_loads_as_the_causal_model(tmp_path, block):
    train, valid = cycle_walks(n_users=40)
    model = SASRec(hidden=16, layers=1, heads=1, max_len=8, max_epochs=2, batch_size=16, num_threads=1, seed=0,
                   block=block, feed_forward=16, activation="relu")  # fmt: skip
    model.fit(train, valid)
    model.save(tmp_path / "m")
    loaded = SASRec.load(tmp_path / "m")
    assert type(loaded) is SASRec and loaded.network.causal and loaded.network.block == block
    assert (loaded.feed_forward, loaded.activation) == (16, "relu")
    # float32 rounding differs by ~1e-9 between two forward passes; scores near zero need an absolute bound
    before, after = model.score(np.arange(5), train), loaded.score(np.arange(5), train)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_a_model_saved_before_the_block_option_loads_with_berts_block(tmp_path):
    """Saves from before ``block`` existed name no block; they were BERT's, whatever today's settings say."""
    train, valid = cycle_walks(n_users=40)
    model = SASRec(hidden=16, layers=1, heads=2, max_len=8, max_epochs=1, batch_size=16, num_threads=1, seed=0)
    model.fit(train, valid)
    model.save(tmp_path / "m")
    meta_path = next((tmp_path / "m").rglob("bert4rec.json"))
    meta = json.loads(meta_path.read_text())
    for key in ("block", "feed_forward", "activation"):
        del meta["hyperparams"][key]
    meta_path.write_text(json.dumps(meta))
    loaded = SASRec.load(tmp_path / "m")
    assert (loaded.block, loaded.feed_forward, loaded.activation) == ("bert", None, "gelu")
    np.testing.assert_allclose(loaded.score(np.arange(5), train), model.score(np.arange(5), train), atol=1e-6)


class TestSASRecContract(RecommenderContract):
    """The platform's SASRec (``models.sasrec``): GPT-2's block in SASRec's shape."""

    def _get_model(self) -> SASRec:
        return SASRec(
            hidden=32, layers=1, heads=1, max_len=16, batch_size=16, lr=5e-3, warmup_steps=5,
            max_epochs=40, patience=40, seed=3, accelerator="cpu", num_threads=1,
            block="gpt2", feed_forward=32, activation="relu",
        )  # fmt: skip


def test_text_pca_keeps_the_main_directions_at_the_embedding_scale():
    from ml.models.bert4rec.model import text_pca

    rng = np.random.default_rng(0)
    direction = rng.normal(size=8)
    vectors = np.outer(rng.normal(size=30), direction) + 0.01 * rng.normal(size=(30, 8))
    vectors[0] = 0.0  # an item without text
    out = text_pca(vectors, dim=3, std=0.02, seed=1)
    assert out.shape == (30, 3) and out.dtype == np.float32
    first = out[1:, 0]  # the first component follows the shared direction
    along = (vectors[1:] - vectors[1:].mean(0)) @ direction
    assert abs(np.corrcoef(first, along)[0, 1]) > 0.99
    assert np.std(out[1:]) == pytest.approx(0.02, rel=0.05)


def test_text_init_starts_the_id_embeddings_from_the_text():
    train, valid = cycle_walks(n_users=40)
    text = np.eye(N_ITEMS, 8, dtype=np.float32)  # 8 items with distinct text, the rest none
    model = SASRec(hidden=8, layers=1, heads=1, max_len=8, max_epochs=1, batch_size=16, num_threads=1, seed=0,
                   item_text=text, text_mode="init")  # fmt: skip
    assert model.text_dim == 0  # init only: no frozen text view in the network
    model.fit(train, valid)
    assert model.network.text_dim == 0
    with pytest.raises(ValueError, match="text_mode must be one of"):
        SASRec(text_mode="titles")


def test_prepended_context_positions_carry_no_loss():
    # items 5, 6 are pseudo-history (context only), then the real 7, 8: [START] 5 6 7 8 -> targets 5 6 7 8
    batch = CausalCollator(N_ITEMS, max_len=8)([(np.array([5, 6, 7, 8]), np.array([True, True, False, False]))])
    assert batch["input_ids"][0].tolist() == [N_ITEMS + 1, 6, 7, 8]
    # predicting 5 (after START) and 6 (after 5) is not learned; 7 after 6 and 8 after 7 are
    assert batch["labels"][0].tolist() == [IGNORE, IGNORE, 7, 8]


def test_fits_with_prepended_pseudo_history_from_synthetic_events():
    import pandas as pd

    from ml.data.interactions import CONTEXT, Interactions
    from ml.models.augmented import AugmentedHistory

    train, valid = cycle_walks(n_users=40)
    first = train.frame.sort_values("ts").groupby("user_idx").first()
    extra = pd.DataFrame(
        {
            "user_idx": first.index.to_numpy(np.int32),
            "item_idx": ((first["item_idx"] - 1) % N_ITEMS).to_numpy(np.int32),  # the cycle's previous item
            "ts": (first["ts"] - 1).to_numpy(np.int64),
            "weight": np.float32(0.5),
            CONTEXT: True,
        }
    )
    model = AugmentedHistory(
        SASRec(hidden=16, layers=1, heads=1, max_len=20, max_epochs=2, batch_size=16, num_threads=1, seed=0),
        Interactions(extra, train.n_users, train.n_items),
    )
    model.fit(train, valid)
    assert model.training_summary["extra_events"] == 40 and len(model.training_summary["epochs"]) == 2
    assert model.recommend(np.arange(5), train, n=3)[0].shape == (5, 3)
