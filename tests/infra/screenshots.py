"""Screenshots of every screen, from the real app on a fixed demo inventory.

    python -m tests.infra.screenshots [--out screenshots] [--size 120x40]

Runs havsh headless (``run_test`` + Pilot) in a temporary HAVSH_HOME with the demo
inventory of tests/tui (two hosts at TEST-NET addresses, all five service types, a Failed
service, an Active preview), the network switched off and "now" frozen, so the pictures are
the same on every run. Writes ``<name>.svg`` for each screen, and ``<name>.png`` when an
SVG converter is available: ``rsvg-convert`` (Debian: librsvg2-bin) or the ``cairosvg``
Python package. Without one it says so and writes the SVGs only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "screenshots"

Step = Callable[[Pilot[Any]], Awaitable[None]]


async def _nothing(pilot: Pilot[Any]) -> None:
    await pilot.pause()


async def _filter(pilot: Pilot[Any]) -> None:
    await pilot.press("slash", *"prod")
    await pilot.pause()


async def _help(pilot: Pilot[Any]) -> None:
    await pilot.press("question_mark")
    await pilot.pause()


async def _palette(pilot: Pilot[Any]) -> None:
    from textual.command import CommandList

    await pilot.press("down", "ctrl+p")
    await pilot.pause()
    await pilot.press(*"serv")
    # The palette searches in a worker; wait for its hits rather than sleeping blindly.
    hits = pilot.app.screen.query_one(CommandList)
    for _ in range(300):
        if hits.option_count >= 2:
            break
        await pilot.pause(0.01)
    await pilot.pause()


async def _unreachable(pilot: Pilot[Any]) -> None:
    """bravo stops answering: its services' last statuses are shown unconfirmed."""
    from havsh_tui.ops.hosts import HostHealth
    from havsh_tui.widgets.service_table import row_key_for
    from havsh_tui.workers import HostPolled

    health = HostHealth(host="bravo", reachable=False, error_kind="host_unreachable",
                        error="deploy@192.0.2.20: no answer within 8 s (connection timed out)")
    pilot.app.poller.deliver(HostPolled("bravo", health, None))
    await pilot.pause()
    table = pilot.app.screen.table
    shop = next(s for s in table.visible_services() if s.name == "shop-prod")
    table.move_cursor(row=table.get_row_index(row_key_for(shop)))
    await pilot.pause()


#: (file stem, what to do from a freshly started app). Each starts its own app, so one
#: screen's state never leaks into the next picture.
SCREENS: list[tuple[str, Step]] = [
    ("dashboard", _nothing),
    ("dashboard-filter", _filter),
    ("dashboard-unreachable", _unreachable),
    ("help", _help),
    ("palette", _palette),
]


# -- the hosts section: its app runs on the fake pool of tests/tui/test_hosts.py --------------


async def _hosts(pilot: Pilot[Any]) -> None:
    from tests.tui.test_hosts import open_hosts, seed_history, shown

    screen = await open_hosts(pilot)
    await shown(pilot, screen, "alpha", "bravo")
    seed_history(screen.havsh)
    await shown(pilot, screen, "alpha", "bravo")


async def _steady(pilot: Pilot[Any]) -> None:
    from textual.widgets import Input

    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False  # a picture must not catch a cursor half way
    await pilot.pause()


async def _add_host(pilot: Pilot[Any]) -> None:
    await _hosts(pilot)
    await pilot.press("a")
    await pilot.pause()
    await _steady(pilot)


async def _host_key(pilot: Pilot[Any]) -> None:
    from havsh_tui.dialogs.host_key import HostKeyDialog

    await _hosts(pilot)
    dialog = HostKeyDialog.unknown(
        "[192.0.2.30]:2222",
        "ssh-ed25519",
        "SHA256:CWxvpGlMa1Pw/DPD/EjSvOFbEjn3zYPDxhgedK1c8HU",
        Path("/home/ops/.local/share/havsh/known_hosts"),
    )
    await pilot.app.push_screen(dialog)
    await _steady(pilot)


HOST_SCREENS: list[tuple[str, Step]] = [
    ("hosts", _hosts),
    ("add-host", _add_host),
    ("host-key", _host_key),
]


# -- services: the creation wizard, the copy dialog, the detail screen ----------------------------
# Their apps run on the fake ops and pool of tests/tui/fakes.py, with the Pilot walks of
# their own tests, so a picture shows what a snapshot test checks.

_CALLS: Any = None


def _wizard(step: str) -> Step:
    async def run(pilot: Pilot[Any]) -> None:
        from tests.tui.test_wizard import STEP_KEYS, _walk

        keys, until = STEP_KEYS[step]
        await _walk(*keys, until=until)(pilot)
        await _steady(pilot)

    return run


def _creation(fail: bool) -> Step:
    async def run(pilot: Pilot[Any]) -> None:
        from tests.tui.test_wizard import _created

        if fail:
            _CALLS.fail["create"] = True
        await _created(fail)(pilot)

    return run


async def _push_image(pilot: Pilot[Any]) -> None:
    from tests.tui.test_push_image import _failed_for_the_image, _sources_shown

    await pilot.pause()
    await _failed_for_the_image(pilot, _CALLS)
    await pilot.click("#operation-push")
    await _sources_shown(pilot)
    await _steady(pilot)


def _copy(step: str, **kw: Any) -> Step:
    async def run(pilot: Pilot[Any]) -> None:
        from tests.tui.test_copy_dialog import _to

        await _to(step, **kw)(pilot)
        await _steady(pilot)

    return run


def _detail(name: str, tab: str | None = None, **kw: Any) -> Step:
    async def run(pilot: Pilot[Any]) -> None:
        from tests.tui.fakes import seed_failed_steps
        from tests.tui.test_service_detail import _detail as walk

        if name == "erp-test":
            seed_failed_steps(pilot.app.inventory)
        await walk(name, tab, **kw)(pilot)
        await _steady(pilot)

    return run


async def _delete_live(pilot: Pilot[Any]) -> None:
    from havsh_tui.dialogs.confirm import ConfirmDialog
    from tests.tui.fakes import wait_for
    from tests.tui.test_dashboard_actions import select

    await pilot.pause()
    await select(pilot, "erp-prod")
    await pilot.press("D")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
    await pilot.press(*"erp")
    await _steady(pilot)


SERVICE_SCREENS: list[tuple[str, Step]] = [
    *((f"wizard-{i}-{step}", _wizard(step)) for i, step in enumerate(
        ("type", "name", "host", "odoo", "database", "config", "review"), start=1)),
    ("wizard-8-created", _creation(False)),
    ("wizard-8-failed", _creation(True)),
    ("wizard-9-push-image", _push_image),
    ("copy-1-target", _copy("target")),
    ("copy-2-options-upgrade", _copy("options", image="odoo:18.0")),
    ("copy-3-review", _copy("review")),
    ("copy-3-review-not-enough-disk", _copy("review", host=1)),
    ("copy-4-done", _copy("copy")),
    ("detail-overview", _detail("erp-prod")),
    ("detail-steps-failed", _detail("erp-test", "tab-steps")),
    ("detail-config", _detail("shop-copy", "tab-config")),
    ("detail-update-image", _detail("erp-prod", update=True)),
    ("dashboard-delete-live", _delete_live),
]


# -- previews and the detail tabs: on the fakes of tests/tui/test_previews.py and
# test_detail_tabs.py (installed with setattr: the script's process is thrown away) ---------


async def _previews(pilot: Pilot[Any]) -> None:
    from tests.tui.test_previews import open_previews

    await open_previews(pilot)
    await _steady(pilot)


def _detail_tab(tab_id: str, cursor: int = 0) -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        from tests.tui.test_detail_tabs import open_tab

        tab = await open_tab(pilot, tab_id)
        tab.table.move_cursor(row=cursor)
        await _steady(pilot)

    return step


FEATURE_SCREENS: list[tuple[str, Step]] = [
    ("previews", _previews),
    ("detail-backups", _detail_tab("tab-backups")),
    ("detail-repositories", _detail_tab("tab-repos")),
    ("detail-hostnames", _detail_tab("tab-hostnames", cursor=1)),
]


class _Patch:
    """monkeypatch's setattr/setenv/delenv for the fixtures called by hand below."""

    def setattr(self, target: Any, name: str, value: Any) -> None:
        setattr(target, name, value)

    def delenv(self, name: str, raising: bool = True) -> None:
        os.environ.pop(name, None)


async def _shoot(app: Any, step: Step, target: Path, size: tuple[int, int]) -> Path:
    """Start ``app``, do ``step``, save the screen as ``target`` (an .svg)."""
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await step(pilot)
        app.save_screenshot(filename=target.name, path=str(target.parent))
    return target


async def _feature_shots(paths: Any, out: Path, size: tuple[int, int]) -> list[Path]:
    from tests.tui import test_detail_tabs, test_previews
    from tests.tui.fakes import build_services_app

    patch = _Patch()
    calls = test_previews.calls.__wrapped__(patch)  # type: ignore[attr-defined]
    fakes = test_detail_tabs.fakes.__wrapped__(patch)  # type: ignore[attr-defined]
    fakes.calls = calls
    test_detail_tabs.seed_repos(paths)
    test_previews.describe_previews(paths)
    written = []
    for stem, step in FEATURE_SCREENS:
        app = build_services_app(paths, calls)
        written.append(await _shoot(app, step, out / f"{stem}.svg", size))
    return written


def _converter() -> tuple[str, Callable[[Path, Path, int], None]] | None:
    """The first SVG-to-PNG converter found, as (name, convert(svg, png, width))."""
    rsvg = shutil.which("rsvg-convert")
    if rsvg:

        def with_rsvg(svg: Path, png: Path, width: int) -> None:
            # librsvg drops the leading no-break spaces Rich pads cells with unless told
            # to preserve white space, which shifts every plain row one column left.
            data = svg.read_bytes().replace(b"<svg ", b'<svg xml:space="preserve" ', 1)
            subprocess.run(
                [rsvg, "--width", str(width), "--format", "png", "--output", str(png)],
                input=data,
                check=True,
            )

        return "rsvg-convert", with_rsvg
    if importlib.util.find_spec("cairosvg") is not None:

        def with_cairosvg(svg: Path, png: Path, width: int) -> None:
            import cairosvg  # type: ignore[import-not-found]

            cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=width)

        return "cairosvg", with_cairosvg
    return None


def _block_network() -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("screenshots never touch the network")

    socket.create_connection = refuse  # type: ignore[assignment]
    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign, assignment]


async def take(out: Path, size: tuple[int, int]) -> list[Path]:
    # Imported here, after HAVSH_HOME is set, so nothing can read the user's own files.
    from havsh_tui.app import make_app
    from havsh_tui.core.paths import AppPaths
    from havsh_tui.core.settings import Settings
    from havsh_tui.workers import HostPoller
    from tests.tui import fakes
    from tests.tui.conftest import demo_hosts, demo_services, fill_inventory, frozen_clock

    paths = AppPaths.from_env().ensure()
    fill_inventory(paths, demo_hosts(), demo_services())
    written = []
    # No polls in these pictures (the demo hosts don't exist: every service would show as
    # unconfirmed); _unreachable feeds one failed poll by hand. The hosts section below
    # polls its fake pool, so the poller comes back for it.
    start = HostPoller.start
    fakes.no_polling(setattr)
    for stem, step in SCREENS:
        app = make_app(paths, Settings(), clock=frozen_clock)
        written.append(await _shoot(app, step, out / f"{stem}.svg", size))

    global _CALLS
    from havsh_tui.screens import service_detail

    # One docker stats reading per detail screen, so its sparklines hold still.
    service_detail.STATS_SECONDS = 3600.0
    for stem, step in SERVICE_SCREENS:
        fill_inventory_fresh(paths)
        _CALLS = fakes.install(setattr)
        app = fakes.build_services_app(paths, _CALLS)
        written.append(await _shoot(app, step, out / f"{stem}.svg", size))
    fill_inventory_fresh(paths)
    HostPoller.start = start  # type: ignore[method-assign]

    from tests.tui.test_hosts import FakePool, demo_health, fake_opts, use_fake_ops, write_audit

    use_fake_ops(setattr)
    write_audit(paths)
    for stem, step in HOST_SCREENS:
        pool = FakePool(fake_opts(paths), demo_health())
        app = make_app(paths, Settings(poll_interval=5.0), pool=pool, clock=frozen_clock)
        try:
            written.append(await _shoot(app, step, out / f"{stem}.svg", size))
        finally:
            pool.close()
    written += await _feature_shots(paths, out, size)
    return written


def fill_inventory_fresh(paths: Any) -> None:
    """The demo inventory again: a walk may have created, copied or deleted a service."""
    from tests.tui.conftest import demo_hosts, demo_services, fill_inventory

    paths.inventory.unlink(missing_ok=True)
    fill_inventory(paths, demo_hosts(), demo_services())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", default="120x40", help="terminal COLUMNSxROWS")
    parser.add_argument("--png-width", type=int, default=1600)
    args = parser.parse_args(argv)
    columns, rows = (int(n) for n in args.size.lower().split("x"))
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="havsh-screenshots-") as home:
        os.environ["HAVSH_HOME"] = str(Path(home) / "havsh-home")
        os.environ["HOME"] = str(Path(home) / "user-home")
        _block_network()
        svgs = asyncio.run(take(out, (columns, rows)))

    for svg in svgs:
        print(f"wrote {svg.relative_to(REPO) if svg.is_relative_to(REPO) else svg}")
    converter = _converter()
    if converter is None:
        print(
            "no SVG converter found: install rsvg-convert (apt-get install librsvg2-bin) or"
            " cairosvg (pip install cairosvg) for PNGs; wrote SVGs only",
            file=sys.stderr,
        )
        return 0
    name, convert = converter
    for svg in svgs:
        png = svg.with_suffix(".png")
        convert(svg, png, args.png_width)
        print(f"wrote {png.relative_to(REPO) if png.is_relative_to(REPO) else png} ({name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
