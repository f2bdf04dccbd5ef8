"""BERT4Rec network: a plain ``nn.Module`` around a small Hugging Face ``BertModel``.

Token ids: 0 is padding, item index ``i`` is token ``i + 1``, ``n_items + 1`` is [MASK] (the causal
model uses it as its start-of-sequence token). The output head is tied to the item embeddings and
scores real items only (never pad or mask). With ``causal=True`` the same parts make the causal
next-item model (SASRec's recipe): each position attends only to itself and earlier positions, through
BERT's block with a causal mask, GPT-2's pre-norm block (``block="gpt2"``) or SASRec's reference block
(``block="sasrec"``, :class:`SASRecStack`).
"""

from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

from ml.config import Activation, TransformerBlock

PAD_ID = 0
BLOCKS = get_args(TransformerBlock)  # the transformer (the settings' list)
CAUSAL_BLOCKS = ("gpt2", "sasrec")  # blocks that cannot attend both ways
ACTIVATIONS = get_args(Activation)  # of the feed-forward layer
# PyTorch's chunked linear cross-entropy: the batch is scored in pieces and the (positions x items) logits are
# never materialised. Same loss and gradients as scoring all at once, in less time where many positions are
# trained (SASRec: 300 vs 182 sequences/s on the ML-1M-shaped set, 2 CPU cores, bench/bench_bert4rec.py --loss)
CHUNKED_LOSS = torch.nn.LinearCrossEntropyOptions()


def check_shape(block: str, causal: bool, activation: str) -> None:
    """Refuse a transformer block or activation the network cannot build, or a causal-only block where attention
    must see both ways (BERT4Rec).

    Raises:
        ValueError: naming the value and what is accepted.
    """
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
    if block in CAUSAL_BLOCKS and not causal:
        raise ValueError(f"block {block!r} is causal only: use block 'bert' for the bidirectional model")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` with a deterministic backward: ``F.embedding`` sums each row's gradient in a fixed order.

    Indexing a tensor (``table[index]``) accumulates its gradient on CPU with threaded atomic adds, whose order
    changes from run to run: a seeded training then drifts (by 1e-6 in one epoch on the bundled data, enough to
    move the best validation NDCG@10 by +-0.0006 over a whole training).
    """
    return F.embedding(index, table)


def positions_from_end(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted back from each row's last real token (which gets 0).

    Rows are right-padded and of different lengths; counting from the end gives the [MASK] that
    asks for the next item the same position at prediction time as the last item had in
    training. Counting from the start would put it at a position that, for most users, training
    only ever saw as padding, and the model would not learn to use the item just before it.
    """
    lengths = attention_mask.sum(1, keepdim=True)
    steps = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :]
    return (lengths - 1 - steps).clamp(min=0)


class SASRecStack(nn.Module):
    """SASRec's block stack as its reference code lays it out (pmixer/SASRec.pytorch, which SASRec+ trained).

    It differs from GPT-2's pre-norm block in two places: attention's residual starts from the normalised
    query (``x = LN(x) + attention(LN(x), x, x)``: keys and values are the un-normalised states), and the
    feed-forward's input is normalised in place (``x = LN(x); x = x + FF(x)``), so no raw residual stream runs
    through the stack. Padded positions are zeroed after the embeddings and after every block; a final layer
    norm ends it. Linear layers and positions start at N(0, ``init_std``), as there.

    Args:
        hidden, layers, heads, max_len, feed_forward, activation, dropout, attention_dropout, init_std: as
            :class:`Bert4RecNetwork`'s.
    """

    def __init__(
        self,
        hidden: int,
        layers: int,
        heads: int,
        max_len: int,
        feed_forward: int,
        activation: str,
        dropout: float,
        attention_dropout: float,
        init_std: float,
    ) -> None:
        super().__init__()
        act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.positions = nn.Embedding(max_len, hidden)
        self.dropout = nn.Dropout(dropout)
        self.attention_norms = nn.ModuleList(nn.LayerNorm(hidden, eps=1e-8) for _ in range(layers))
        self.attentions = nn.ModuleList(
            nn.MultiheadAttention(hidden, heads, dropout=attention_dropout, batch_first=True) for _ in range(layers)
        )
        self.forward_norms = nn.ModuleList(nn.LayerNorm(hidden, eps=1e-8) for _ in range(layers))
        self.feed_forwards = nn.ModuleList(
            nn.Sequential(
                nn.Linear(hidden, feed_forward), nn.Dropout(dropout), act,
                nn.Linear(feed_forward, hidden), nn.Dropout(dropout),
            )
            for _ in range(layers)
        )  # fmt: skip
        self.last_norm = nn.LayerNorm(hidden, eps=1e-8)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=init_std)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, embeds: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, length, hidden)`` of right-padded ``embeds`` (``attention_mask`` 1 where real)."""
        keep = attention_mask.unsqueeze(-1).to(embeds.dtype)
        x = self.dropout(embeds + self.positions(positions)) * keep
        length = embeds.shape[1]
        future = torch.ones(length, length, dtype=torch.bool, device=embeds.device).triu(1)
        for attention_norm, attention, forward_norm, feed_forward in zip(
            self.attention_norms, self.attentions, self.forward_norms, self.feed_forwards, strict=True
        ):
            query = attention_norm(x)
            x = query + attention(query, x, x, attn_mask=future, need_weights=False)[0]
            x = forward_norm(x)
            x = (x + feed_forward(x)) * keep
        return self.last_norm(x)


class Bert4RecNetwork(nn.Module):
    """Bidirectional transformer over item sequences with a tied item-scoring head.

    Args:
        n_items: number of real items.
        hidden: embedding and transformer width.
        layers: transformer blocks.
        heads: attention heads.
        max_len: longest input (learned position embeddings).
        dropout: dropout on embeddings and hidden layers.
        attention_dropout: dropout on attention probabilities. Default 0: any non-zero value
            forces PyTorch's slow "math" attention kernel (about 5x slower on CPU).
        init_std: standard deviation of the embeddings (items, positions) at initialisation.
        text_dim: width of fixed item text vectors (0: none). When set, every item's vector is its
            id embedding plus a learned linear projection of its text vector (:meth:`set_item_text`),
            used both as input and in the tied output head.
        causal: causal self-attention (``BertConfig(is_decoder=True)``) and positions counted from the
            start, so no position's output depends on any later token.
        block: ``"bert"`` (``BertModel``: layer norm after each residual sum), ``"gpt2"`` (``GPT2Model``:
            layer norm before attention and feed-forward, one more at the end; the block shape of SASRec,
            which SASRec+ trained) or ``"sasrec"`` (:class:`SASRecStack`, SASRec's reference layout). The last
            two are causal only.
        feed_forward: width of the feed-forward layer; None = ``4 * hidden`` (BERT and GPT-2). SASRec's is
            ``hidden``.
        activation: of the feed-forward layer: ``"gelu"`` (BERT, GPT-2) or ``"relu"`` (SASRec).
        scale_inputs: multiply the item vectors that enter the transformer by ``sqrt(hidden)`` (SASRec's
            reference code does; the output head scores with the unscaled vectors).
        output_bias: a learned per-item bias on the scores (on); off, it stays 0, as in SASRec's reference code.

    BERT's linear layers are Xavier-initialised instead of BERT's N(0, 0.02): that scale suits
    width 768, but at width 64 it leaves attention uniform for thousands of steps (a long plateau
    at popularity level); Xavier halves that plateau and ends higher. GPT-2's block keeps its own
    N(0, ``init_std``) initialisation, as SASRec+'s reference code does.
    """

    def __init__(
        self,
        n_items: int,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        max_len: int = 200,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        init_std: float = 0.02,
        text_dim: int = 0,
        causal: bool = False,
        block: str = "bert",
        feed_forward: int | None = None,
        activation: str = "gelu",
        scale_inputs: bool = False,
        output_bias: bool = True,
    ) -> None:
        super().__init__()
        check_shape(block, causal, activation)
        self.n_items = n_items
        self.mask_id = n_items + 1
        self.max_len = max_len
        self.causal = causal
        self.input_scale = hidden**0.5 if scale_inputs else 1.0
        self.item_emb = nn.Embedding(n_items + 2, hidden, padding_idx=PAD_ID)
        self.block = block
        feed_forward = feed_forward or 4 * hidden
        if block == "sasrec":
            self.sasrec = SASRecStack(
                hidden, layers, heads, max_len, feed_forward, activation, dropout, attention_dropout, init_std
            )
        elif block == "gpt2":
            self.gpt2 = GPT2Model(
                GPT2Config(
                    vocab_size=2,  # unused: inputs arrive as embeddings
                    n_positions=max_len,
                    n_embd=hidden,
                    n_layer=layers,
                    n_head=heads,
                    n_inner=feed_forward,
                    activation_function=activation,
                    resid_pdrop=dropout,
                    embd_pdrop=dropout,
                    attn_pdrop=attention_dropout,
                    initializer_range=init_std,
                    bos_token_id=None,
                    eos_token_id=None,
                    use_cache=False,
                )
            )
        else:
            config = BertConfig(
                vocab_size=2,  # unused: inputs arrive as embeddings
                hidden_size=hidden,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                intermediate_size=feed_forward,
                hidden_act=activation,
                max_position_embeddings=max_len,
                type_vocab_size=1,
                hidden_dropout_prob=dropout,
                attention_probs_dropout_prob=attention_dropout,
                initializer_range=init_std,
                is_decoder=causal,
                use_cache=False,
            )
            self.bert = BertModel(config, add_pooling_layer=False)
            for module in self.bert.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_normal_(module.weight)
                    nn.init.zeros_(module.bias)
        if output_bias:
            self.out_bias = nn.Parameter(torch.zeros(n_items))
        else:  # a buffer: the same state-dict entry, never trained
            self.register_buffer("out_bias", torch.zeros(n_items))
        nn.init.normal_(self.item_emb.weight, std=init_std)
        with torch.no_grad():
            self.item_emb.weight[PAD_ID].zero_()
        self.text_dim = text_dim
        if text_dim:
            self.register_buffer("item_text", torch.zeros(n_items + 2, text_dim))  # pad and mask rows stay 0
            self.text_proj = nn.Linear(text_dim, hidden, bias=False)
            nn.init.xavier_normal_(self.text_proj.weight)

    def set_item_text(self, vectors) -> None:
        """Load the fixed text vectors of the real items: ``(n_items, text_dim)`` array-like."""
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        if not self.text_dim or tuple(vectors.shape) != (self.n_items, self.text_dim):
            raise ValueError(
                f"expected item text of shape ({self.n_items}, {self.text_dim}), got {tuple(vectors.shape)}"
            )
        with torch.no_grad():
            self.item_text[1 : self.n_items + 1] = vectors.to(self.item_text.device)

    def init_item_embeddings(self, vectors) -> None:
        """Overwrite the real items' id embeddings (e.g. with a PCA of their text vectors): ``(n_items, hidden)``."""
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        if tuple(vectors.shape) != (self.n_items, self.item_emb.embedding_dim):
            raise ValueError(f"expected ({self.n_items}, {self.item_emb.embedding_dim}), got {tuple(vectors.shape)}")
        with torch.no_grad():
            self.item_emb.weight[1 : self.n_items + 1] = vectors.to(self.item_emb.weight.device)

    def item_table(self) -> torch.Tensor:
        """Vectors of every token (pad, items, mask): id embeddings plus projected text, if any."""
        table = self.item_emb.weight
        return table + self.text_proj(self.item_text) if self.text_dim else table

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Contextual hidden states.

        Args:
            input_ids: ``(batch, length)`` token ids, right-padded with 0.
            attention_mask: ``(batch, length)``, 1 for real tokens (items and [MASK]), 0 for pad.
        Returns:
            ``(batch, length, hidden)`` float tensor.
        """
        embeds = rows(self.item_table(), input_ids) if self.text_dim else self.item_emb(input_ids)
        if self.input_scale != 1.0:
            embeds = embeds * self.input_scale
        if self.causal:  # from the start: a position's id must not depend on how many tokens follow it
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        else:
            positions = positions_from_end(attention_mask)
        if self.block == "sasrec":
            return self.sasrec(embeds, attention_mask, positions)
        encoder = self.gpt2 if self.block == "gpt2" else self.bert
        return encoder(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions).last_hidden_state

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the real items for any ``(..., hidden)`` states: ``(..., n_items)``."""
        items = self.item_table()[1 : self.n_items + 1]
        return hidden @ items.T + self.out_bias

    def item_loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunked: bool = True) -> torch.Tensor:
        """Mean full-softmax cross-entropy of ``targets`` given ``hidden`` states, over every real item.

        Args:
            hidden: ``(m, hidden)`` states.
            targets: ``(m,)`` item indices (0-based, as :meth:`item_logits`'s columns).
            chunked: use PyTorch's chunked ``linear_cross_entropy`` (:data:`CHUNKED_LOSS`) on CPU outside
                autocast; elsewhere (CUDA, bf16 autocast) the logits are materialised and the loss taken in
                float32, the path measured there.
        """
        if chunked and hidden.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            items = self.item_table()[1 : self.n_items + 1]
            return F.linear_cross_entropy(hidden, items, targets, linear_bias=self.out_bias, options=CHUNKED_LOSS)
        return F.cross_entropy(self.item_logits(hidden).float(), targets)

    def sampled_logits(self, hidden: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Scores of each state's target, then of the shared ``negatives``: ``(m, 1 + k)``.

        Args:
            hidden: ``(m, hidden)`` states.
            targets: ``(m,)`` item indices (0-based, as :meth:`item_logits`'s columns).
            negatives: ``(k,)`` item indices; where one equals a row's target its score is ``-inf``.
        """
        items = self.item_table()[1 : self.n_items + 1]
        bias = self.out_bias.unsqueeze(-1)
        positive = (hidden * rows(items, targets)).sum(-1, keepdim=True) + rows(bias, targets)
        negative = hidden @ rows(items, negatives).T + rows(bias, negatives).squeeze(-1)
        negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(-1), float("-inf"))
        return torch.cat([positive, negative], dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Item logits at every position: ``(batch, length, n_items)`` (use for small inputs only)."""
        return self.item_logits(self.encode(input_ids, attention_mask))
