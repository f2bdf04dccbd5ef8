"""The one list of models: names, variants, which models fuse, and building each from its settings section."""

import subprocess
import sys

import pytest

from ml.config import ModelSettings
from ml.models import registry


def test_variant_names_round_trip():
    assert registry.variant("als", synthetic=True) == "als_synth" and registry.variant("als", synthetic=False) == "als"
    assert registry.base_name("bert4rec_synth") == "bert4rec" and registry.base_name("pop") == "pop"
    assert registry.is_synthetic("als_synth") and not registry.is_synthetic("als")


def test_lists_follow_the_specs():
    assert registry.BASE_MODELS == (
        "pop",
        "pop_recent",
        "rebuy",
        "als",
        "bert4rec",
        "sasrec",
        "newest",
        "text_knn",
        "markov",
        "item_knn",
    )
    assert registry.ALL_MODELS[-1] == "fusion"
    assert registry.fusion_members(["pop", "rebuy", "als_synth", "bert4rec", "fusion"]) == [
        "rebuy",
        "als_synth",
        "bert4rec",
    ]
    assert registry.models_of_task("baselines", ["als", "rebuy", "pop"]) == ["pop", "rebuy"]
    assert registry.models_of_task("bert4rec", ["als"]) == []


def test_models_are_built_from_their_own_section():
    settings = ModelSettings.model_validate({"seed": 3, "als": {"factors": 16}, "popularity": {"recent_days": 7}})
    als = registry.make_model("als_synth", settings)
    assert (als.params["factors"], als.params["seed"], als.params["weighting"]) == (16, 3, "bm25")
    assert registry.make_model("pop_recent", settings).window_days == 7
    assert registry.make_model("pop", settings).window_days is None
    newest = ModelSettings.model_validate({"popularity": {"newest_days": 9}})
    assert registry.make_model("newest", newest).days == 9
    assert registry.model_params("als", settings) == {
        "model": "als",
        "seed": 3,
        "factors": 16,
        "regularization": 0.03,
        "iterations": 30,
        "alpha": 0.7,
        "weighting": "bm25",
        "window_days": 30,
    }
    assert registry.model_params("rebuy", settings) == {"model": "rebuy", "seed": 3}


def test_unknown_models_are_named_with_the_choices():
    with pytest.raises(ValueError, match="choose from pop, pop_recent"):
        registry.spec("gpt")
    with pytest.raises(ValueError, match="unknown models"):
        registry.check_names(["als", "fusion"], allow_fusion=False)
    assert registry.check_names(["als", "fusion"]) == ["als", "fusion"]


def test_importing_the_registry_loads_no_model_code():
    """The DAG file imports it at parse time: it must not pull in torch, implicit or pandas."""
    code = (
        "import sys, ml.models.registry; print(sorted(m for m in ('torch', 'implicit', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_a_run_without_titles_leaves_out_the_models_that_need_them():
    models = ["pop", "als", "text_knn", "bert4rec", "fusion"]
    assert registry.runnable(models, has_titles=True) == models
    # BERT4Rec reads text where there is some, and trains without it
    assert registry.runnable(models, has_titles=False) == ["pop", "als", "bert4rec", "fusion"]
    assert "text_knn" in registry.fusion_members(models)
