"""Fixtures for every test: isolation from the developer's own files, and the testbed.

The testbed (tests/infra/testbed.py) is two real Docker hosts behind real sshd on this
machine. `bash tests/run.sh` brings it up before pytest; when pytest runs alone, the
`testbed` fixture brings it up itself and takes it down again at the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import testbed as tb

INTEGRATION_DIR = Path(__file__).parent / "integration"
NOT_ROOT = "integration test: the testbed needs root (dockerd, sshd, a network namespace)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs the testbed (root, dockerd, sshd)")
    config.addinivalue_line("markers", "slow: a slow real-host test")


def _mark_integration(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason=NOT_ROOT)
        for item in items:
            if item.get_closest_marker("integration"):
                item.add_marker(skip)


def _run_id(config: pytest.Config) -> str:
    """One id for the whole run: shared by pytest-xdist workers, unique per run."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get("testrunuid"):
        return str(workerinput["testrunuid"])
    if not hasattr(config, "_havsh_run_id"):
        config._havsh_run_id = uuid.uuid4().hex  # type: ignore[attr-defined]
    return config._havsh_run_id  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Iterator[tb.Testbed]:
    """The running testbed (state.json). Brought up if it is down, under a file lock so that
    xdist workers don't race; then taken down at the end only if this run brought it up."""
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    run_id = _run_id(request.config)
    state = tb.session_begin(run_id)
    try:
        yield tb.Testbed.from_state(state)
    finally:
        tb.session_end(run_id)


@pytest.fixture(scope="session")
def hosta(testbed: tb.Testbed) -> tb.Host:
    """Host A: this machine's engine, sshd on 127.0.0.1:2222."""
    return testbed.hosts["hosta"]


@pytest.fixture(scope="session")
def hostb(testbed: tb.Testbed) -> tb.Host:
    """Host B: the engine in netns hostb, sshd on 10.213.9.2:22."""
    return testbed.hosts["hostb"]


@pytest.fixture(scope="session")
def testbed_images(testbed: tb.Testbed) -> tb.Images:
    """The test images' tags (on both engines); `.odoo_tag("17.0")` raises with the reason
    if the Odoo stand-in did not build."""
    return testbed.images


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the developer's ~/.ssh, config, agent or Docker context."""
    root = tmp_path_factory.mktemp("env")
    home = root / "home"
    havsh_home = root / "havsh"
    home.mkdir()
    havsh_home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HAVSH_HOME", str(havsh_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    for var in (
        "SSH_AUTH_SOCK",
        "SSH_AGENT_PID",
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
        "HAVSH_SSH_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:  # noqa: F811
    _mark_integration(config, items)

