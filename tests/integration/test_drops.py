"""A connection that drops while a streamed Docker response is read (here the followed log of
Odoo's init at creation). tests/unit/test_drops.py covers the errors a broken stream raises."""

from __future__ import annotations

import pytest

from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.ops import services as ops
from havsh_tui.ops.reporter import RecordingReporter

pytestmark = pytest.mark.usefixtures("clean_hosts")


class CutInInit(RecordingReporter):
    """Closes the SSH connection at the first line of the init step's log."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        self.in_init = False
        self.cut = False

    def step(self, name, state, detail=""):
        super().step(name, state, detail)
        self.in_init = name == "init" and state == "running"

    def log(self, line):
        super().log(line)
        if self.in_init and not self.cut:
            self.cut = True
            self.session.ssh.transport().close()


@pytest.mark.slow
def test_ssh_cut_while_following_the_init_log(inventory, secret_store, pool, host_a, cleanup):
    """The init runs in its own container on the host, whatever happens to our connection:
    a cut while its log is followed ends the follow; the exit code is then read over a new
    connection, so the creation still ends as it would have (here: Running)."""
    cleanup.add("dr-init")
    session = pool.session(host_a)
    rep = CutInInit(session)
    before = session.ssh.transport()
    done = ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name="dr-init", host="hosta", type=ServiceType.TEST, image="havsh-test/odoo:17.0"),
        rep)
    assert rep.cut and session.ssh.transport() is not before  # it did reconnect
    assert done.service.status is ServiceStatus.RUNNING
    assert [s for s, st in rep.steps() if st == "done"][-1] == "health"
    assert not [e for e in rep.events if e[0] == "warning" and "init" in str(e)]
    ops.delete_service(inventory, secret_store, pool, done.service)
