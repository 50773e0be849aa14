"""The rules per service type, statuses and display."""

from __future__ import annotations

import pytest

from havsh_tui.core.model import (
    TYPE_RULES,
    Host,
    Service,
    ServiceStatus,
    ServiceType,
    neutralize_default,
)


def test_every_type_has_rules() -> None:
    assert set(TYPE_RULES) == set(ServiceType)


def test_live_rules() -> None:
    rules = ServiceType.LIVE.rules
    assert rules.backups_default is True
    assert rules.needs_typed_name is True
    assert rules.demo_default is False
    assert rules.wizard_creatable


def test_only_live_needs_the_name_typed_and_backs_up_by_default() -> None:
    for t in ServiceType:
        assert t.rules.needs_typed_name is (t is ServiceType.LIVE)
        assert t.rules.backups_default is (t is ServiceType.LIVE)


def test_demo_has_demo_data() -> None:
    assert ServiceType.DEMO.rules.demo_default is True


def test_test_has_no_demo_data_by_default_but_may_choose() -> None:
    rules = ServiceType.TEST.rules
    assert rules.demo_default is False
    assert rules.demo_choice is True


def test_copy_neutralize_default_only_for_a_live_source() -> None:
    assert neutralize_default(ServiceType.LIVE) is True
    for t in ServiceType:
        if t is not ServiceType.LIVE:
            assert neutralize_default(t) is False
    assert ServiceType.COPY.rules.neutralize_forced is False


def test_preview_neutralize_is_forced() -> None:
    assert ServiceType.PREVIEW.rules.neutralize_forced is True
    assert [t for t in ServiceType if t.rules.neutralize_forced] == [ServiceType.PREVIEW]


def test_copies_and_previews_do_not_come_from_the_wizard() -> None:
    assert not ServiceType.COPY.rules.wizard_creatable
    assert not ServiceType.PREVIEW.rules.wizard_creatable


def test_preview_shows_active_for_running() -> None:
    assert ServiceStatus.RUNNING.display(ServiceType.PREVIEW) == "Active"
    assert ServiceStatus.RUNNING.display(ServiceType.LIVE) == "Running"
    assert ServiceStatus.RUNNING.display() == "Running"
    assert ServiceStatus.STOPPED.display(ServiceType.PREVIEW) == "Stopped"
    preview = Service("erp-pr1", "alpha", ServiceType.PREVIEW, "17.0", "odoo:17.0")
    preview.status = ServiceStatus.RUNNING
    assert preview.status_label == "Active"


def test_the_design_statuses_exist() -> None:
    labels = {s.display() for s in ServiceStatus}
    for label in [
        "Creating",
        "Running",
        "Stopped",
        "Updating",
        "Failed",
        "Destroying",
        "Destroyed",
    ]:
        assert label in labels


@pytest.mark.parametrize("text", ["live", "Live", " LIVE "])
def test_type_parse(text: str) -> None:
    assert ServiceType.parse(text) is ServiceType.LIVE


def test_type_parse_error_lists_choices() -> None:
    with pytest.raises(ValueError, match="live, test, demo, copy, preview"):
        ServiceType.parse("prod")


def test_labels() -> None:
    assert ServiceType.LIVE.label == "Live"
    assert ServiceType.PREVIEW.label == "Preview"


def test_host_destination() -> None:
    assert Host("a", "10.0.0.1").destination == "10.0.0.1"
    assert Host("a", "10.0.0.1", port=2222, user="root").destination == "root@10.0.0.1:2222"


def test_service_key_and_independent_defaults() -> None:
    a = Service("erp", "alpha", ServiceType.TEST, "17.0", "odoo:17.0")
    b = Service("erp", "beta", ServiceType.TEST, "17.0", "odoo:17.0")
    assert a.key == ("alpha", "erp")
    a.config["x"] = "1"
    assert b.config == {}
    assert a.created_at.tzinfo is not None
