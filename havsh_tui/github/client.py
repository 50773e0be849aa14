"""The GitHub connection: where the token and API root come from, and a thin PyGithub client.

Token: ``$GITHUB_TOKEN`` when set, else the one ``havsh github login`` stored in the secrets
file. API root: an explicit ``api_url``, else ``$GITHUB_API_URL``, else the one stored with the
login, else https://api.github.com. (GitHub Enterprise Server: ``https://HOST/api/v3``.)

Every call goes through :func:`_translate`, which turns PyGithub's and requests' exceptions
into :class:`GitHubError` with a message for the user. A 403 names the right the token lacks
(from GitHub's ``X-Accepted-GitHub-Permissions`` header when it sends one, else the right the
call needs), so "the token cannot do this" always says what to grant.

Costs: :class:`RepoClient` is lazy (making one sends nothing) and :meth:`RepoClient.open_pulls`
is one request per 100 open pull requests, so a reconcile pass that finds nothing new costs one
request per repository.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import github
import github.Auth
import requests
import urllib3.exceptions
from github.GithubException import GithubException, RateLimitExceededException
from github.GithubRetry import GithubRetry

from havsh_tui.core.secrets import github_token_key, mask

DEFAULT_API_URL = "https://api.github.com"
TOKEN_ENV = "GITHUB_TOKEN"
API_URL_ENV = "GITHUB_API_URL"
#: Inventory value holding the stored login (never the token): api_url, login, logged_in_at.
LOGIN_KEY = "github.login"
CONNECTION = "default"
TARBALL_CHUNK = 64 * 1024
# PyGithub adds its own stderr handler when imported, and logs every failed request at
# WARNING: in the TUI that would scribble over the screen, and our GitHubError says it better.
# Its records still go wherever the application's logging sends them.
_gh_logger = logging.getLogger("github")
for _h in list(_gh_logger.handlers):
    if type(_h) is logging.StreamHandler:
        _gh_logger.removeHandler(_h)
_gh_logger.addHandler(logging.NullHandler())

_REPO_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")

#: GitHub's fine-grained permission names, as its settings page shows them.
_RIGHT_NAMES = {
    "contents": "Contents", "pull_requests": "Pull requests", "deployments": "Deployments",
    "issues": "Issues", "metadata": "Metadata", "statuses": "Commit statuses",
}
RIGHT_CONTENTS = "Contents: read"
RIGHT_PULLS = "Pull requests: read"
RIGHT_DEPLOYMENTS = "Deployments: write"
RIGHT_COMMENTS = "Pull requests: write (or Issues: write)"
RIGHT_METADATA = "Metadata: read"


class GitHubError(Exception):
    """A GitHub call failed; the message is meant for the user (never holds the token)."""

    kind = "github"

    def __init__(self, message: str, *, status: int | None = None,
                 right: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.right = right
        self.extra: dict[str, Any] = {"status": status}
        if right:
            self.extra["missing_right"] = right


class MissingRight(GitHubError):
    """The token works but lacks a right; :attr:`right` names it."""

    kind = "github_missing_right"


class NotLoggedIn(GitHubError):
    kind = "github_not_logged_in"


class NotFound(GitHubError):
    kind = "github_not_found"


class RateLimited(GitHubError):
    kind = "github_rate_limited"


def validate_repo_name(name: str) -> str:
    """``owner/repo`` or a clear ValueError."""
    if not isinstance(name, str) or not _REPO_RE.fullmatch(name) or ".." in name:
        raise ValueError(f"{name!r} is not a repository name of the form OWNER/REPO")
    return name


def normalize_api_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GitHubError(f"the GitHub API URL {url!r} must be http(s)://HOST[/PATH]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise GitHubError(f"the GitHub API URL {url!r} must not carry credentials or a query")
    return url


def humanize_permissions(header: str) -> str:
    """``pull_requests=read; contents=read,metadata=read`` → readable alternatives."""
    alternatives = []
    for group in header.split(";"):
        needed = []
        for item in group.split(","):
            name, _, level = item.strip().partition("=")
            if name:
                needed.append(f"{_RIGHT_NAMES.get(name, name.replace('_', ' ').capitalize())}"
                              f": {level or 'read'}")
        if needed:
            alternatives.append(" and ".join(needed))
    return " or ".join(alternatives)


@dataclass(repr=False)
class GitHubConnection:
    """Where to reach GitHub and with which token (kept out of every repr and log)."""

    api_url: str
    token: str
    #: Where the token came from: "GITHUB_TOKEN" or "secrets".
    token_source: str
    #: The login stored by `havsh github login` (None when the token comes from the env).
    login: str | None = None

    def __repr__(self) -> str:
        return (f"GitHubConnection(api_url={self.api_url!r}, token={mask(self.token)!r}, "
                f"token_source={self.token_source!r})")

    def to_dict(self) -> dict[str, Any]:
        return {"api_url": self.api_url, "token": mask(self.token),
                "token_source": self.token_source, "login": self.login}


def stored_login(inventory) -> dict[str, Any] | None:
    value = inventory.get_value(LOGIN_KEY)
    return value if isinstance(value, dict) else None


def resolve_connection(inventory, secret_store, *, api_url: str | None = None,
                       environ: Mapping[str, str] | None = None) -> GitHubConnection:
    """The connection to use now; :class:`NotLoggedIn` says how to get one."""
    env = os.environ if environ is None else environ
    stored = stored_login(inventory) or {}
    url = api_url or env.get(API_URL_ENV, "").strip() or stored.get("api_url") or DEFAULT_API_URL
    url = normalize_api_url(url)
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        return GitHubConnection(url, token, TOKEN_ENV, None)
    token = secret_store.get(github_token_key(CONNECTION)) or ""
    if not token:
        raise NotLoggedIn(
            "no GitHub token: set GITHUB_TOKEN, or run `havsh github login` "
            "(it stores the token in the secrets file)")
    return GitHubConnection(url, token, "secrets", stored.get("login"))


def store_login(inventory, secret_store, token: str, api_url: str, login: str) -> None:
    """Keep the token in secrets and the API root and owner in the inventory."""
    secret_store.set(github_token_key(CONNECTION), token)
    inventory.set_value(LOGIN_KEY, {
        "api_url": normalize_api_url(api_url), "login": login,
        "logged_in_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    })


def forget_login(inventory, secret_store) -> bool:
    had = secret_store.get(github_token_key(CONNECTION)) is not None
    secret_store.delete(github_token_key(CONNECTION))
    inventory.delete_value(LOGIN_KEY)
    return had


# -- errors ------------------------------------------------------------------------------------


def _message_of(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        msg = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            details = []
            for e in errors[:3]:
                if isinstance(e, dict):
                    details.append(str(e.get("message") or e.get("code") or e))
                else:
                    details.append(str(e))
            msg += " (" + "; ".join(details) + ")"
        return msg or str(exc.status)
    return str(data or exc.status)


@contextmanager
def _translate(api_url: str, what: str, *, right: str | None = None,
               not_found: str | None = None) -> Iterator[None]:
    """Turn every failure of a GitHub call into a :class:`GitHubError` about ``what``."""
    try:
        yield
    except RateLimitExceededException as exc:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        reset = headers.get("x-ratelimit-reset")
        when = ""
        if reset and reset.isdigit():
            when = " (it resets at " + datetime.fromtimestamp(int(reset), UTC).strftime(
                "%H:%M UTC") + ")"
        raise RateLimited(f"GitHub's rate limit is exhausted{when}; {what} was not done",
                          status=exc.status) from None
    except GithubException as exc:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        message = _message_of(exc)
        if exc.status == 401:
            raise GitHubError(
                f"GitHub at {api_url} refused the token ({message}) while trying to {what}: "
                "log in again with `havsh github login`, or fix GITHUB_TOKEN",
                status=401) from None
        if exc.status == 403:
            accepted = headers.get("x-accepted-github-permissions")
            scopes = headers.get("x-accepted-oauth-scopes")
            needed = (humanize_permissions(accepted) if accepted
                      else f"scope {scopes}" if scopes else right)
            if needed:
                raise MissingRight(
                    f"the GitHub token may not {what}: it needs the right {needed} "
                    f"(GitHub said: {message})", status=403, right=needed) from None
            raise GitHubError(f"GitHub refused to {what}: {message}", status=403) from None
        if exc.status == 404:
            raise NotFound(not_found or f"GitHub found nothing to {what} ({message})",
                           status=404, right=right) from None
        if exc.status == 422:
            raise GitHubError(f"GitHub rejected the request to {what}: {message}",
                              status=422) from None
        raise GitHubError(f"GitHub answered {exc.status} when asked to {what}: {message}",
                          status=exc.status) from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 404:
            raise NotFound(not_found or f"GitHub found nothing to {what}", status=404,
                           right=right) from None
        if status == 403 and right:
            raise MissingRight(f"the GitHub token may not {what}: it needs the right {right}",
                               status=403, right=right) from None
        raise GitHubError(f"GitHub answered {status} when asked to {what}",
                          status=status) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise GitHubError(f"cannot reach GitHub at {api_url} to {what}: "
                          f"{type(exc).__name__}: {exc}") from None


# -- plain results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    login: str
    name: str | None
    type: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RepoInfo:
    full_name: str
    default_branch: str
    private: bool
    html_url: str
    #: What the token's user may do: admin, maintain, push, triage, pull (when GitHub says).
    permissions: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PullInfo:
    """One pull request as the reconciler needs it. Its key is (repo, number)."""

    repo: str
    number: int
    title: str
    state: str
    merged: bool
    head_sha: str
    head_ref: str
    #: The head's repository; None when a fork was deleted (GitHub gives null).
    head_repo: str | None
    base_ref: str
    base_sha: str
    user: str
    html_url: str
    draft: bool = False

    @property
    def key(self) -> str:
        """``owner/repo#n``, the value of the sh.hav.pr label."""
        return f"{self.repo}#{self.number}"

    @property
    def is_fork(self) -> bool:
        return self.head_repo is None or self.head_repo.lower() != self.repo.lower()

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "key": self.key, "is_fork": self.is_fork}


@dataclass(frozen=True)
class DeploymentInfo:
    id: int
    sha: str
    environment: str
    payload: Any
    created_at: datetime | None


def _pull_info(repo: str, pr) -> PullInfo:
    """From a PyGithub PullRequest, touching only attributes the list answer carries (any
    other would make PyGithub fetch the pull request, one request each)."""
    head_repo = pr.head.repo
    return PullInfo(
        repo=repo, number=pr.number, title=pr.title or "", state=pr.state,
        merged=pr.merged_at is not None, head_sha=pr.head.sha, head_ref=pr.head.ref,
        head_repo=head_repo.full_name if head_repo is not None else None,
        base_ref=pr.base.ref, base_sha=pr.base.sha,
        user=pr.user.login if pr.user is not None else "", html_url=pr.html_url or "",
        draft=bool(pr.draft),
    )


# -- the client --------------------------------------------------------------------------------


class GitHubClient:
    """A PyGithub ``Github`` bound to one connection; lazy, so objects cost nothing until used."""

    def __init__(self, connection: GitHubConnection, *, timeout: float = 15.0,
                 per_page: int = 100, throttle: bool = True, retries: int = 2) -> None:
        self.connection = connection
        self.api_url = connection.api_url
        self.timeout = float(timeout)
        retry = GithubRetry(total=retries, backoff_factor=0.5, max_rate_limit_wait=0,
                            allowed_methods=frozenset({"GET", "HEAD"})) if retries else None
        kwargs: dict[str, Any] = {}
        if not throttle:
            kwargs.update(seconds_between_requests=None, seconds_between_writes=None)
        self.gh = github.Github(
            auth=github.Auth.Token(connection.token), base_url=connection.api_url,
            timeout=max(1, round(timeout)), per_page=per_page, retry=retry, lazy=True,
            user_agent="havsh-tui", **kwargs)

    def __repr__(self) -> str:
        return f"GitHubClient({self.connection!r})"

    def close(self) -> None:
        try:
            self.gh.close()
        except Exception:  # noqa: BLE001 - closing must not raise
            pass

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _t(self, what: str, **kw):
        return _translate(self.api_url, what, **kw)

    def whoami(self) -> UserInfo:
        """The token's owner (GET /user): the first thing a login checks."""
        with self._t("read the token's user"):
            data = self.gh.requester.requestJsonAndCheck("GET", "/user")[1]
        return UserInfo(login=data["login"], name=data.get("name"), type=data.get("type", ""))

    def visible_repos(self, limit: int = 1000) -> list[str]:
        """Full names of the repositories the token can see (GET /user/repos, paginated)."""
        out: list[str] = []
        with self._t("list the repositories the token can see", right=RIGHT_METADATA):
            for repo in self.gh.get_user().get_repos():
                out.append(repo.full_name)
                if len(out) >= limit:
                    break
        return out

    def rate_limit(self) -> tuple[int, int] | None:
        """(remaining, limit) from the last answer's headers, without a request."""
        remaining, limit = self.gh.requester.rate_limiting
        return None if limit < 0 else (remaining, limit)

    def repo(self, full_name: str) -> RepoClient:
        return RepoClient(self, validate_repo_name(full_name))


class RepoClient:
    """One repository. Making one sends no request."""

    def __init__(self, client: GitHubClient, full_name: str) -> None:
        self.client = client
        self.full_name = full_name
        self._repo = client.gh.get_repo(full_name)
        self.url = f"/repos/{full_name}"

    def __repr__(self) -> str:
        return f"RepoClient({self.full_name!r})"

    def _t(self, what: str, **kw):
        kw.setdefault("not_found", f"repository {self.full_name} is not on GitHub at "
                                   f"{self.client.api_url}, or the token cannot see it "
                                   f"(it needs {RIGHT_METADATA} and {RIGHT_CONTENTS} on it)")
        return self.client._t(what, **kw)

    def _get(self, path: str, what: str, **kw) -> tuple[dict, Any]:
        with self._t(what, **kw):
            return self.client.gh.requester.requestJsonAndCheck("GET", self.url + path)

    def info(self) -> RepoInfo:
        headers, data = self._get("", f"read repository {self.full_name}", right=RIGHT_METADATA)
        return RepoInfo(
            full_name=data["full_name"], default_branch=data.get("default_branch") or "main",
            private=bool(data.get("private")), html_url=data.get("html_url", ""),
            permissions={k: bool(v) for k, v in (data.get("permissions") or {}).items()},
        )

    def open_pulls(self) -> list[PullInfo]:
        """Every open pull request (one request per 100), oldest first."""
        with self._t(f"list the pull requests of {self.full_name}", right=RIGHT_PULLS):
            pulls = self._repo.get_pulls(state="open", sort="created", direction="asc")
            return [_pull_info(self.full_name, pr) for pr in pulls]

    def pull(self, number: int) -> PullInfo:
        _, data = self._get(f"/pulls/{int(number)}", f"read pull request #{number}",
                            right=RIGHT_PULLS,
                            not_found=f"{self.full_name} has no pull request #{number} "
                                      "(or the token cannot see the repository)")
        head_repo = (data.get("head") or {}).get("repo")
        return PullInfo(
            repo=self.full_name, number=data["number"], title=data.get("title") or "",
            state=data["state"], merged=bool(data.get("merged") or data.get("merged_at")),
            head_sha=data["head"]["sha"], head_ref=data["head"]["ref"],
            head_repo=head_repo["full_name"] if head_repo else None,
            base_ref=data["base"]["ref"], base_sha=data["base"]["sha"],
            user=(data.get("user") or {}).get("login", ""), html_url=data.get("html_url", ""),
            draft=bool(data.get("draft")),
        )

    def commit_sha(self, ref: str) -> str:
        """The commit a branch, tag or SHA names (GET /commits/{ref})."""
        _, data = self._get(f"/commits/{urllib.parse.quote(ref, safe='')}",
                            f"resolve {ref!r} in {self.full_name}", right=RIGHT_CONTENTS,
                            not_found=f"{self.full_name} has no branch, tag or commit {ref!r}")
        return data["sha"]

    def changed_files(self, base: str, head: str) -> list[str] | None:
        """Paths changed from the merge base of ``base`` and ``head`` to ``head`` (both names
        of a renamed file). None when GitHub cannot compare them (a force-push dropped
        ``base``) or the answer is cut at 300 files: the caller must assume everything."""
        try:
            with self._t(f"compare {base[:12]}...{head[:12]} in {self.full_name}",
                         right=RIGHT_CONTENTS):
                cmp = self._repo.compare(base, head)
                files = cmp.files
        except NotFound:
            return None
        if len(files) >= 300:
            return None
        out: list[str] = []
        for f in files:
            out.append(f.filename)
            if f.previous_filename:
                out.append(f.previous_filename)
        return out

    @contextmanager
    def tarball(self, sha: str) -> Iterator[Iterator[bytes]]:
        """The tarball of ``sha`` as a stream of chunks, never whole in memory.

        GitHub answers ``GET /tarball/{ref}`` with a redirect to codeload (or, on Enterprise
        Server, to ``/_codeload`` on its own host) whose URL carries its own short-lived
        token. The redirect is followed here, without our token: it never goes to a host
        other than the API's.
        """
        what = f"download the tarball of {sha[:12]} from {self.full_name}"
        not_found = (f"{self.full_name} has no commit {sha} (or the token cannot read its "
                     f"contents: it needs {RIGHT_CONTENTS})")
        with self._t(what, right=RIGHT_CONTENTS, not_found=not_found):
            location = self._repo.get_archive_link("tarball", sha)
        session = requests.Session()
        timeout = (self.client.timeout, max(self.client.timeout, 60.0))
        try:
            with self._t(what, right=RIGHT_CONTENTS, not_found=not_found):
                response = session.get(location, stream=True, timeout=timeout,
                                       headers={"User-Agent": "havsh-tui"},
                                       allow_redirects=True)
                response.raise_for_status()

            def chunks() -> Iterator[bytes]:
                with self._t(what, right=RIGHT_CONTENTS):
                    for chunk in response.iter_content(TARBALL_CHUNK):
                        if chunk:
                            yield chunk

            stream = chunks()
            try:
                yield stream
            finally:
                stream.close()
                response.close()
        finally:
            session.close()

    # -- deployments ---------------------------------------------------------------------
    def create_deployment(self, sha: str, environment: str, *, description: str,
                          payload: dict[str, Any]) -> int:
        """A transient, non-production deployment of ``sha``; returns its id."""
        with self._t(f"create a deployment in {self.full_name}", right=RIGHT_DEPLOYMENTS):
            dep = self._repo.create_deployment(
                ref=sha, task="deploy:preview", auto_merge=False, required_contexts=[],
                payload=payload, environment=environment, description=description[:140],
                transient_environment=True, production_environment=False)
            return int(dep.id)

    def deployment_status(self, deployment_id: int, state: str, *, description: str = "",
                          environment_url: str | None = None, log_url: str | None = None,
                          auto_inactive: bool = False) -> None:
        kwargs: dict[str, Any] = {"description": description[:140],
                                  "auto_inactive": auto_inactive}
        if environment_url:
            kwargs["environment_url"] = environment_url
        if log_url:
            kwargs["target_url"] = log_url
        with self._t(f"set deployment {deployment_id} of {self.full_name} to {state}",
                     right=RIGHT_DEPLOYMENTS):
            self._repo.get_deployment(int(deployment_id)).create_status(state, **kwargs)

    def deployments(self, environment: str) -> list[DeploymentInfo]:
        """The deployments of ``environment``, newest first."""
        out = []
        with self._t(f"list the deployments of {environment} in {self.full_name}",
                     right="Deployments: read"):
            for d in self._repo.get_deployments(environment=environment):
                out.append(DeploymentInfo(int(d.id), d.sha, d.environment, d.payload,
                                          d.created_at))
        return out

    def comment(self, number: int, body: str) -> None:
        with self._t(f"comment on pull request #{number} of {self.full_name}",
                     right=RIGHT_COMMENTS):
            self._repo.get_issue(int(number)).create_comment(body)


def connect(connection: GitHubConnection, **kwargs: Any) -> GitHubClient:
    """A client for ``connection`` (see :class:`GitHubClient` for the options)."""
    return GitHubClient(connection, **kwargs)
