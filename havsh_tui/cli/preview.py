"""`havsh preview ...`: previews of pull requests: one reconcile pass, the long-running loop,
the list, and create/destroy by hand."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime

import click

from havsh_tui.cli import CLIError, Context, dumps, emit, json_option
from havsh_tui.cli.github import github_client, github_errors, secret_store
from havsh_tui.cli.reporter import CLIReporter


def _age(dt: datetime) -> str:
    secs = int((datetime.now(UTC) - dt).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{secs // n}{unit}"
    return f"{max(secs, 0)}s"


def preview_json(s) -> dict:
    from havsh_tui.cli.service import service_json
    from havsh_tui.ops.preview import parse_pr

    parsed = parse_pr(s.pr)
    return {**service_json(s), "repo": parsed[0] if parsed else None,
            "pr_number": parsed[1] if parsed else None, "pr_title": s.pr_title,
            "pr_branch": s.pr_branch, "head_sha": s.head_sha, "parent": s.source,
            "parent_host": s.source_host,
            "age_seconds": int((datetime.now(UTC) - s.created_at).total_seconds()),
            "steps": [{"name": st.name, "state": st.state, "detail": st.detail}
                      for st in s.steps]}


def _reconciler(ctx: Context, reporter):
    from havsh_tui.core.audit import AuditLog
    from havsh_tui.ops.preview import Reconciler
    from havsh_tui.ops.repos import list_connections

    needs = any(c.previews for c in list_connections(ctx.inventory))
    gh = github_client(ctx, required=needs)
    return Reconciler(ctx.inventory, secret_store(ctx), ctx.pool, gh, settings=ctx.settings,
                      lock_dir=ctx.paths.data_dir / "locks", reporter=reporter,
                      audit=AuditLog(ctx.paths.audit_log))


def _summary(result) -> str:
    lines = [a.line() for a in result.actions]
    lines += [f"error: {e}" for e in result.errors]
    head = (f"{result.repos} repositories, {result.pulls} open pull requests, "
            f"{result.seconds:.1f} s")
    return "\n".join([head, *lines])


def _preview(ctx: Context, ref: str):
    from havsh_tui.cli.service import resolve_service
    from havsh_tui.core.model import ServiceType

    s = resolve_service(ctx, ref)
    if s.type is not ServiceType.PREVIEW:
        raise CLIError(f"{s.name} is a {s.type.label} service, not a preview", kind="usage")
    return s


@click.group("preview")
def preview() -> None:
    """Previews: a neutralized copy of the parent service per open pull request."""


@preview.command("reconcile")
@click.option("-v", "--verbose", is_flag=True, help="Show Odoo's log while it works.")
@json_option
def preview_reconcile(ctx: Context, verbose) -> None:
    """One pass: create, update and destroy previews to match the open pull requests."""
    rec = _reconciler(ctx, CLIReporter(ctx.json, verbose))
    try:
        with github_errors():
            result = rec.reconcile()
    finally:
        if rec.github is not None:
            rec.github.close()
    if ctx.json:
        click.echo(dumps({"event": "result", **result.to_dict()}))
    else:
        click.echo(_summary(result))
    if result.errors or result.count("failed"):
        sys.exit(1)


@preview.command("watch")
@click.option("--interval", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds between two passes.")
@click.option("--passes", type=click.IntRange(min=1), hidden=True,
              help="Stop after this many passes (tests).")
@click.option("-v", "--verbose", is_flag=True, help="Show Odoo's log while it works.")
@json_option
def preview_watch(ctx: Context, interval, passes, verbose) -> None:
    """Pass after pass until stopped (SIGTERM or Ctrl-C end it cleanly): fit for systemd."""
    rec = _reconciler(ctx, CLIReporter(ctx.json, verbose))
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        # Not stop.set() here: the handler runs in the main thread, which may be inside
        # stop.wait() holding the event's lock at that moment (set() would then wait for
        # it for ever). A thread sets it as soon as the wait lets go of the lock.
        threading.Thread(target=stop.set, name="havsh-stop", daemon=True).start()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)} \
        if threading.current_thread() is threading.main_thread() else {}

    def on_pass(result) -> None:
        if ctx.json:
            click.echo(dumps({"event": "pass", **result.to_dict()}))
        elif result.changed or result.errors:
            click.echo(f"[{result.started_at:%H:%M:%S}] " + _summary(result))
        sys.stdout.flush()

    try:
        n = rec.watch(interval, stop, on_pass, max_passes=passes)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if rec.github is not None:
            rec.github.close()
    if not ctx.json:
        click.echo(f"stopped after {n} passes", err=True)


@preview.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Destroyed previews too (history).")
@json_option
def preview_ls(ctx: Context, show_all) -> None:
    """Every preview: PR, title, branch, head SHA, status, URL, parent, age."""
    from havsh_tui.ops.preview import list_previews

    items = list_previews(ctx.inventory, include_destroyed=show_all)
    items.sort(key=lambda s: (s.pr or "", s.host))
    if ctx.json:
        emit(ctx, [preview_json(s) for s in items])
        return
    if not items:
        click.echo("no previews (`havsh repo previews on SERVICE OWNER/REPO`, then "
                   "`havsh preview reconcile`)")
        return
    for s in items:
        sha = (s.head_sha or "")[:8]
        title = (s.pr_title or "")[:40]
        click.echo(f"{s.pr or '?':<26} {title:<40} {s.pr_branch or '':<20} {sha:<8} "
                   f"{s.status_label:<10} {s.name}@{s.host} from {s.source}  "
                   f"{_age(s.created_at):>4}  {s.url or ''}")


@preview.command("show")
@click.argument("name")
@json_option
def preview_show(ctx: Context, name) -> None:
    """One preview with its steps and its operations log."""
    s = _preview(ctx, name)
    data = preview_json(s)
    data["operations"] = ctx.inventory.list_operations(service=s.name, host=s.host, limit=20)
    if ctx.json:
        emit(ctx, data)
        return
    for k in ("name", "host", "pr", "pr_title", "pr_branch", "head_sha", "status_label",
              "url", "parent", "failed_step"):
        if data.get(k):
            click.echo(f"{k:<13} {data[k]}")
    if s.last_error:
        click.echo("last error:\n  " + s.last_error.replace("\n", "\n  "))
    for st in s.steps:
        click.echo(f"  {st.state:<8} {st.name}  {st.detail}")
    for op in data["operations"]:
        click.echo(f"  op {op.get('kind')}: {op.get('state')} {op.get('sha', '')[:12]} "
                   f"{op.get('reason') or op.get('error') or ''}"[:200])


@preview.command("create")
@click.argument("service")
@click.argument("repository")
@click.argument("number", type=click.IntRange(min=1))
@click.option("-v", "--verbose", is_flag=True, help="Show Odoo's log while it works.")
@json_option
def preview_create(ctx: Context, service, repository, number, verbose) -> None:
    """Create the preview of pull request NUMBER of REPOSITORY, from SERVICE, now (the
    branch and head come from GitHub; the rules are a pass's)."""
    from havsh_tui.cli.service import resolve_service

    parent = resolve_service(ctx, service)
    rec = _reconciler(ctx, CLIReporter(ctx.json, verbose))
    if rec.github is None:
        raise CLIError("no GitHub login: `havsh github login` or GITHUB_TOKEN")
    try:
        with github_errors():
            result = rec.create_one(parent, repository, number)
    finally:
        rec.github.close()
    failed = [a for a in result.actions if a.action in ("failed", "busy")]
    done = [a for a in result.actions if a.action in ("created", "updated", "kept")]
    if failed:
        a = failed[0]
        raise CLIError(f"the preview of {a.pr} {a.action}: {a.detail}", kind="preview_failed",
                       preview=a.preview)
    emit(ctx, {"event": "result", **result.to_dict()},
         "\n".join(a.line() for a in done) or _summary(result))


@preview.command("destroy")
@click.argument("name")
@json_option
def preview_destroy(ctx: Context, name) -> None:
    """Destroy a preview now. Passes leave it destroyed until its PR gets a new push (or
    `havsh preview create`)."""
    s = _preview(ctx, name)
    rec = _reconciler(ctx, CLIReporter(ctx.json))
    try:
        with github_errors():
            result = rec.destroy_one(s)
    finally:
        if rec.github is not None:
            rec.github.close()
    if not any(a.action == "destroyed" for a in result.actions):
        raise CLIError("; ".join(a.line() for a in result.actions) or "not destroyed",
                       kind="preview_failed")
    emit(ctx, {"event": "result", **result.to_dict()}, f"destroyed {s.name} ({s.pr})")


COMMANDS = [preview]
