"""Fixtures for Pilot and snapshot tests: a temporary HAVSH_HOME, no network, a frozen clock,
and a fixed demo inventory (also used by tests/infra/screenshots.py)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from havsh_tui.app import HavshApp, make_app
from havsh_tui.core.inventory import open_inventory
from havsh_tui.core.model import Host, Service, ServiceStatus, ServiceType
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings

#: "Now" for every test: ages in snapshots never drift.
FROZEN_NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def frozen_clock() -> datetime:
    return FROZEN_NOW


def _at(days: float) -> datetime:
    return FROZEN_NOW - timedelta(days=days)


def demo_hosts() -> list[Host]:
    # TEST-NET addresses (RFC 5737): nothing answers there, and nothing here dials them.
    return [
        Host(name="alpha", address="192.0.2.10", user="deploy", created_at=_at(400)),
        Host(name="bravo", address="192.0.2.20", user="deploy", created_at=_at(200)),
    ]


def _service(
    name: str,
    host: str,
    service_type: ServiceType,
    status: ServiceStatus,
    *,
    days: float,
    odoo: str = "17.0",
    url: bool = True,
    **extra: object,
) -> Service:
    created = _at(days)
    return Service(
        name=name,
        host=host,
        type=service_type,
        odoo_version=odoo,
        image=f"odoo:{odoo}",
        status=status,
        database=name.replace("-", "_"),
        url=f"https://{name}.{host}.example.com" if url else "",
        created_at=created,
        updated_at=created,
        **extra,  # type: ignore[arg-type]
    )


def demo_services() -> list[Service]:
    """All five types: Live rows, a Failed service, a Preview that shows "Active"."""
    L, T, D, C, P = (
        ServiceType.LIVE,
        ServiceType.TEST,
        ServiceType.DEMO,
        ServiceType.COPY,
        ServiceType.PREVIEW,
    )
    S = ServiceStatus
    return [
        _service("erp-prod", "alpha", L, S.RUNNING, days=380),
        _service("shop-prod", "bravo", L, S.RUNNING, days=190, odoo="18.0"),
        _service("hr-prod", "bravo", L, S.STOPPED, days=95, odoo="16.0"),
        _service(
            "erp-test",
            "alpha",
            T,
            S.FAILED,
            days=2,
            last_error="odoo exited with code 255",
            failed_step="start",
        ),
        _service("training", "bravo", T, S.RUNNING, days=30, odoo="18.0"),
        _service("showroom", "alpha", D, S.RUNNING, days=12, demo=True),
        _service(
            "erp-copy", "alpha", C, S.CREATING, days=0.02, source="erp-prod", source_host="alpha"
        ),
        _service(
            "shop-copy",
            "alpha",
            C,
            S.RUNNING,
            days=6,
            odoo="18.0",
            source="shop-prod",
            source_host="bravo",
        ),
        _service(
            "erp-prod-pr42",
            "alpha",
            P,
            S.RUNNING,
            days=1,
            source="erp-prod",
            source_host="alpha",
            pr="acme/erp-addons#42",
        ),
        _service(
            "erp-prod-pr57",
            "alpha",
            P,
            S.UPDATING,
            days=0.2,
            source="erp-prod",
            source_host="alpha",
            pr="acme/erp-addons#57",
        ),
    ]


def fill_inventory(paths: AppPaths, hosts: Iterable[Host], services: Iterable[Service]) -> None:
    inventory = open_inventory(paths)
    for host in hosts:
        inventory.add_host(host)
    for service in services:
        inventory.add_service(service)


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted in a TUI test: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HAVSH_HOME, HOME and the XDG dirs all point into tmp_path; the network is off."""
    home = tmp_path / "havsh-home"
    monkeypatch.setenv("HAVSH_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "xdg" / var.lower()))
    block_network(monkeypatch)
    return home


@pytest.fixture
def paths(isolated_home: Path) -> AppPaths:
    return AppPaths.from_env().ensure()


@pytest.fixture
def populated_paths(paths: AppPaths) -> AppPaths:
    fill_inventory(paths, demo_hosts(), demo_services())
    return paths


AppFactory = Callable[..., HavshApp]


@pytest.fixture
def build_app() -> AppFactory:
    """``build_app(paths, **settings_fields)``: the real app on a frozen clock."""

    def build(paths: AppPaths, **settings: object) -> HavshApp:
        return make_app(paths, Settings(**settings), clock=frozen_clock)  # type: ignore[arg-type]

    return build


# -- the services TUI on the fake ops of fakes.py (files with other needs override these) ---


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The fake ops installed, the poller kept from starting: what they were asked."""
    from .fakes import install, no_polling

    no_polling(monkeypatch.setattr)
    return install(monkeypatch.setattr)


@pytest.fixture
def app(populated_paths: AppPaths, calls: Any) -> Any:
    """The real app on the demo inventory, the frozen clock and the fakes."""
    from .fakes import build_services_app

    return build_services_app(populated_paths, calls)
