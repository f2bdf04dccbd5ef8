"""Writing outputs so that a rerun replaces them and a failed step never half-writes them."""

import pytest

from ml.data.lake import replaced_dir


def test_a_block_that_succeeds_replaces_the_folder_whole(tmp_path):
    target = tmp_path / "runs" / "backtest"
    with replaced_dir(target) as work:
        (work / "a.json").write_text("1")
        (work / "stale.json").write_text("x")
    with replaced_dir(target) as work:
        assert not (work / "a.json").exists()  # written fresh, not over the last output
        (work / "a.json").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]  # nothing from the first run survives
    assert (target / "a.json").read_text() == "2"
    assert [p.name for p in target.parent.iterdir()] == ["backtest"]  # no partial or old folder left beside it


def test_a_block_that_fails_keeps_the_last_complete_folder(tmp_path):
    target = tmp_path / "backtest"
    with replaced_dir(target) as work:
        (work / "a.json").write_text("1")
    with pytest.raises(RuntimeError, match="half way"):
        with replaced_dir(target) as work:
            (work / "a.json").write_text("half")
            raise RuntimeError("half way")
    assert (target / "a.json").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["backtest"]


def test_a_first_run_that_fails_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with replaced_dir(tmp_path / "out") as work:
            (work / "a.json").write_text("half")
            raise ValueError
    assert list(tmp_path.iterdir()) == []
