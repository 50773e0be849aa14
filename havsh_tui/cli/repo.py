"""`havsh repo ...`: addons repositories on a service (deployed at pinned commits) and their
previews switch."""

from __future__ import annotations

import click

from havsh_tui.cli import CLIError, Context, emit, json_option
from havsh_tui.cli.github import github_client, github_errors, secret_store
from havsh_tui.cli.reporter import CLIReporter


def _audit(ctx: Context):
    from havsh_tui.core.audit import AuditLog

    return AuditLog(ctx.paths.audit_log)


def _service(ctx: Context, ref: str):
    from havsh_tui.cli.service import resolve_service

    return resolve_service(ctx, ref)


def _repo_name(name: str) -> str:
    from havsh_tui.github.client import validate_repo_name

    try:
        return validate_repo_name(name)
    except ValueError as exc:
        raise CLIError(str(exc), kind="usage", code=2) from None


def connection_json(c) -> dict:
    return {"host": c.host, "service": c.service, "repo": c.repo, "branch": c.branch,
            "subdir": c.subdir, "previews": c.previews, "forks": c.forks,
            "deployed_sha": c.deployed_sha, "deployed_at": c.deployed_at,
            "modules": c.modules, "connected_at": c.connected_at}


def _connection_line(c) -> str:
    eye = "👁 " if c.previews else "  "
    sha = c.deployed_sha[:12] if c.deployed_sha else "not deployed"
    forks = " (forks too)" if c.previews and c.forks else ""
    sub = f" /{c.subdir}" if c.subdir else ""
    return (f"{eye}{c.service:<22} {c.host:<12} {c.repo}{sub} @ {c.branch}: {sha}"
            f"{forks}  {len(c.modules)} modules")


def _deploy_human(result) -> str:
    prev = f" (was {result.previous_sha[:12]})" if result.previous_sha else ""
    return (f"deployed {result.repo}@{result.sha[:12]}{prev}: {len(result.modules)} modules; "
            f"{result.plan.describe()}" + ("; restarted" if result.restarted else ""))


@click.group("repo")
def repo() -> None:
    """Addons repositories on a service, deployed at pinned commits (tracked by version)."""


@repo.command("connect")
@click.argument("service")
@click.argument("repository")
@click.option("--branch", help="The branch to follow (default: the repository's default).")
@click.option("--subdir", default="", help="The folder of the repository holding the addons.")
@click.option("--deploy/--no-deploy", default=True, show_default=True,
              help="Deploy the branch's head now.")
@click.option("-v", "--verbose", is_flag=True, help="Show Odoo's log while it works.")
@json_option
def repo_connect(ctx: Context, service, repository, branch, subdir, deploy, verbose) -> None:
    """Connect REPOSITORY (OWNER/REPO) to SERVICE's addons."""
    from havsh_tui.ops.repos import connect_repo

    s = _service(ctx, service)
    gh = github_client(ctx)
    with github_errors(), gh:
        conn, result = connect_repo(ctx.inventory, secret_store(ctx), ctx.pool, gh, s,
                                    _repo_name(repository), branch=branch, subdir=subdir,
                                    deploy=deploy, reporter=CLIReporter(ctx.json, verbose),
                                    audit=_audit(ctx))
    human = f"connected {conn.repo} (branch {conn.branch}) to {s.name} on {s.host}"
    if result is not None:
        human += "\n" + _deploy_human(result)
    emit(ctx, {"event": "result", "connection": connection_json(conn),
               "deploy": result.to_dict() if result else None}, human)


@repo.command("ls")
@click.argument("service", required=False)
@json_option
def repo_ls(ctx: Context, service) -> None:
    """The connected repositories (of SERVICE, or all); 👁 marks those with previews."""
    from havsh_tui.ops.repos import list_connections

    if service:
        s = _service(ctx, service)
        conns = list_connections(ctx.inventory, host=s.host, service=s.name)
    else:
        conns = list_connections(ctx.inventory)
    emit(ctx, [connection_json(c) for c in conns],
         "\n".join(_connection_line(c) for c in conns)
         or "no repository connected: `havsh repo connect SERVICE OWNER/REPO`")


@repo.command("deploy")
@click.argument("service")
@click.argument("repository")
@click.option("--ref", help="A branch, tag or SHA (default: the connected branch's head).")
@click.option("-v", "--verbose", is_flag=True, help="Show Odoo's log while it works.")
@json_option
def repo_deploy(ctx: Context, service, repository, ref, verbose) -> None:
    """Deploy a commit of a connected repository: changed modules are updated (-u), then
    the service restarts. A failed update puts the previous addons back."""
    from havsh_tui.ops.repos import deploy_repo

    s = _service(ctx, service)
    gh = github_client(ctx)
    with github_errors(), gh:
        result = deploy_repo(ctx.inventory, secret_store(ctx), ctx.pool, gh, s,
                             _repo_name(repository), ref=ref,
                             reporter=CLIReporter(ctx.json, verbose), audit=_audit(ctx))
    emit(ctx, {"event": "result", "deploy": result.to_dict()}, _deploy_human(result))


@repo.command("disconnect")
@click.argument("service")
@click.argument("repository")
@click.option("--remove-addons", is_flag=True,
              help="Also remove its modules from the addons volume (refused while installed).")
@json_option
def repo_disconnect(ctx: Context, service, repository, remove_addons) -> None:
    """Forget a repository; its previews are destroyed first."""
    from havsh_tui.ops.repos import disconnect_repo

    s = _service(ctx, service)
    gh = github_client(ctx, required=False)
    with github_errors():
        try:
            removed = disconnect_repo(ctx.inventory, secret_store(ctx), ctx.pool, s,
                                      _repo_name(repository), remove_addons=remove_addons,
                                      gh=gh, reporter=CLIReporter(ctx.json),
                                      audit=_audit(ctx))
        finally:
            if gh is not None:
                gh.close()
    emit(ctx, {"removed": removed},
         f"disconnected {repository} from {s.name}"
         + (": removed " + ", ".join(removed) if removed else "; its addons stay deployed"))


@repo.command("previews")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.argument("service")
@click.argument("repository")
@click.option("--forks/--no-forks", default=None,
              help="Previews of pull requests from forks too (off by default: a preview runs "
                   "the PR's code next to a copy of the parent's data).")
@json_option
def repo_previews(ctx: Context, state, service, repository, forks) -> None:
    """Turn previews of REPOSITORY's pull requests on or off for SERVICE. Off destroys them."""
    from havsh_tui.ops.repos import set_previews

    s = _service(ctx, service)
    gh = github_client(ctx, required=False)
    with github_errors():
        try:
            conn = set_previews(ctx.inventory, secret_store(ctx), ctx.pool, s,
                                _repo_name(repository), enabled=state == "on", forks=forks,
                                gh=gh, reporter=CLIReporter(ctx.json), audit=_audit(ctx))
        finally:
            if gh is not None:
                gh.close()
    emit(ctx, connection_json(conn), _connection_line(conn))


COMMANDS = [repo]
