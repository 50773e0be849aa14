"""Naming rules: slugs, reserved names, derived Docker and PostgreSQL names, preview slugs."""

from __future__ import annotations

import pytest

from havsh_tui.core import names
from havsh_tui.core.names import (
    SLUG_MAX,
    InvalidName,
    database_name,
    is_valid_slug,
    preview_slug,
    role_name,
    validate_host_name,
    validate_slug,
)


@pytest.mark.parametrize(
    "name",
    ["ab", "erp", "erp-prod", "a1", "shop-2024", "x" * SLUG_MAX, "a-b-c", "acme-eu-west-1"],
)
def test_valid_slugs(name: str) -> None:
    assert validate_slug(name) == name
    assert is_valid_slug(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a", "too short"),
        ("x" * (SLUG_MAX + 1), "too long"),
        ("Erp", "lowercase"),
        ("1erp", "start with a letter"),
        ("-erp", "start with a letter"),
        ("érp", "start with a letter"),
        ("erp_prod", "may only contain"),
        ("erp.prod", "may only contain"),
        ("erp prod", "may only contain"),
        ("erpé", "may only contain"),
        ("erp-", "end with"),
        ("erp--prod", "'--'"),
        ("erp\n", "may only contain"),
        ("postgres", "reserved"),
        ("www", "reserved"),
        ("havsh", "reserved"),
        ("template0", "reserved"),
    ],
)
def test_invalid_slugs(name: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason):
        validate_slug(name)
    assert not is_valid_slug(name)


def test_every_reserved_name_is_refused() -> None:
    for name in names.RESERVED:
        if len(name) >= 2:
            assert not is_valid_slug(name), name


def test_what_in_message() -> None:
    with pytest.raises(InvalidName, match="parent name"):
        validate_slug("A", what="parent name")


def test_host_names() -> None:
    for ok in ["a", "alpha", "db1.example.com", "10.0.0.1", "host-b"]:
        assert validate_host_name(ok) == ok
    for bad in ["", "-a", "a-", "a.", "Alpha", "a_b", "a b", "host\n", "x" * 64]:
        with pytest.raises(InvalidName):
            validate_host_name(bad)


def test_derived_names() -> None:
    assert names.container_name("erp-prod") == "havsh-erp-prod"
    assert names.volume_name("erp-prod") == "havsh-erp-prod-data"
    assert names.addons_volume_name("erp-prod") == "havsh-erp-prod-addons"
    assert database_name("erp-prod") == "erp_prod"
    assert role_name("erp-prod") == "havsh_erp_prod"


def test_infrastructure_names_cannot_be_taken_by_a_service() -> None:
    # A service called "postgres" or "proxy" would get our infrastructure's container name.
    for slug in ("postgres", "proxy"):
        assert not is_valid_slug(slug)
    assert names.POSTGRES_CONTAINER == names.container_name("postgres")
    assert names.PROXY_CONTAINER == names.container_name("proxy")


def test_postgres_identifiers_fit_and_need_no_quoting() -> None:
    longest = "a" * SLUG_MAX
    assert len(role_name(longest)) <= 63  # PostgreSQL's NAMEDATALEN - 1
    assert database_name("a-b-c").isidentifier()


def test_preview_slug_short_parent() -> None:
    assert preview_slug("erp", 12) == "erp-pr12"
    assert validate_slug(preview_slug("erp", 12))


def test_preview_slug_exactly_fits() -> None:
    parent = "a" * (SLUG_MAX - len("-pr7"))
    assert preview_slug(parent, 7) == parent + "-pr7"


def test_preview_slug_shortens_long_parents() -> None:
    parent = "customer-acme-production-eu-west-1a"
    slug = preview_slug(parent, 123)
    assert len(slug) <= SLUG_MAX
    assert slug.endswith("-pr123")
    assert slug.startswith("customer-acme-production")
    assert validate_slug(slug) == slug
    assert preview_slug(parent, 123) == slug  # deterministic


def test_preview_slug_long_parents_do_not_collide() -> None:
    # Plain truncation gave these three the same name.
    a = preview_slug("customer-acme-production-eu-west-1a", 123)
    b = preview_slug("customer-acme-production-eu-west-1b", 123)
    c = preview_slug("customer-acme-production-eu-west-1", 123)
    assert len({a, b, c}) == 3


def test_preview_slug_never_ends_a_head_with_a_dash() -> None:
    # The cut falls right after a dash in the parent.
    for n in range(1, 2000, 37):
        slug = preview_slug("abcdefghij-" * 3 + "abcdefghi", n)
        assert validate_slug(slug) == slug, slug


def test_preview_slug_rejects_bad_numbers() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValueError):
            preview_slug("erp", bad)


def test_service_labels() -> None:
    labels = names.service_labels("erp-pr3", "preview", "17.0", source="erp@alpha", pr="o/r#3")
    assert labels == {
        "sh.hav.managed": "1",
        "sh.hav.service": "erp-pr3",
        "sh.hav.type": "preview",
        "sh.hav.odoo": "17.0",
        "sh.hav.role": "odoo",
        "sh.hav.source": "erp@alpha",
        "sh.hav.pr": "o/r#3",
    }
    assert "sh.hav.source" not in names.service_labels("erp", "live", "17.0")
