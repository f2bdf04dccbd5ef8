"""The embedded backend: a local causal LM (SmolLM2-135M-Instruct by default) run with transformers.

Scoring shares one prefill per prefix: the prefix's key/value cache is repeated for a batch of
continuations, so choosing among 20 candidates costs the prefix once plus the candidates' own
tokens. Generation is batched greedy decoding with left padding.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ml.hardware import cpu_has_bf16
from ml.synth.generator import Prompt, cut_at_stop

log = logging.getLogger(__name__)
HEAD_CHUNK = 256  # positions per vocabulary-head matmul when scoring


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads, then restore the previous count."""
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class EmbeddedGenerator:
    """A local causal LM for scoring and generation.

    Args:
        model_dir: a transformers model folder (e.g. from :func:`ml.synth.model_cache.ensure_embedded_model`).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        dtype: ``auto``, ``float32`` or ``bfloat16``.
        threads: CPU threads while the model runs (None: torch's default).
        score_batch: continuations per forward pass when scoring.
        gen_batch: prompts decoded together.
        seed: torch seed set before each generation batch.
        model: an already loaded model to share (with ``tokenizer``), e.g. across tests.
    """

    supports_scoring = True

    def __init__(self, model_dir: Path, device: str = "auto", dtype: str = "auto", threads: int | None = None,
                 score_batch: int = 64, gen_batch: int = 16, seed: int = 0, model=None, tokenizer=None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.device = resolve_device(device)
        self.threads = threads
        self.score_batch = score_batch
        self.gen_batch = gen_batch
        self.seed = seed
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(self.model_dir))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            with torch_threads(threads):
                model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=resolve_dtype(dtype, self.device))
            model.to(self.device).eval()
        self.model = model
        self.name = f"embedded:{self.model_dir.name}"

    def with_options(self, **options) -> "EmbeddedGenerator":
        """A generator sharing this one's loaded model, with other batch/thread/seed options."""
        kwargs = dict(device=self.device, threads=self.threads, score_batch=self.score_batch, gen_batch=self.gen_batch, seed=self.seed)
        kwargs.update(options)
        return EmbeddedGenerator(self.model_dir, model=self.model, tokenizer=self.tokenizer, **kwargs)

    def score(self, prefix: str, continuations: Sequence[str]) -> np.ndarray:
        """Summed log-likelihood (nats) of each continuation after ``prefix`` (one shared prefill).

        Args:
            prefix: the context (must not be empty).
            continuations: texts scored as what follows the prefix (start them with a space).
        Returns:
            float64 array, one value per continuation.
        """
        return self.score_many([(prefix, continuations)])[0]

    def score_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
        """:meth:`score` for several prefixes, packed into forward passes of up to ``score_batch`` continuations.

        Each pass prefills its prefixes together (left-padded), repeats each prefix's key/value cache
        once per continuation, and scores all continuations (right-padded) in one batch.

        Returns:
            One float64 array per request.
        """
        import torch

        out = [np.empty(len(conts)) for _, conts in requests]
        units = [(r, start, list(conts[start:start + self.score_batch]))
                 for r, (_, conts) in enumerate(requests) for start in range(0, len(conts), self.score_batch)]
        groups: list[list] = []
        size = 0
        for unit in units:
            if not groups or size + len(unit[2]) > self.score_batch:
                groups.append([])
                size = 0
            groups[-1].append(unit)
            size += len(unit[2])
        with torch_threads(self.threads), torch.inference_mode():
            for group in groups:
                scores = self._score_group([requests[r][0] for r, _, _ in group], [conts for _, _, conts in group])
                for (r, start, conts), values in zip(group, scores):
                    out[r][start:start + len(conts)] = values
        return out

    def _score_group(self, prefixes: list[str], continuations: list[list[str]]) -> list[np.ndarray]:
        import torch

        tok, dev = self.tokenizer, self.device
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            pre = tok(prefixes, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        finally:
            tok.padding_side = side
        pre_mask = pre.attention_mask
        pre_pos = (pre_mask.cumsum(1) - 1).clamp(min=0)
        first = self.model(input_ids=pre.input_ids, attention_mask=pre_mask, position_ids=pre_pos, use_cache=True, logits_to_keep=1)
        cache = first.cache if getattr(first, "cache", None) is not None else first.past_key_values
        last_logp = torch.log_softmax(first.logits[:, -1].float(), -1)
        owner = torch.tensor([i for i, conts in enumerate(continuations) for _ in conts], device=dev)
        flat = [c for conts in continuations for c in conts]
        enc = tok(flat, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        ids, mask = enc.input_ids, enc.attention_mask
        cache.batch_select_indices(owner)
        full_mask = torch.cat([pre_mask[owner], mask], 1)
        positions = pre_mask.sum(1)[owner, None] + torch.arange(ids.shape[1], device=dev)[None, :]
        hidden = self.model.base_model(input_ids=ids, attention_mask=full_mask, position_ids=positions, cache=cache).last_hidden_state
        # only real next-token positions go through the vocabulary head, in chunks (the head dominates memory)
        rows, cols = torch.nonzero(mask[:, 1:], as_tuple=True)
        targets = ids[rows, cols + 1]
        states = hidden[rows, cols]
        head = self.model.get_output_embeddings()
        token_logp = torch.empty(len(rows), device=dev)
        for a in range(0, len(rows), HEAD_CHUNK):
            logits = head(states[a:a + HEAD_CHUNK]).float()
            token_logp[a:a + HEAD_CHUNK] = logits.gather(1, targets[a:a + HEAD_CHUNK, None])[:, 0] - torch.logsumexp(logits, 1)
        total = last_logp[owner, ids[:, 0]].clone()
        total.index_add_(0, rows, token_logp)
        total = total.cpu().double().numpy()
        bounds = np.cumsum([0] + [len(c) for c in continuations])
        return [total[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

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
                    enc = tok(texts[start:start + self.gen_batch], return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
                    torch.manual_seed(self.seed)
                    out = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
                    new = out[:, enc.input_ids.shape[1]:]
                    answers += [cut_at_stop(t, stop).strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        finally:
            tok.padding_side = side
        return answers

    def _render(self, prompt: Prompt) -> str:
        if not prompt.chat:
            return prompt.text
        messages = ([{"role": "system", "content": prompt.system}] if prompt.system else []) + [{"role": "user", "content": prompt.text}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def close(self) -> None:
        """Drop the model reference (memory is freed when no one else holds it)."""
        self.model = None
