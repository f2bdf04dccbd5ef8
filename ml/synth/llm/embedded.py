"""The embedded backend: a local causal LM (SmolLM2-135M-Instruct by default) run with transformers.

Scoring packs a prefix and its continuations into one row without padding: a block attention mask
lets each continuation see only the prefix and itself, so choosing among 20 candidates costs the
prefix once plus the candidates' own tokens. Generation is batched greedy decoding with left padding.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.config import Settings
from ml.hardware import cpu_has_bf16, resolve_device, torch_threads
from ml.synth.llm.base import Prompt, cut_at_stop
from ml.synth.llm.errors import GeneratorError

log = logging.getLogger(__name__)
HEAD_CHUNK = 256  # positions per vocabulary-head matmul when scoring


def resolve_dtype(dtype: str, device: str):
    """The torch dtype for ``dtype`` (``auto``: bfloat16 where the hardware has it, else float32)."""
    import torch

    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


class EmbeddedGenerator:
    """A local causal LM for scoring and generation.

    Args:
        model_dir: a transformers model folder (e.g. from :func:`ml.synth.llm.model_cache.ensure_embedded_model`).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        dtype: ``auto``, ``float32`` or ``bfloat16``.
        threads: CPU threads while the model runs (None: torch's default).
        score_tokens: tokens per forward pass when scoring (packed rows, padded to the longest in the batch).
        pack_tokens: continuation tokens per packed scoring row (which also holds their prefix once).
        gen_batch: prompts decoded together.
        seed: torch seed set before each generation batch.
        model: an already loaded model to share (with ``tokenizer``), e.g. across tests.
    """

    supports_scoring = True

    def __init__(
        self,
        model_dir: Path,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = None,
        score_tokens: int = 1024,
        pack_tokens: int = 256,
        gen_batch: int = 16,
        seed: int = 0,
        model=None,
        tokenizer=None,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.device = resolve_device(device)
        self.threads = threads
        self.score_tokens = score_tokens
        self.pack_tokens = pack_tokens
        self.gen_batch = gen_batch
        self.seed = seed
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(self.model_dir))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            with torch_threads(threads):
                model = AutoModelForCausalLM.from_pretrained(
                    str(self.model_dir), dtype=resolve_dtype(dtype, self.device)
                )
            model.to(self.device).eval()
        self.model = model
        self.name = f"embedded:{self.model_dir.name}"
        self._packing_checked = False

    @classmethod
    def from_settings(cls, settings: Settings, model_dir: Path | None = None, **overrides) -> EmbeddedGenerator:
        """Build from ``settings.synth``: its model folder (converted once when unset), device, dtype and budgets.

        Args:
            model_dir: load this folder instead (e.g. an adapted copy of the model).
            overrides: constructor arguments that win over the settings (e.g. ``threads=2``).
        """
        from ml.synth.llm.model_cache import ensure_embedded_model

        s = settings.synth
        kwargs = dict(
            device=s.device,
            dtype=s.dtype,
            threads=s.torch_threads,
            score_tokens=s.score_tokens,
            gen_batch=s.gen_batch,
            seed=s.seed,
        )
        kwargs.update(overrides)
        return cls(model_dir or ensure_embedded_model(settings), **kwargs)

    @property
    def fingerprint(self) -> str:
        """A short hash of what the scores depend on: the weight files (path, size, time), dtype and device kind."""
        weights = sorted(self.model_dir.glob("*.safetensors")) + sorted(self.model_dir.glob("*.bin"))
        parts = [str(self.model_dir.resolve()), str(self.model.dtype), self.device.split(":")[0]]
        parts += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def with_options(self, **options) -> EmbeddedGenerator:
        """A generator sharing this one's loaded model, with other batch/thread/seed options."""
        kwargs = dict(
            device=self.device,
            threads=self.threads,
            score_tokens=self.score_tokens,
            pack_tokens=self.pack_tokens,
            gen_batch=self.gen_batch,
            seed=self.seed,
        )
        kwargs.update(options)
        return EmbeddedGenerator(self.model_dir, model=self.model, tokenizer=self.tokenizer, **kwargs)

    def score(self, prefix: str, continuations: Sequence[str]) -> np.ndarray:
        """Summed log-likelihood (nats) of each continuation after ``prefix`` (the prefix runs once per packed row).

        Args:
            prefix: the context (must not be empty).
            continuations: texts scored as what follows the prefix (start them with a space).
        Returns:
            float64 array, one value per continuation.
        """
        return self.score_many([(prefix, continuations)])[0]

    def score_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
        """:meth:`score` for several prefixes, packed without padding into passes of about ``score_tokens`` tokens.

        Each packed row holds one prefix followed by as many of its continuations as fit in
        ``pack_tokens`` tokens; a block attention mask lets each continuation see the prefix and itself only,
        and its positions continue the prefix's, so every continuation is scored exactly as if it
        followed the prefix alone (up to floating-point rounding).

        Returns:
            One float64 array per request.
        """
        import torch

        tok = self.tokenizer
        prefix_ids = tok([p for p, _ in requests], add_special_tokens=False).input_ids
        flat = [c for _, conts in requests for c in conts]
        cont_ids = tok(flat, add_special_tokens=False).input_ids if flat else []
        rows = pack_rows(prefix_ids, [len(conts) for _, conts in requests], cont_ids, self.pack_tokens)
        totals = np.zeros(len(flat))
        with torch_threads(self.threads), torch.inference_mode():
            if not self._packing_checked:
                self._check_packing()
            for batch in batch_rows(rows, self.score_tokens):
                for cont, value in self._score_rows(batch).items():
                    totals[cont] = value
        bounds = np.cumsum([0] + [len(conts) for _, conts in requests])
        return [totals[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def _score_rows(self, rows: list[PackedRow]) -> dict[int, float]:
        """Run one batch of packed rows: ``{continuation index: summed log-likelihood}``."""
        import torch

        dev = self.device
        width = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        seg = torch.full((len(rows), width), -1, dtype=torch.long)
        for b, r in enumerate(rows):
            n = len(r.ids)
            ids[b, :n], pos[b, :n], seg[b, :n] = (
                torch.tensor(r.ids),
                torch.tensor(r.positions),
                torch.tensor(r.segments),
            )
        idx = torch.arange(width)
        causal = idx[None, :, None] >= idx[None, None, :]
        same = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])
        mask = (causal & same) | torch.eye(width, dtype=torch.bool)[None]  # padding positions see themselves (no NaN)
        ids = ids.to(dev)
        hidden = self.model.base_model(
            input_ids=ids, attention_mask=mask[:, None].to(dev), position_ids=pos.to(dev)
        ).last_hidden_state
        # only the positions that predict a continuation token go through the vocabulary head, in chunks
        b_idx = torch.tensor([b for b, r in enumerate(rows) for _ in r.predictors], device=dev)
        p_idx = torch.tensor([p for r in rows for p in r.predictors], device=dev)
        targets = ids[b_idx, torch.tensor([t for r in rows for t in r.targets], device=dev)]
        states = hidden[b_idx, p_idx]
        head = self.model.get_output_embeddings()
        token_logp = torch.empty(len(p_idx), device=dev)
        for a in range(0, len(p_idx), HEAD_CHUNK):
            logits = head(states[a : a + HEAD_CHUNK]).float()
            token_logp[a : a + HEAD_CHUNK] = logits.gather(1, targets[a : a + HEAD_CHUNK, None])[
                :, 0
            ] - torch.logsumexp(logits, 1)
        owners, inverse = torch.unique(torch.tensor([c for r in rows for c in r.owners]), return_inverse=True)
        sums = torch.zeros(len(owners), dtype=torch.float64).index_add_(0, inverse, token_logp.double().cpu())
        return dict(zip(owners.tolist(), sums.tolist()))

    def _check_packing(self) -> None:
        """Fail clearly when the model ignores the packed attention mask (continuations would see each other).

        The probe packs the same continuation twice after one prefix: with the mask honoured both copies
        score the same; a model that lets the second copy see the first scores it far higher (copying).
        """
        probe = " zebra quartz lantern\n"
        first, second = self._score_rows(
            pack_rows(
                [self.tokenizer("Orders:\n2011-01-01:", add_special_tokens=False).input_ids],
                [2],
                [self.tokenizer(probe, add_special_tokens=False).input_ids] * 2,
                self.pack_tokens,
            )
        ).values()
        if abs(first - second) > 0.5:
            raise GeneratorError(
                f"{self.model_dir}: the model ignores a 4D attention mask, so packed scoring would let "
                f"candidates see each other ({first:.2f} vs {second:.2f} nats for the same text); "
                "use a transformers decoder model built on its masking utilities (Llama, Qwen2, Mistral...)"
            )
        self._packing_checked = True

    def generate(self, prompts: Sequence[Prompt], max_tokens: int, stop: Sequence[str] = ()) -> list[str]:
        """Greedy answers, decoded in batches of ``gen_batch`` with left padding.

        Args:
            prompts: chat prompts get the model's chat template; raw prompts are continued as they are.
            max_tokens: new tokens per answer.
            stop: strings that end an answer.
        Returns:
            One answer per prompt (special tokens removed).
        """
        import torch

        tok = self.tokenizer
        texts = [self._render(p) for p in prompts]
        answers: list[str] = []
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            with torch_threads(self.threads), torch.inference_mode():
                for start in range(0, len(texts), self.gen_batch):
                    enc = tok(
                        texts[start : start + self.gen_batch],
                        return_tensors="pt",
                        padding=True,
                        add_special_tokens=False,
                    ).to(self.device)
                    torch.manual_seed(self.seed)
                    out = self.model.generate(
                        **enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id
                    )
                    new = out[:, enc.input_ids.shape[1] :]
                    answers += [cut_at_stop(t, stop).strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        finally:
            tok.padding_side = side
        return answers

    def _render(self, prompt: Prompt) -> str:
        if not prompt.chat:
            return prompt.text
        messages = ([{"role": "system", "content": prompt.system}] if prompt.system else []) + [
            {"role": "user", "content": prompt.text}
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def close(self) -> None:
        """Drop the model reference (memory is freed when no one else holds it)."""
        self.model = None


@dataclass
class PackedRow:
    """One prefix and some of its continuations laid out in one sequence (see :func:`pack_rows`)."""

    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # rotary positions: each continuation continues the prefix
    segments: list[int] = field(default_factory=list)  # 0 = prefix, k = the row's k-th continuation
    predictors: list[int] = field(default_factory=list)  # positions whose next-token distribution is scored
    targets: list[int] = field(default_factory=list)  # the position of the token each predictor is scored on
    owners: list[int] = field(default_factory=list)  # the continuation (global index) each scored token belongs to


def pack_rows(
    prefix_ids: list[list[int]], n_conts: list[int], cont_ids: list[list[int]], pack_tokens: int
) -> list[PackedRow]:
    """Lay out each prefix with its continuations in rows of at most ``pack_tokens`` continuation tokens.

    A row holds the prefix once, then continuations one after another (at least one per row, so a
    very long continuation makes a longer row); a long prefix is thus not repeated more often than a short
    one. A continuation's first token is predicted from the prefix's last token, each later token from the
    one before it.

    Args:
        prefix_ids: token ids of each request's prefix (none may be empty).
        n_conts: how many continuations each request has.
        cont_ids: token ids of every continuation, all requests' in order.
        pack_tokens: continuation tokens per row to aim for.
    Returns:
        The packed rows.
    Raises:
        ValueError: a prefix has no tokens.
    """
    rows: list[PackedRow] = []
    c = 0
    for prefix, n in zip(prefix_ids, n_conts):
        if not prefix:
            raise ValueError("a scoring prefix must not be empty")
        row = None
        for cont in cont_ids[c : c + n]:
            if row is None or (len(row.ids) - len(prefix) + len(cont) > pack_tokens and row.owners):
                row = PackedRow(list(prefix), list(range(len(prefix))), [0] * len(prefix))
                rows.append(row)
                segment = 0
            segment += 1
            start = len(row.ids)
            row.ids += cont
            row.positions += range(len(prefix), len(prefix) + len(cont))
            row.segments += [segment] * len(cont)
            if cont:
                row.predictors += [len(prefix) - 1, *range(start, start + len(cont) - 1)]
            row.targets += range(start, start + len(cont))
            row.owners += [c] * len(cont)
            c += 1
    return rows


def batch_rows(rows: list[PackedRow], score_tokens: int) -> list[list[PackedRow]]:
    """Group rows (longest first) into batches whose padded size stays within ``score_tokens`` (one row at least)."""
    batches: list[list[PackedRow]] = []
    for row in sorted(rows, key=lambda r: -len(r.ids)):
        if batches and (len(batches[-1]) + 1) * len(batches[-1][0].ids) <= score_tokens:
            batches[-1].append(row)
        else:
            batches.append([row])
    return batches
