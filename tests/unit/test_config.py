"""Settings precedence: defaults < TOML file < environment < run overrides."""

import pytest

from ml.config import Settings, get_settings
from ml.errors import SettingsError


def test_defaults_are_typed():
    s = get_settings()
    assert s.split.test_days == 100 and s.models.als.weighting == "bm25" and s.eval.ks[-1] == 20
    assert s.eval.backtest.compare[0] == ("pop", "als")  # a list of pairs, typed


def test_file_then_environment_then_overrides(tmp_path, monkeypatch):
    path = tmp_path / "settings.toml"
    path.write_text("[split]\ntest_days = 50\nvalidation_days = 10\n[models]\nseed = 7\n")
    monkeypatch.setenv("RECO_SETTINGS_FILE", str(path))
    assert get_settings().split.test_days == 50
    monkeypatch.setenv("RECO_SPLIT__TEST_DAYS", "60")
    s = get_settings()
    assert (s.split.test_days, s.split.validation_days, s.models.seed) == (60, 10, 7)
    assert s.with_overrides({"split": {"test_days": 70, "validation_days": None}}).split.test_days == 70
    assert s.with_overrides({"split": {"validation_days": None}}).split.validation_days == 10


def test_unknown_keys_are_refused():
    with pytest.raises(SettingsError, match="split.tset_days"):
        get_settings().with_overrides({"split": {"tset_days": 1}})
    with pytest.raises(SettingsError):
        get_settings().with_overrides({"nope": {}})
    with pytest.raises(SettingsError, match="models.bert4rec.hiden"):
        get_settings().with_overrides({"models": {"bert4rec": {"hiden": 128}}})
    with pytest.raises(SettingsError, match="is a section"):
        get_settings().with_overrides({"models": {"als": 3}})


def test_unknown_keys_in_the_file_or_the_environment_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RECO_SPLIT__TSET_DAYS", "60")
    with pytest.raises(SettingsError, match="split.tset_days"):
        get_settings()
    monkeypatch.delenv("RECO_SPLIT__TSET_DAYS")
    monkeypatch.setenv("RECO_MODELS__SASREC__FEED_FORWARD", "64")  # retired: now feed_forward_ratio
    with pytest.raises(SettingsError, match="models.sasrec.feed_forward"):
        get_settings()
    monkeypatch.delenv("RECO_MODELS__SASREC__FEED_FORWARD")
    path = tmp_path / "settings.toml"
    path.write_text("[models.als]\nfactor = 32\n")
    monkeypatch.setenv("RECO_SETTINGS_FILE", str(path))
    with pytest.raises(SettingsError, match="models.als.factor"):
        get_settings()


def test_model_settings_nest_per_model_in_files_environment_and_overrides(tmp_path, monkeypatch):
    path = tmp_path / "settings.toml"
    path.write_text("[models.als]\nfactors = 32\n[models.bert4rec]\nlayers = 3\n")
    monkeypatch.setenv("RECO_SETTINGS_FILE", str(path))
    monkeypatch.setenv("RECO_MODELS__BERT4REC__HIDDEN", "128")
    s = get_settings()
    assert (s.models.als.factors, s.models.bert4rec.layers, s.models.bert4rec.hidden) == (32, 3, 128)
    s = s.with_overrides({"models": {"bert4rec": {"max_minutes": 5}}})
    assert (s.models.bert4rec.max_minutes, s.models.bert4rec.hidden, s.models.als.factors) == (5, 128, 32)


def test_local_store_is_under_home(tmp_path):
    s = get_settings().with_overrides({"paths": {"home": str(tmp_path)}})
    assert s.mlflow_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert s.paths.lake == tmp_path / "lake"


def test_bad_settings_name_the_key_or_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RECO_SPLIT__TEST_DAYS", "a hundred")
    with pytest.raises(SettingsError, match=r"split.test_days: .*'a hundred'"):
        get_settings()
    monkeypatch.delenv("RECO_SPLIT__TEST_DAYS")
    with pytest.raises(SettingsError, match="models.als.factors"):
        get_settings().with_overrides({"models": {"als": {"factors": "many"}}})
    broken = tmp_path / "settings.toml"
    broken.write_text("[split\ntest_days = 50\n")
    monkeypatch.setenv("RECO_SETTINGS_FILE", str(broken))
    with pytest.raises(SettingsError, match=str(broken)):
        get_settings()


def test_the_command_line_reports_bad_settings_without_a_traceback(monkeypatch, capsys, tmp_path):
    from ml.cli import main

    monkeypatch.setenv("RECO_SPLIT__TEST_DAYS", "-")
    assert main(["data", "prepare", "--out", str(tmp_path / "out")]) == 2
    assert "split.test_days" in capsys.readouterr().err


def test_without_time_caps_lifts_every_sequence_models_wall_time_cap_and_nothing_else():
    s = Settings().with_overrides({"models": {"sasrec": {"max_minutes": 2.5, "max_epochs": 4}}})
    lifted = s.without_time_caps()
    assert lifted.models.bert4rec.max_minutes is None and lifted.models.sasrec.max_minutes is None
    assert lifted.models.sasrec.max_epochs == 4 and lifted.models.als == s.models.als
    assert s.models.sasrec.max_minutes == 2.5  # the original is untouched


def test_with_max_epochs_bounds_every_sequence_model_and_none_keeps_their_own_bounds():
    s = Settings().with_overrides({"models": {"sasrec": {"max_epochs": 4}}})
    assert set(s.models.epoch_trained()) == {"bert4rec", "sasrec"}
    bounded = s.with_max_epochs(7)
    assert bounded.models.bert4rec.max_epochs == 7 and bounded.models.sasrec.max_epochs == 7
    assert bounded.models.als == s.models.als and bounded.models.sasrec.max_minutes == 60.0
    kept = s.with_max_epochs(None)
    assert kept.models.bert4rec.max_epochs == 200 and kept.models.sasrec.max_epochs == 4
    assert s.models.bert4rec.max_epochs == 200  # the original is untouched


def test_basket_shuffling_follows_the_protocol_unless_set(monkeypatch):
    models = Settings().models
    # auto: shuffled wherever whole periods or baskets are held out; the split's order under leave-one-out,
    # whose held-out event is the last of its basket in that order
    assert [models.sasrec.shuffles(p) for p in ("temporal", "leave-one-basket-out", "leave-one-out")] == [
        True,
        True,
        False,
    ]
    assert models.bert4rec.shuffles("leave-one-out") is False
    monkeypatch.setenv("RECO_MODELS__SASREC__SHUFFLE_BASKETS", "true")
    monkeypatch.setenv("RECO_MODELS__BERT4REC__SHUFFLE_BASKETS", "false")
    models = Settings().models
    assert models.sasrec.shuffles("leave-one-out") is True
    assert models.bert4rec.shuffles("temporal") is False
    with pytest.raises(ValueError, match="rolling"):
        models.sasrec.shuffles("rolling")
