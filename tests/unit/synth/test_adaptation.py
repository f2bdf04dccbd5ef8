"""Generator adaptation: examples come from training histories only, a few Lightning steps run on CPU,
the adapted model is saved loadable and measured before/after on held-out real next purchases."""

from __future__ import annotations

import pytest

from ml import columns as C
from ml.synth.adaptation import adapt_model, adaptation_enabled, training_examples
from ml.synth.llm.embedded import EmbeddedGenerator
from tests.support.synth import bundled_sample, model_folder, sample_settings


def test_training_examples_come_from_training_histories_only():
    data, catalog = bundled_sample()
    examples = training_examples(data.train, catalog, 30, seed=0)
    assert len(examples) == 30
    titles = set(catalog[C.TITLE].str.lower())
    cut_day = data.training_cut.strftime("%Y-%m-%d")
    for prompt, target in examples:
        assert target.startswith(" ") and target.endswith("\n") and target.strip() in {t.strip() for t in titles}
        next_day = prompt.rstrip(":").splitlines()[-1]
        assert next_day < cut_day  # the predicted order is itself a training order


def test_adaptation_is_auto_only_with_a_gpu(tmp_path):
    import torch

    assert adaptation_enabled(sample_settings(tmp_path)) == torch.cuda.is_available()
    assert adaptation_enabled(sample_settings(tmp_path, adapt="on")) and not adaptation_enabled(
        sample_settings(tmp_path, adapt="off")
    )


@pytest.mark.slow
def test_a_few_steps_on_cpu_save_a_loadable_model_measured_before_and_after(tmp_path):
    data, catalog = bundled_sample()
    settings = sample_settings(tmp_path, adapt_steps=2, adapt_lr=1e-4)
    folder, report = adapt_model(model_folder(), data, catalog, settings, eval_users=2, max_examples=4)
    assert report["training"]["steps"] == 2 and report["training"]["examples"] == 4
    assert report["training"]["first_loss"] > 0
    for phase in ("before", "after"):
        assert report[phase]["users"] == 2 and 0 <= report[phase]["pmi"]["hit@3"] <= 1
    gen = EmbeddedGenerator(folder, threads=1)
    assert gen.name.startswith("embedded:SmolLM2-135M-Instruct-adapted-")
    assert len(gen.score("Orders:\n2011-07-01:", [" party bunting\n"])) == 1
    _, again = adapt_model(model_folder(), data, catalog, settings, eval_users=0, max_examples=4)
    assert again["training"] == "reused" and again["adopted"] is True and isinstance(report["adopted"], bool)


def test_an_adapted_model_that_measures_worse_is_not_used(tmp_path, monkeypatch):
    import ml.synth.adaptation as adaptation
    from ml.synth.pipeline import build_generator

    data, catalog = bundled_sample()
    monkeypatch.setattr(adaptation, "adapt_model", lambda *a, **k: (tmp_path / "worse", {"adopted": False}))
    gen, report = build_generator(sample_settings(tmp_path, adapt="on"), data, catalog)
    assert gen.model_dir == model_folder() and report == {"adopted": False}
