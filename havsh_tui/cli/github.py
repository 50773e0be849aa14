"""`havsh github ...`: the GitHub login that repositories and previews use."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import click

from havsh_tui.cli import CLIError, Context, emit, json_option


@contextmanager
def github_errors():
    """GitHub's failures as clean CLI errors (their message names the missing right)."""
    from havsh_tui.github.client import GitHubError

    try:
        yield
    except GitHubError as exc:
        raise CLIError(str(exc), kind=exc.kind, **{k: v for k, v in exc.extra.items()
                                                   if v is not None}) from None


def secret_store(ctx: Context):
    from havsh_tui.core.secrets import SecretStore

    return SecretStore(ctx.paths.secrets, lock_path=ctx.paths.secrets_lock)


def github_client(ctx: Context, *, required: bool = True):
    """The client for the current login (GITHUB_TOKEN, else the stored one); None when there
    is none and ``required`` is False."""
    from havsh_tui.github.client import NotLoggedIn, connect, resolve_connection

    with github_errors():
        try:
            conn = resolve_connection(ctx.inventory, secret_store(ctx))
        except NotLoggedIn:
            if required:
                raise
            return None
        return connect(conn, timeout=15.0)


def _read_token(prompt: bool) -> str:
    if prompt:
        return click.prompt("GitHub token", hide_input=True).strip()
    return click.get_text_stream("stdin").readline().strip()


@click.group("github")
def github() -> None:
    """The GitHub login: a token from GITHUB_TOKEN, or stored by `havsh github login`."""


@github.command("login")
@click.option("--api-url", help="The API root (GitHub Enterprise Server: https://HOST/api/v3). "
                                 "Default: $GITHUB_API_URL, else https://api.github.com.")
@json_option
def github_login(ctx: Context, api_url: str | None) -> None:
    """Check a token and store it in the secrets file (with the API root).

    The token is read from a masked prompt, or from stdin when stdin is not a terminal
    (`printf %s "$TOKEN" | havsh github login`). It needs, on the repositories you connect:
    Contents read, Pull requests read, Deployments write (and Pull requests write, for the
    comment said when a service has too many previews).
    """
    from havsh_tui.github.client import (
        API_URL_ENV,
        DEFAULT_API_URL,
        GitHubConnection,
        connect,
        normalize_api_url,
        store_login,
    )

    token = _read_token(sys.stdin.isatty() and not ctx.json)
    if not token:
        raise CLIError("no token given (type it at the prompt, or pipe it on stdin)",
                       kind="usage", code=2)
    with github_errors():
        url = normalize_api_url(api_url or os.environ.get(API_URL_ENV, "").strip()
                                or DEFAULT_API_URL)
        with connect(GitHubConnection(url, token, "login"), throttle=False) as gh:
            user = gh.whoami()
            repos = gh.visible_repos(limit=1000)
        store_login(ctx.inventory, secret_store(ctx), token, url, user.login)
    lines = [f"logged in to {url} as {user.login}" + (f" ({user.name})" if user.name else ""),
             f"the token can see {len(repos)} repositories" + (":" if repos else "")]
    lines += [f"  {r}" for r in repos[:50]]
    if len(repos) > 50:
        lines.append(f"  ... and {len(repos) - 50} more (`havsh github repos`)")
    if os.environ.get("GITHUB_TOKEN"):
        lines.append("note: GITHUB_TOKEN is set, and wins over the stored token")
    emit(ctx, {"api_url": url, "login": user.login, "name": user.name, "repositories": repos},
         "\n".join(lines))


@github.command("status")
@json_option
def github_status(ctx: Context) -> None:
    """Which token is used, whose it is, and the rate limit left."""
    gh = github_client(ctx)
    with github_errors(), gh:
        user = gh.whoami()
        rate = gh.rate_limit()
    data = {**gh.connection.to_dict(), "user": user.login, "name": user.name,
            "rate_limit": {"remaining": rate[0], "limit": rate[1]} if rate else None}
    human = (f"{gh.api_url}: {user.login}, token {data['token']} from "
             f"{gh.connection.token_source}"
             + (f"; rate limit {rate[0]}/{rate[1]} left" if rate else ""))
    emit(ctx, data, human)


@github.command("repos")
@json_option
def github_repos(ctx: Context) -> None:
    """The repositories the token can see."""
    gh = github_client(ctx)
    with github_errors(), gh:
        repos = gh.visible_repos(limit=10000)
    emit(ctx, repos, "\n".join(repos) or "the token sees no repository")


@github.command("logout")
@json_option
def github_logout(ctx: Context) -> None:
    """Forget the stored token (GITHUB_TOKEN, if set, still works)."""
    from havsh_tui.github.client import forget_login

    had = forget_login(ctx.inventory, secret_store(ctx))
    emit(ctx, {"forgotten": had}, "the stored GitHub token was removed" if had
         else "no GitHub token was stored")


COMMANDS = [github]
