"""Live tracking through TRL's report_to (issue 9): off by default, on only for installed integrations, named in one
line otherwise (mtalign/train.py live_tracking)."""

from __future__ import annotations

import pytest

from mtalign import train


def test_off_by_default(monkeypatch):
    monkeypatch.delenv(train.TRACKING_ENV, raising=False)
    assert train.live_tracking() == "none"
    monkeypatch.setenv(train.TRACKING_ENV, "none")
    assert train.live_tracking() == "none"


def test_an_integration_that_is_not_installed_is_named(monkeypatch):
    monkeypatch.setenv(train.TRACKING_ENV, "tensorboard, not_a_tracker")
    from transformers.integrations import get_available_reporting_integrations

    with pytest.raises(ValueError, match="not_a_tracker") as err:
        train.live_tracking()
    assert ("tensorboard" in str(err.value)) != ("tensorboard" in get_available_reporting_integrations())


def test_installed_integrations_are_passed_to_trl(monkeypatch):
    import transformers.integrations as integrations

    monkeypatch.setattr(integrations, "get_available_reporting_integrations", lambda: ["tensorboard", "trackio"])
    monkeypatch.setenv(train.TRACKING_ENV, "trackio,tensorboard")
    assert train.live_tracking() == ["trackio", "tensorboard"]
