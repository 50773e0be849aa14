"""Fake ops for the Pilot and snapshot tests of the services TUI (and tests/infra/screenshots):
creation, copy, lifecycle, detail facts and stats that answer at once, deterministically,
and record how they were called. Nothing here dials a host.

``install(patch)`` puts them in place with any ``setattr``-like ``patch`` (a monkeypatch's,
or ``setattr`` itself for the screenshot script); ``no_polling(patch)`` keeps the app's host
poller from starting, so a test feeds it HostPolled messages itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from havsh_tui.core.model import Service, ServiceStatus, ServiceType, Step
from havsh_tui.ops.hosts import HostHealth

from .conftest import FROZEN_NOW

Patch = Callable[[Any, str, Any], None]

#: The admin password the fake creation "generates": snapshots stay the same.
FAKE_PASSWORD = "Fake-Admin-Pw-1234"


def demo_health() -> dict[str, HostHealth]:
    """A last poll of each demo host, fixed, for the wizard's host step and the copy dialog."""
    at = FROZEN_NOW.timestamp()
    return {
        "alpha": HostHealth(host="alpha", reachable=True, load1=0.42, cpus=4,
                            disk_free=41_200_000_000, disk_total=100_000_000_000,
                            checked_at=at),
        "bravo": HostHealth(host="bravo", reachable=True, load1=1.05, cpus=8,
                            disk_free=2_100_000_000, disk_total=50_000_000_000, checked_at=at),
    }


def no_polling(patch: Patch) -> None:
    from havsh_tui.workers import HostPoller

    patch(HostPoller, "start", lambda self: None)


def seed_health(app: Any, health: dict[str, HostHealth] | None = None) -> None:
    app.poller.latest.update(health or demo_health())


@dataclass
class Calls:
    """What the fakes were asked to do, in order: (name, args)."""

    log: list[tuple[str, Any]] = field(default_factory=list)
    #: Set to an exception (or a factory of one) to make the next fake op raise it.
    fail: dict[str, Any] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def of(self, name: str) -> list[Any]:
        return [args for n, args in self.log if n == name]


def _raise_if(calls: Calls, name: str) -> None:
    error = calls.fail.pop(name, None)
    if error is not None:
        raise error() if callable(error) and not isinstance(error, BaseException) else error


def install(patch: Patch, *, delay: float = 0.0) -> Calls:
    """Replace the ops the services TUI calls. ``delay`` slows each fake step (seconds),
    for a test that wants to see an operation in progress."""
    from havsh_tui.ops import config as config_ops
    from havsh_tui.ops import copy as copy_ops
    from havsh_tui.ops import detail as detail_ops
    from havsh_tui.ops import images as images_ops
    from havsh_tui.ops import rescan as rescan_ops
    from havsh_tui.ops import services as services_ops
    from havsh_tui.ops import update as update_ops
    from havsh_tui.ops.copy import CopyPlan
    from havsh_tui.ops.detail import ContainerInfo, ServiceFacts, StatsSample
    from havsh_tui.ops.services import CreateResult, StepFailed

    calls = Calls()

    def steps(reporter: Any, names: list[str], fail_at: str | None = None,
              log: list[str] = ()) -> None:  # type: ignore[assignment]
        for name in names:
            reporter.step(name, "running")
            if delay:
                time.sleep(delay)
            if name == fail_at:
                for line in log:
                    reporter.log(line)
                reporter.step(name, "failed", "exited 1")
                return
            reporter.step(name, "done")

    def create_service(inventory, secret_store, pool, spec, reporter=None, audit=None):
        calls.log.append(("create", spec))
        created = Service(
            name=spec.name, host=spec.host, type=spec.type, odoo_version=spec.odoo_version,
            image=spec.image or f"odoo:{spec.odoo_version}", status=ServiceStatus.CREATING,
            database=spec.name.replace("-", "_"), config=dict(spec.config),
            demo=spec.resolved_demo(), created_at=FROZEN_NOW, updated_at=FROZEN_NOW,
        )
        names = ["connect", "bootstrap", "check names", "image", "database", "volume", "init",
                 "admin password", "container", "start", "health"]
        error = calls.fail.pop("create", None)
        if error == "image":
            # The host lacks the image and can't pull it (ops.images.ImageMissing).
            image = spec.image or f"odoo:{spec.odoo_version}"
            steps(reporter, names, fail_at="image")
            inventory.upsert_service(replace(created, status=ServiceStatus.FAILED,
                                             failed_step="image"))
            missing = images_ops.ImageMissing(spec.host, image, "no route to the registry")
            raise StepFailed("image", str(missing)) from missing
        if error is not None:
            log = ["2025-06-01 12:00:00,000 1 INFO erp ?: loading base",
                   "2025-06-01 12:00:01,000 1 CRITICAL erp odoo.service.server: Failed to"
                   " initialize database", "Traceback (most recent call last):",
                   '  File "odoo-bin", line 8, in <module>', "psycopg2.OperationalError: boom"]
            steps(reporter, names, fail_at="init", log=log)
            reporter.log("cleaned up: container, database, role, volume")
            inventory.upsert_service(replace(created, status=ServiceStatus.FAILED,
                                             failed_step="init",
                                             last_error="`odoo -i base` exited 1"))
            raise StepFailed("init", "`odoo -d x -i base --stop-after-init` exited 1",
                             "\n".join(log))
        reporter.log("odoo: loading 1 modules...")
        steps(reporter, names)
        reporter.progress(1, 1, "healthy")
        created.status = ServiceStatus.RUNNING
        created.steps = [Step(n, "done", FROZEN_NOW, FROZEN_NOW) for n in names]
        inventory.upsert_service(created)
        return CreateResult(created, FAKE_PASSWORD, spec.admin_password is None, 42.0)

    def plan_copy(inventory, pool, spec):
        calls.log.append(("plan", spec))
        _raise_if(calls, "plan")
        target = spec.host or spec.source_host
        free = demo_health()[target].disk_free if target in demo_health() else None
        needed = int((1_300_000_000 + 650_000_000) * 1.1)
        return CopyPlan(
            database_bytes=1_300_000_000, filestore_bytes=650_000_000, filestore_files=4_812,
            target_disk_free=free, neutralize=bool(spec.neutralize),
            source=spec.source, source_host=spec.source_host, target_host=target,
            disk_needed=needed, enough_disk=None if free is None else free >= needed,
        ) if "disk_needed" in CopyPlan.__dataclass_fields__ else CopyPlan(
            database_bytes=1_300_000_000, filestore_bytes=650_000_000, filestore_files=4_812,
            target_disk_free=free, neutralize=bool(spec.neutralize),
        )

    def copy_service(inventory, secret_store, pool, spec, reporter=None, audit=None, **kw):
        calls.log.append(("copy", spec))
        src = inventory.get_service(spec.source, host=spec.source_host)
        names = ["connect source", "measure", "check target", "image", "database", "snapshot",
                 "volume", "container", "copy database", "copy filestore", "verify",
                 "reset identity", *(["neutralize"] if spec.neutralize else []), "start",
                 "health"]
        _raise_if(calls, "copy")
        steps(reporter, names)
        reporter.progress(1_300_000_000, 1_300_000_000, "restoring")
        new = Service(
            name=spec.name, host=spec.host or spec.source_host, type=ServiceType.COPY,
            odoo_version=src.odoo_version, image=spec.image or src.image,
            status=ServiceStatus.RUNNING, database=spec.name.replace("-", "_"),
            source=src.name, source_host=src.host, snapshot_at=FROZEN_NOW,
            created_at=FROZEN_NOW, updated_at=FROZEN_NOW,
        )
        inventory.upsert_service(new)
        return new

    def lifecycle(name: str, status: ServiceStatus | None):
        def op(inventory, pool, service, audit=None):
            calls.log.append((name, service.key))
            _raise_if(calls, name)
            if delay:
                time.sleep(delay)
            return inventory.update_service(service.host, service.name, status=status)

        return op

    def neutralize_service(inventory, secret_store, pool, service, *, confirm_name=None,
                           reporter=None, audit=None):
        calls.log.append(("neutralize", (service.key, confirm_name)))
        _raise_if(calls, "neutralize")
        services_ops.require_typed_name(service, confirm_name, "neutralize")
        return services_ops.NeutralizeCheck(True, 0, 1, 0)

    def delete_service(inventory, secret_store, pool, service, *, confirm_name=None,
                       reporter=None, audit=None, backup_offer=None):
        calls.log.append(("delete", (service.key, confirm_name)))
        _raise_if(calls, "delete")
        services_ops.require_typed_name(service, confirm_name, "delete")
        if backup_offer is not None:
            calls.log.append(("delete-backup", service.key))
        inventory.remove_service(service.host, service.name)
        return [f"container havsh-{service.name}", f"volume havsh-{service.name}-data"]

    def rescan_all(inventory, pool, audit=None, max_workers=16):
        calls.log.append(("rescan", None))
        _raise_if(calls, "rescan")
        return [rescan_ops.RescanResult(host=h.name) for h in inventory.list_hosts()]

    def service_facts(session, service):
        calls.log.append(("facts", service.key))
        _raise_if(calls, "facts")
        return ServiceFacts(
            containers=[
                ContainerInfo(f"havsh-{service.name}", "odoo", "running", "Up 3 days",
                              service.image, "0123456789ab", FROZEN_NOW),
            ],
            volume_bytes=812_000_000, database_bytes=1_300_000_000,
            conf="[options]\naddons_path = /mnt/extra-addons\ndata_dir = /var/lib/odoo\n"
                 f"dbfilter = ^{service.database}$\ndb_name = {service.database}\n"
                 "list_db = False\n" + "".join(f"{k} = {v}\n"
                                               for k, v in sorted(service.config.items())),
            started_at="2025-05-29T08:00:00.000000000Z",
        )

    samples = iter([(3.5, 210_000_000), (12.0, 230_000_000), (7.25, 228_000_000),
                    (20.0, 260_000_000), (5.0, 250_000_000)] * 1000)

    def container_stats(client, container):
        cpu, mem = next(samples)
        return StatsSample(cpu, mem, 8_000_000_000)

    def set_service_config(inventory, pool, service, config, reporter=None, *, restart=False,
                           audit=None):
        calls.log.append(("config", (service.key, config, restart)))
        _raise_if(calls, "config")
        parsed = (config_ops.parse_config_text(config) if isinstance(config, str)
                  else dict(config))
        return inventory.update_service(service.host, service.name, config=parsed)

    def update_image(inventory, secret_store, pool, service, image, reporter=None, *,
                     push_from=None, push_from_name="", pull=True, audit=None):
        calls.log.append(("update", (service.key, image, push_from_name)))
        _raise_if(calls, "update")
        steps(reporter, ["connect", "pull image", "stop", "set aside", "container", "start",
                         "health", "remove previous"])
        return inventory.update_service(service.host, service.name, image=image)

    class FakeSession:
        def docker(self) -> object:
            return object()

    class FakePool:
        def session(self, host: Any) -> FakeSession:
            return FakeSession()

    def find_image_sources(inventory, pool, target, ref, timeout=15.0):
        calls.log.append(("sources", (target, ref)))
        _raise_if(calls, "sources")
        out = [images_ops.ImageSource("local", True, 1_412_000_000, "sha256:0123456789ab")]
        for h in inventory.list_hosts():
            if h.name == target:
                continue
            out.append(images_ops.ImageSource(h.name, False, detail="does not have it")
                       if h.name != "bravo" else
                       images_ops.ImageSource(h.name, None, detail="no answer within 10 s"))
        return out

    def push_image_to(inventory, pool, target, ref, source, reporter=None, audit=None):
        calls.log.append(("push", (target, ref, source)))
        _raise_if(calls, "push")
        reporter.step(f"push {ref}", "running")
        reporter.progress(706_000_000, 1_412_000_000, "88.1 MB/s")
        reporter.progress(1_412_000_000, 1_412_000_000, "88.1 MB/s")
        reporter.step(f"push {ref}", "done", "1412000000 bytes")
        return {"image": ref, "id": "sha256:0123456789ab", "bytes": 1_412_000_000,
                "skipped": False, "seconds": 16.03, "host": target, "source": source}

    patch(services_ops, "create_service", create_service)
    patch(images_ops, "find_image_sources", find_image_sources)
    patch(images_ops, "push_image_to", push_image_to)
    patch(services_ops, "start_service", lifecycle("start", ServiceStatus.RUNNING))
    patch(services_ops, "stop_service", lifecycle("stop", ServiceStatus.STOPPED))
    patch(services_ops, "restart_service", lifecycle("restart", ServiceStatus.RUNNING))
    patch(services_ops, "neutralize_service", neutralize_service)
    patch(services_ops, "delete_service", delete_service)
    patch(copy_ops, "plan_copy", plan_copy)
    patch(copy_ops, "copy_service", copy_service)
    patch(rescan_ops, "rescan_all", rescan_all)
    patch(detail_ops, "service_facts", service_facts)
    patch(detail_ops, "container_stats", container_stats)
    patch(config_ops, "set_service_config", set_service_config)
    patch(update_ops, "update_image", update_image)
    calls.pool = FakePool()  # type: ignore[attr-defined]
    return calls


async def wait_for(pilot: Any, predicate: Callable[[], object], timeout: float = 10.0,
                   what: str = "condition") -> None:
    """Let the app run until ``predicate()`` is true (workers finished, a screen shown):
    never a blind sleep."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def build_services_app(paths: Any, calls: Calls, **settings: Any) -> Any:
    """The real app on the frozen clock, with the fakes' pool and the demo hosts' health."""
    from havsh_tui.app import make_app
    from havsh_tui.core.settings import Settings

    from .conftest import frozen_clock

    app = make_app(paths, Settings(**settings), clock=frozen_clock,
                   pool=calls.pool)  # type: ignore[attr-defined]
    seed_health(app)
    return app


def seed_failed_steps(inventory: Any) -> None:
    """Give the demo's Failed erp-test the steps a failed creation records: done up to
    'start', which failed (the demo inventory itself has no steps)."""
    from datetime import timedelta

    names = ["connect", "bootstrap", "check names", "image", "database", "volume", "init",
             "admin password", "container", "start"]
    at = FROZEN_NOW - timedelta(days=2)
    steps = []
    for i, name in enumerate(names):
        start, end = at + timedelta(seconds=4 * i), at + timedelta(seconds=4 * i + 3)
        failed = name == "start"
        steps.append(Step(name, "failed" if failed else "done", start, end,
                          "odoo exited with code 255" if failed else ""))
    steps.append(Step("cleanup", "done", at + timedelta(seconds=40),
                      at + timedelta(seconds=41), "container, database, role, volume"))
    inventory.update_service("alpha", "erp-test", steps=steps)


async def steady(pilot: Any) -> None:
    """No blinking cursor: a snapshot taken half a second later must not differ."""
    from textual.widgets import Input, TextArea

    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    for area in pilot.app.screen.query(TextArea):
        area.cursor_blink = False
    await pilot.pause()
