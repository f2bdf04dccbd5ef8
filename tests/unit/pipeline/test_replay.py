"""The live demo shop: each night releases one more day of the bundled history, then says it is done."""

import json

import pandas as pd
import pytest

from ml.pipeline.airflow_params import as_of_date
from ml.pipeline.replay import ReplayFinished, anchor_path, replay_day


@pytest.fixture
def replaying(settings):
    return settings.with_overrides({"source": {"replay": True, "replay_hold_back_days": 30}})


def test_nights_map_to_consecutive_days_from_the_held_back_start(replaying):
    first = pd.Timestamp("2026-12-01T02:00", tz="UTC")
    assert replay_day(replaying, first) == "2011-11-09"  # the bundled history ends on 2011-12-09
    assert json.loads(anchor_path(replaying).read_text()) == {
        "first_night": "2026-12-01",
        "first_day": "2011-11-09",
        "last_day": "2011-12-09",
    }
    assert replay_day(replaying, first + pd.Timedelta(days=1)) == "2011-11-10"
    assert replay_day(replaying, first + pd.Timedelta(days=30)) == "2011-12-09"
    with pytest.raises(ReplayFinished, match="released up to its last day 2011-12-09"):
        replay_day(replaying, first + pd.Timedelta(days=31))


def test_a_scheduled_run_replays_and_an_explicit_as_of_wins(replaying, settings):
    night = pd.Timestamp("2026-12-01T02:00", tz="UTC")
    assert as_of_date({}, logical_date=night, settings=replaying) == "2011-11-09"
    assert as_of_date({"as_of": "2010-06-30"}, logical_date=night, settings=replaying) == "2010-06-30"
    assert as_of_date({}, logical_date=night, settings=settings) == "2026-12-01"  # replay off: the night itself
