"""A local stand-in for GitHub's REST v3 API (tests only), on 127.0.0.1.

PyGithub is pointed at it with ``base_url`` (:attr:`GitHubStandin.api_url`, an Enterprise-style
``/api/v3`` root). It answers with GitHub's response shapes, for the part of the API havsh uses:

* ``GET /user``, ``GET /user/repos`` (paginated);
* ``GET /repos/{o}/{r}``; ``GET .../pulls`` (``state``, ``base``, ``sort``, ``direction``,
  paginated with ``Link`` headers) and ``GET .../pulls/{n}``;
* ``GET .../commits/{ref}``, ``GET .../compare/{base}...{head}`` (merge-base semantics);
* ``GET .../tarball/{ref}``: a 302 to a codeload-like URL on this same server, which serves a
  ``.tar.gz`` made in memory like ``git archive`` makes it (one top folder
  ``{owner}-{repo}-{sha7}/``, a pax global header whose comment is the commit SHA);
* ``POST``/``GET .../deployments``, ``GET .../deployments/{id}``, ``POST``/``GET
  .../deployments/{id}/statuses`` (``auto_inactive`` as GitHub does it);
* ``POST``/``GET .../issues/{n}/comments``.

Tokens carry fine-grained rights (``contents:read``, ``pull_requests:read``,
``deployments:write``, ``issues:write``, ``metadata:read``) and may see only some repositories:
a repository the token cannot see is a 404, a missing right is a 403 with GitHub's
``X-Accepted-GitHub-Permissions`` header, a bad token is a 401.

Tests change the state with Python calls (:meth:`create_repo`, :meth:`open_pr`, :meth:`push`,
:meth:`close_pr`, ...) and read back what havsh did (:meth:`deployments`, :meth:`statuses`,
:meth:`comments`, :attr:`requests`). Every request is recorded, so a test can count them.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import secrets
import tarfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

API_ROOT = "/api/v3"
CODELOAD_ROOT = "/_codeload"
ALL_RIGHTS = frozenset(
    {"metadata:read", "contents:read", "pull_requests:read", "deployments:write",
     "issues:write"}
)
_DOCS = "https://docs.github.com/rest"
_STATUS_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 extra: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


@dataclass
class Token:
    login: str
    rights: frozenset[str]
    #: Repositories the token can see (full names); None: every repository.
    repos: frozenset[str] | None = None
    remaining: int = 5000


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    parents: list[str]
    message: str
    date: str


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    fork_of: str | None = None
    created_at: str = field(default_factory=_now)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Pull:
    number: int
    id: int
    title: str
    user: str
    head_repo: str
    head_ref: str
    base_repo: str
    base_ref: str
    body: str = ""
    state: str = "open"
    merged: bool = False
    draft: bool = False
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    closed_at: str | None = None
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    #: Set when the head repository (a fork) was deleted: GitHub then gives head.repo null.
    head_sha_frozen: str | None = None


@dataclass
class Deployment:
    id: int
    repo: str
    sha: str
    ref: str
    task: str
    payload: Any
    environment: str
    description: str | None
    creator: str
    transient_environment: bool
    production_environment: bool
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    statuses: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    login: str | None
    api: bool
    #: Whether the request carried an Authorization header.
    authorized: bool = False


class GitHubStandin:
    """The server and its state. Use as a context manager, or call start() and stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, Token] = {}
        self.repos: dict[str, Repo] = {}
        self.commits: dict[str, Commit] = {}
        self.pulls: dict[str, dict[int, Pull]] = {}
        self.deployments_by_repo: dict[str, list[Deployment]] = {}
        self.comments_by_issue: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.requests: list[RequestRecord] = []
        self._codeload_tokens: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1000)
        self._commit_seq = itertools.count(1)
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def root(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """What PyGithub's base_url (and GITHUB_API_URL) should be."""
        return self.root + API_ROOT

    def start(self) -> GitHubStandin:
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="github-standin")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> GitHubStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- users and tokens ----------------------------------------------------------------
    def add_user(self, login: str, name: str | None = None) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(login)
            if user is None:
                user = {"login": login, "id": next(self._ids), "name": name or login.title(),
                        "type": "User"}
                self.users[login] = user
            return user

    def add_token(self, login: str, *, rights: frozenset[str] | set[str] = ALL_RIGHTS,
                  repos: set[str] | None = None, token: str | None = None) -> str:
        """A new token for ``login`` with ``rights``, seeing ``repos`` (None: all)."""
        self.add_user(login)
        token = token or "ghp_" + secrets.token_hex(18)
        with self.lock:
            self.tokens[token] = Token(login, frozenset(rights),
                                       frozenset(repos) if repos is not None else None)
        return token

    # -- repositories and commits --------------------------------------------------------
    def _new_commit(self, files: dict[str, bytes], parents: list[str], message: str) -> str:
        seq = next(self._commit_seq)
        h = hashlib.sha1(usedforsecurity=False)
        h.update(f"{seq}\0{message}\0{','.join(parents)}\0".encode())
        for path in sorted(files):
            h.update(path.encode() + b"\0" + hashlib.sha1(files[path],
                                                           usedforsecurity=False).digest())
        sha = h.hexdigest()
        self.commits[sha] = Commit(sha, dict(files), list(parents), message, _now())
        return sha

    @staticmethod
    def _encode_files(files: dict[str, bytes | str | None]) -> dict[str, bytes | None]:
        return {p: (v.encode() if isinstance(v, str) else v) for p, v in files.items()}

    def create_repo(self, full_name: str, files: dict[str, bytes | str], *,
                    default_branch: str = "main", private: bool = True) -> str:
        """A repository with one commit of ``files`` on ``default_branch``; returns its SHA."""
        owner, name = full_name.split("/")
        self.add_user(owner)
        with self.lock:
            repo = Repo(next(self._ids), owner, name, default_branch, private)
            sha = self._new_commit({k: v for k, v in self._encode_files(files).items()
                                    if v is not None}, [], "Initial commit")
            repo.branches[default_branch] = sha
            self.repos[full_name] = repo
            self.pulls[full_name] = {}
            return sha

    def fork(self, full_name: str, new_owner: str) -> str:
        """Fork ``full_name`` to ``new_owner``; returns the fork's full name."""
        self.add_user(new_owner)
        with self.lock:
            src = self.repos[full_name]
            fork = Repo(next(self._ids), new_owner, src.name, src.default_branch, src.private,
                        dict(src.branches), fork_of=full_name)
            self.repos[fork.full_name] = fork
            self.pulls[fork.full_name] = {}
            return fork.full_name

    def delete_repo(self, full_name: str) -> None:
        """Delete a repository (a fork whose PRs stay open: their head.repo becomes null)."""
        with self.lock:
            for pulls in self.pulls.values():
                for pr in pulls.values():
                    if pr.head_repo == full_name and pr.head_sha_frozen is None:
                        pr.head_sha_frozen = self.repos[full_name].branches[pr.head_ref]
            del self.repos[full_name]

    def commit(self, full_name: str, branch: str, changes: dict[str, bytes | str | None],
               message: str = "Change", *, from_ref: str | None = None) -> str:
        """A commit on ``branch`` (created from ``from_ref`` or the default branch when
        missing) applying ``changes`` (None deletes a file); returns its SHA."""
        with self.lock:
            repo = self.repos[full_name]
            if branch in repo.branches:
                parent = repo.branches[branch]
            else:
                parent = self._resolve(repo, from_ref or repo.default_branch)
            files = dict(self.commits[parent].files)
            for path, content in self._encode_files(changes).items():
                if content is None:
                    files.pop(path, None)
                else:
                    files[path] = content
            sha = self._new_commit(files, [parent], message)
            repo.branches[branch] = sha
            self._touch_pulls(full_name, branch)
            return sha

    def _touch_pulls(self, full_name: str, branch: str) -> None:
        for pulls in self.pulls.values():
            for pr in pulls.values():
                if pr.head_repo == full_name and pr.head_ref == branch:
                    pr.updated_at = _now()

    def branch_sha(self, full_name: str, branch: str) -> str:
        with self.lock:
            return self.repos[full_name].branches[branch]

    # -- pull requests -------------------------------------------------------------------
    def open_pr(self, full_name: str, head: str, *, base: str | None = None,
                title: str = "A change", head_repo: str | None = None,
                user: str | None = None, changes: dict[str, bytes | str | None] | None = None,
                body: str = "") -> int:
        """Open a PR from ``head`` (a branch of ``head_repo``, default the repo itself) to
        ``base``. With ``changes``, first commit them on ``head`` (created from ``base``)."""
        with self.lock:
            repo = self.repos[full_name]
            base = base or repo.default_branch
            head_repo = head_repo or full_name
            if changes is not None:
                self.commit(head_repo, head, changes, f"{title}",
                            from_ref=self.repos[full_name].branches[base])
            if head not in self.repos[head_repo].branches:
                raise KeyError(f"{head_repo} has no branch {head}")
            number = self._next_issue_number(full_name)
            owner = user or self.repos[head_repo].owner
            self.add_user(owner)
            self.pulls[full_name][number] = Pull(
                number=number, id=next(self._ids), title=title, user=owner,
                head_repo=head_repo, head_ref=head, base_repo=full_name, base_ref=base,
                body=body)
            return number

    def _next_issue_number(self, full_name: str) -> int:
        used = set(self.pulls[full_name]) | {n for (r, n) in self.comments_by_issue
                                             if r == full_name}
        return max(used, default=0) + 1

    def push(self, full_name: str, number: int, changes: dict[str, bytes | str | None],
             message: str = "Push") -> str:
        """A new commit on the head branch of PR ``number``; returns the new head SHA."""
        with self.lock:
            pr = self.pulls[full_name][number]
            return self.commit(pr.head_repo, pr.head_ref, changes, message)

    def close_pr(self, full_name: str, number: int, *, merged: bool = False) -> None:
        with self.lock:
            pr = self.pulls[full_name][number]
            pr.state = "closed"
            pr.closed_at = pr.updated_at = _now()
            if merged:
                base = self.repos[full_name]
                head_sha = self.head_sha(pr)
                sha = self._new_commit(dict(self.commits[head_sha].files),
                                       [base.branches[pr.base_ref], head_sha],
                                       f"Merge pull request #{number}")
                base.branches[pr.base_ref] = sha
                pr.merged = True
                pr.merged_at = pr.closed_at
                pr.merge_commit_sha = sha

    def reopen_pr(self, full_name: str, number: int) -> None:
        with self.lock:
            pr = self.pulls[full_name][number]
            pr.state, pr.closed_at, pr.updated_at = "open", None, _now()

    def retarget_pr(self, full_name: str, number: int, base: str) -> None:
        with self.lock:
            self.pulls[full_name][number].base_ref = base

    def head_sha(self, pr: Pull) -> str:
        if pr.head_sha_frozen is not None:
            return pr.head_sha_frozen
        return self.repos[pr.head_repo].branches[pr.head_ref]

    def pr_head(self, full_name: str, number: int) -> str:
        with self.lock:
            return self.head_sha(self.pulls[full_name][number])

    # -- what havsh did ------------------------------------------------------------------
    def deployments(self, full_name: str, environment: str | None = None) -> list[Deployment]:
        """Newest first, as the API lists them."""
        with self.lock:
            deps = [d for d in self.deployments_by_repo.get(full_name, [])
                    if environment is None or d.environment == environment]
            return list(reversed(deps))

    def statuses(self, full_name: str, deployment_id: int) -> list[dict[str, Any]]:
        """Oldest first (the API lists them newest first)."""
        with self.lock:
            for d in self.deployments_by_repo.get(full_name, []):
                if d.id == deployment_id:
                    return list(d.statuses)
        raise KeyError(deployment_id)

    def comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.comments_by_issue.get((full_name, number), []))

    def mark(self) -> int:
        """A position in :attr:`requests`, for :meth:`requests_since`."""
        with self.lock:
            return len(self.requests)

    def requests_since(self, mark: int, *, api_only: bool = True) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests[mark:] if r.api or not api_only]

    # -- resolution helpers --------------------------------------------------------------
    def _network_root(self, full_name: str) -> str:
        repo = self.repos.get(full_name)
        while repo is not None and repo.fork_of and repo.fork_of in self.repos:
            repo = self.repos[repo.fork_of]
        return repo.full_name if repo else full_name

    def _in_network(self, repo: Repo, sha: str) -> bool:
        root = self._network_root(repo.full_name)
        for other in self.repos.values():
            if self._network_root(other.full_name) != root:
                continue
            for tip in other.branches.values():
                if sha in self._ancestors(tip):
                    return True
        for pr in self.pulls.get(repo.full_name, {}).values():
            if sha in self._ancestors(self.head_sha(pr)):
                return True
        return False

    def _ancestors(self, sha: str) -> list[str]:
        """``sha`` and its ancestors, nearest first (breadth first)."""
        out, seen, queue = [], set(), [sha]
        while queue:
            s = queue.pop(0)
            if s in seen or s not in self.commits:
                continue
            seen.add(s)
            out.append(s)
            queue.extend(self.commits[s].parents)
        return out

    def _resolve(self, repo: Repo, ref: str) -> str:
        ref = ref.removeprefix("refs/heads/")
        if ref in repo.branches:
            return repo.branches[ref]
        if re.fullmatch(r"[0-9a-f]{7,40}", ref):
            matches = [s for s in self.commits if s.startswith(ref)]
            if len(matches) == 1 and self._in_network(repo, matches[0]):
                return matches[0]
        raise HTTPError(404, "No commit found for SHA: " + ref if re.fullmatch(
            r"[0-9a-f]{7,40}", ref) else "Not Found")

    def tarball_bytes(self, full_name: str, sha: str) -> bytes:
        """The .tar.gz GitHub would serve for ``sha`` (what ``git archive`` makes)."""
        repo = self.repos[full_name]
        commit = self.commits[sha]
        top = f"{repo.owner}-{repo.name}-{sha[:7]}"
        mtime = int(time.time())
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT,
                          pax_headers={"comment": sha}) as tar:
            dirs: set[str] = set()

            def add_dir(path: str) -> None:
                if path in dirs:
                    return
                parent = path.rpartition("/")[0]
                if parent:
                    add_dir(parent)
                dirs.add(path)
                info = tarfile.TarInfo(path + "/")
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o775, mtime
                info.uname = info.gname = "root"
                tar.addfile(info)

            add_dir(top)
            for path in sorted(commit.files):
                data = commit.files[path]
                full = f"{top}/{path}"
                add_dir(full.rpartition("/")[0])
                info = tarfile.TarInfo(full)
                info.size, info.mode, info.mtime = len(data), 0o664, mtime
                info.uname = info.gname = "root"
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    # -- JSON shapes ---------------------------------------------------------------------
    def _user_json(self, login: str) -> dict[str, Any]:
        u = self.users.get(login) or self.add_user(login)
        return {
            "login": login, "id": u["id"], "node_id": f"U_{u['id']}",
            "avatar_url": f"{self.root}/avatars/{login}", "gravatar_id": "",
            "url": f"{self.api_url}/users/{login}", "html_url": f"{self.root}/{login}",
            "type": u["type"], "site_admin": False,
        }

    def _repo_json(self, repo: Repo, token: Token | None = None) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repo.full_name}"
        data = {
            "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name,
            "full_name": repo.full_name, "private": repo.private,
            "owner": self._user_json(repo.owner), "html_url": f"{self.root}/{repo.full_name}",
            "description": None, "fork": repo.fork_of is not None, "url": api,
            "pulls_url": api + "/pulls{/number}", "deployments_url": api + "/deployments",
            "archive_url": api + "/{archive_format}{/ref}",
            "compare_url": api + "/compare/{base}...{head}",
            "default_branch": repo.default_branch, "visibility":
                "private" if repo.private else "public",
            "archived": False, "disabled": False, "created_at": repo.created_at,
            "updated_at": repo.created_at, "pushed_at": repo.created_at,
        }
        if token is not None:
            write = token.login == repo.owner
            data["permissions"] = {"admin": write, "maintain": write, "push": write,
                                   "triage": True, "pull": True}
        if repo.fork_of and repo.fork_of in self.repos:
            data["parent"] = data["source"] = self._repo_json(self.repos[repo.fork_of])
        return data

    def _commit_min(self, repo: Repo, sha: str) -> dict[str, Any]:
        c = self.commits[sha]
        return {
            "sha": sha, "node_id": f"C_{sha[:10]}",
            "url": f"{self.api_url}/repos/{repo.full_name}/commits/{sha}",
            "html_url": f"{self.root}/{repo.full_name}/commit/{sha}",
            "commit": {"message": c.message,
                       "author": {"name": "Dev", "email": "dev@example.invalid", "date": c.date},
                       "committer": {"name": "Dev", "email": "dev@example.invalid",
                                     "date": c.date},
                       "tree": {"sha": hashlib.sha1(sha.encode(),
                                                    usedforsecurity=False).hexdigest(),
                                "url": ""}},
            "parents": [{"sha": p, "url": f"{self.api_url}/repos/{repo.full_name}/commits/{p}"}
                        for p in c.parents],
        }

    def _pull_json(self, pr: Pull, *, full: bool = False) -> dict[str, Any]:
        base_repo = self.repos[pr.base_repo]
        api = f"{self.api_url}/repos/{pr.base_repo}"
        head_repo = self.repos.get(pr.head_repo)
        head_sha = self.head_sha(pr)
        head_owner = pr.head_repo.split("/")[0]
        data = {
            "url": f"{api}/pulls/{pr.number}", "id": pr.id, "node_id": f"PR_{pr.id}",
            "html_url": f"{self.root}/{pr.base_repo}/pull/{pr.number}",
            "issue_url": f"{api}/issues/{pr.number}",
            "comments_url": f"{api}/issues/{pr.number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "commits_url": f"{api}/pulls/{pr.number}/commits",
            "number": pr.number, "state": pr.state, "locked": False, "title": pr.title,
            "user": self._user_json(pr.user), "body": pr.body, "created_at": pr.created_at,
            "updated_at": pr.updated_at, "closed_at": pr.closed_at, "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha, "draft": pr.draft,
            "head": {"label": f"{head_owner}:{pr.head_ref}", "ref": pr.head_ref,
                     "sha": head_sha, "user": self._user_json(head_owner),
                     "repo": self._repo_json(head_repo) if head_repo else None},
            "base": {"label": f"{base_repo.owner}:{pr.base_ref}", "ref": pr.base_ref,
                     "sha": base_repo.branches[pr.base_ref],
                     "user": self._user_json(base_repo.owner),
                     "repo": self._repo_json(base_repo)},
            "author_association": "OWNER" if pr.user == base_repo.owner else "CONTRIBUTOR",
        }
        if full:
            data.update({"merged": pr.merged, "mergeable": True, "mergeable_state": "clean",
                         "comments": len(self.comments_by_issue.get((pr.base_repo, pr.number),
                                                                    [])),
                         "commits": 1, "additions": 1, "deletions": 0, "changed_files": 1})
        return data

    def _deployment_json(self, d: Deployment) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{d.repo}"
        return {
            "url": f"{api}/deployments/{d.id}", "id": d.id, "node_id": f"DE_{d.id}",
            "sha": d.sha, "ref": d.ref, "task": d.task, "payload": d.payload,
            "original_environment": d.environment, "environment": d.environment,
            "description": d.description, "creator": self._user_json(d.creator),
            "created_at": d.created_at, "updated_at": d.updated_at,
            "statuses_url": f"{api}/deployments/{d.id}/statuses", "repository_url": api,
            "transient_environment": d.transient_environment,
            "production_environment": d.production_environment,
        }

    # -- request handling ----------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(raw_path)
        path, query = unquote(split.path), parse_qs(split.query)
        login = None
        status = 500
        try:
            if path.startswith(CODELOAD_ROOT + "/"):
                status, out_headers, payload = self._codeload(path, query)
                return status, out_headers, payload
            if not path.startswith(API_ROOT + "/") and path != API_ROOT:
                raise HTTPError(404, "Not Found")
            token = self._auth(headers)
            login = token.login
            with self.lock:
                if token.remaining <= 0:
                    raise HTTPError(403, f"API rate limit exceeded for user ID "
                                         f"{self.users[token.login]['id']}.", {
                                             "X-RateLimit-Limit": "5000",
                                             "X-RateLimit-Remaining": "0",
                                             "X-RateLimit-Reset": str(int(time.time()) + 600),
                                             "X-RateLimit-Resource": "core"})
                token.remaining -= 1
                rate = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining":
                        str(token.remaining), "X-RateLimit-Used": str(5000 - token.remaining),
                        "X-RateLimit-Reset": str(int(time.time()) + 3600),
                        "X-RateLimit-Resource": "core"}
            data = json.loads(body) if body.strip() else None
            status, out_headers, payload = self._route(method, path[len(API_ROOT):], query,
                                                       token, data)
            out_headers = {**rate, **out_headers}
            if isinstance(payload, (dict, list)):
                payload = json.dumps(payload).encode()
                out_headers.setdefault("Content-Type", "application/json; charset=utf-8")
            return status, out_headers, payload
        except HTTPError as exc:
            status = exc.status
            doc = {"message": exc.message, "documentation_url": _DOCS, **exc.extra}
            h = {"Content-Type": "application/json; charset=utf-8", **exc.headers}
            return status, h, json.dumps(doc).encode()
        finally:
            with self.lock:
                self.requests.append(RequestRecord(method, path, query, status, login,
                                                   not path.startswith(CODELOAD_ROOT),
                                                   "authorization" in headers))

    def _auth(self, headers: dict[str, str]) -> Token:
        value = headers.get("authorization", "")
        scheme, _, secret = value.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not secret:
            raise HTTPError(401, "Requires authentication")
        with self.lock:
            token = self.tokens.get(secret.strip())
        if token is None:
            raise HTTPError(401, "Bad credentials")
        return token

    @staticmethod
    def _need(token: Token, *rights: str) -> None:
        """403 unless the token has one of ``rights`` (write implies read)."""
        have = set(token.rights)
        have |= {r.replace(":write", ":read") for r in token.rights if r.endswith(":write")}
        if not any(r in have for r in rights):
            # Alternative sets are separated by "; " (GitHub's format).
            accepted = "; ".join(r.replace(":", "=") for r in rights)
            raise HTTPError(403, "Resource not accessible by personal access token",
                            {"X-Accepted-GitHub-Permissions": accepted})

    def _repo_for(self, token: Token, owner: str, name: str) -> Repo:
        full = f"{owner}/{name}"
        repo = self.repos.get(full)
        if repo is None or (token.repos is not None and full not in token.repos):
            raise HTTPError(404, "Not Found")
        return repo

    def _paginate(self, items: list[Any], path: str, query: dict[str, list[str]]
                  ) -> tuple[list[Any], dict[str, str]]:
        per_page = min(100, max(1, int(query.get("per_page", ["30"])[0])))
        page = max(1, int(query.get("page", ["1"])[0]))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]

        def link(n: int) -> str:
            q = {k: v[0] for k, v in query.items()}
            q.update(page=str(n), per_page=str(per_page))
            return f"<{self.api_url}{path}?{urlencode(q)}>"

        rels = []
        if page < last:
            rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
        if page > 1:
            rels += [f'{link(1)}; rel="first"', f'{link(page - 1)}; rel="prev"']
        return chunk, ({"Link": ", ".join(rels)} if rels else {})

    def _route(self, method: str, path: str, query: dict[str, list[str]], token: Token,
               data: Any) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if path == "/user" and method == "GET":
                return 200, {}, {**self._user_json(token.login),
                                 "name": self.users[token.login]["name"]}
            if path == "/user/repos" and method == "GET":
                visible = [r for r in self.repos.values()
                           if token.repos is None or r.full_name in token.repos]
                visible.sort(key=lambda r: r.full_name)
                page, h = self._paginate([self._repo_json(r, token) for r in visible],
                                         path, query)
                return 200, h, page
            m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
            if not m:
                raise HTTPError(404, "Not Found")
            repo = self._repo_for(token, m.group(1), m.group(2))
            rest = m.group(3) or ""
            return self._repo_route(method, repo, rest, path, query, token, data)

    def _repo_route(self, method: str, repo: Repo, rest: str, path: str,
                    query: dict[str, list[str]], token: Token, data: Any
                    ) -> tuple[int, dict[str, str], Any]:
        full = repo.full_name
        if rest == "" and method == "GET":
            self._need(token, "metadata:read")
            return 200, {}, self._repo_json(repo, token)
        if rest == "/pulls" and method == "GET":
            self._need(token, "pull_requests:read")
            state = query.get("state", ["open"])[0]
            base = query.get("base", [None])[0]
            pulls = [p for p in self.pulls[full].values()
                     if (state == "all" or p.state == state)
                     and (base is None or p.base_ref == base)]
            sort = query.get("sort", ["created"])[0]
            direction = query.get("direction", ["desc"])[0]
            key = (lambda p: p.updated_at) if sort == "updated" else (lambda p: p.number)
            pulls.sort(key=key, reverse=direction != "asc")
            page, h = self._paginate([self._pull_json(p) for p in pulls], path, query)
            return 200, h, page
        m = re.fullmatch(r"/pulls/(\d+)", rest)
        if m and method == "GET":
            self._need(token, "pull_requests:read")
            pr = self.pulls[full].get(int(m.group(1)))
            if pr is None:
                raise HTTPError(404, "Not Found")
            return 200, {}, self._pull_json(pr, full=True)
        m = re.fullmatch(r"/commits/(.+)", rest)
        if m and method == "GET":
            self._need(token, "contents:read")
            sha = self._resolve(repo, m.group(1))
            return 200, {}, {**self._commit_min(repo, sha), "files": []}
        m = re.fullmatch(r"/compare/(.+)\.\.\.(.+)", rest)
        if m and method == "GET":
            self._need(token, "contents:read")
            return 200, {}, self._compare(repo, m.group(1), m.group(2))
        m = re.fullmatch(r"/(tarball|zipball)(?:/(.+))?", rest)
        if m and method == "GET":
            self._need(token, "contents:read")
            if m.group(1) != "tarball":
                raise HTTPError(404, "Not Found")
            sha = self._resolve(repo, m.group(2) or repo.default_branch)
            ticket = secrets.token_urlsafe(16)
            self._codeload_tokens[ticket] = (full, sha)
            ref = quote(m.group(2) or repo.default_branch, safe="")
            location = (f"{self.root}{CODELOAD_ROOT}/{full}/legacy.tar.gz/{ref}"
                        f"?token={ticket}")
            return 302, {"Location": location}, b""
        if rest == "/deployments":
            if method == "POST":
                self._need(token, "deployments:write")
                return self._create_deployment(repo, token, data or {})
            if method == "GET":
                self._need(token, "deployments:read")
                deps = self.deployments(full)
                for key in ("sha", "ref", "task", "environment"):
                    if key in query:
                        deps = [d for d in deps if getattr(d, key) == query[key][0]]
                page, h = self._paginate([self._deployment_json(d) for d in deps], path, query)
                return 200, h, page
        m = re.fullmatch(r"/deployments/(\d+)(/statuses)?", rest)
        if m:
            dep = next((d for d in self.deployments_by_repo.get(full, [])
                        if d.id == int(m.group(1))), None)
            if dep is None:
                raise HTTPError(404, "Not Found")
            if not m.group(2) and method == "GET":
                self._need(token, "deployments:read")
                return 200, {}, self._deployment_json(dep)
            if m.group(2) and method == "POST":
                self._need(token, "deployments:write")
                return self._create_status(repo, dep, token, data or {})
            if m.group(2) and method == "GET":
                self._need(token, "deployments:read")
                page, h = self._paginate(list(reversed(dep.statuses)), path, query)
                return 200, h, page
        m = re.fullmatch(r"/issues/(\d+)/comments", rest)
        if m:
            number = int(m.group(1))
            if number not in self.pulls[full]:
                raise HTTPError(404, "Not Found")
            key = (full, number)
            if method == "POST":
                self._need(token, "issues:write", "pull_requests:write")
                body = (data or {}).get("body")
                if not isinstance(body, str) or not body:
                    raise HTTPError(422, "Validation Failed",
                                    extra={"errors": [{"field": "body", "code": "missing"}]})
                cid = next(self._ids)
                api = f"{self.api_url}/repos/{full}"
                comment = {
                    "id": cid, "node_id": f"IC_{cid}", "url": f"{api}/issues/comments/{cid}",
                    "html_url": f"{self.root}/{full}/pull/{number}#issuecomment-{cid}",
                    "body": body, "user": self._user_json(token.login),
                    "created_at": _now(), "updated_at": _now(),
                    "issue_url": f"{api}/issues/{number}", "author_association": "OWNER",
                }
                self.comments_by_issue.setdefault(key, []).append(comment)
                return 201, {}, comment
            if method == "GET":
                self._need(token, "issues:write", "pull_requests:read")
                page, h = self._paginate(self.comments_by_issue.get(key, []), path, query)
                return 200, h, page
        raise HTTPError(404, "Not Found")

    def _compare(self, repo: Repo, base: str, head: str) -> dict[str, Any]:
        base_sha = self._resolve(repo, base.split(":")[-1])
        head_sha = self._resolve(repo, head.split(":")[-1])
        base_anc = self._ancestors(base_sha)
        head_anc = self._ancestors(head_sha)
        merge_base = next((s for s in head_anc if s in set(base_anc)), None)
        if merge_base is None:
            raise HTTPError(404, f"No common ancestor between {base} and {head}.")
        ahead = head_anc[: head_anc.index(merge_base)]
        behind = base_anc[: base_anc.index(merge_base)]
        status = ("identical" if not ahead and not behind else "ahead" if not behind
                  else "behind" if not ahead else "diverged")
        old, new = self.commits[merge_base].files, self.commits[head_sha].files
        files = []
        for path in sorted(set(old) | set(new)):
            if old.get(path) == new.get(path):
                continue
            state = ("added" if path not in old else "removed" if path not in new
                     else "modified")
            a = len((new.get(path) or b"").splitlines())
            d = len((old.get(path) or b"").splitlines())
            files.append({
                "sha": hashlib.sha1(new.get(path, b""), usedforsecurity=False).hexdigest(),
                "filename": path, "status": state, "additions": a, "deletions": d,
                "changes": a + d,
                "blob_url": f"{self.root}/{repo.full_name}/blob/{head_sha}/{path}",
                "raw_url": f"{self.root}/{repo.full_name}/raw/{head_sha}/{path}",
                "contents_url": f"{self.api_url}/repos/{repo.full_name}/contents/{path}"
                                f"?ref={head_sha}",
            })
        api = f"{self.api_url}/repos/{repo.full_name}"
        return {
            "url": f"{api}/compare/{base}...{head}",
            "html_url": f"{self.root}/{repo.full_name}/compare/{base}...{head}",
            "permalink_url": f"{self.root}/{repo.full_name}/compare/{base_sha}...{head_sha}",
            "diff_url": "", "patch_url": "",
            "base_commit": self._commit_min(repo, base_sha),
            "merge_base_commit": self._commit_min(repo, merge_base),
            "status": status, "ahead_by": len(ahead), "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [self._commit_min(repo, s) for s in reversed(ahead)],
            "files": files,
        }

    def _create_deployment(self, repo: Repo, token: Token, data: dict[str, Any]
                           ) -> tuple[int, dict[str, str], Any]:
        ref = data.get("ref")
        if not isinstance(ref, str) or not ref:
            raise HTTPError(422, "Invalid request.\n\n\"ref\" wasn't supplied.")
        sha = self._resolve(repo, ref)
        env = data.get("environment", "production")
        payload = data.get("payload", {})
        if isinstance(payload, str):
            payload = json.loads(payload) if payload else {}
        production = data.get("production_environment", env == "production")
        dep = Deployment(
            id=next(self._ids), repo=repo.full_name, sha=sha, ref=ref,
            task=data.get("task", "deploy"), payload=payload, environment=env,
            description=data.get("description"), creator=token.login,
            transient_environment=bool(data.get("transient_environment", False)),
            production_environment=bool(production))
        self.deployments_by_repo.setdefault(repo.full_name, []).append(dep)
        return 201, {}, self._deployment_json(dep)

    def _status_json(self, repo: Repo, dep: Deployment, sid: int, state: str,
                     token: Token, data: dict[str, Any]) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repo.full_name}"
        target = data.get("log_url") or data.get("target_url") or ""
        return {
            "url": f"{api}/deployments/{dep.id}/statuses/{sid}", "id": sid,
            "node_id": f"DES_{sid}", "state": state, "creator": self._user_json(token.login),
            "description": data.get("description", ""),
            "environment": data.get("environment", dep.environment),
            "target_url": target, "log_url": target,
            "environment_url": data.get("environment_url", ""),
            "created_at": _now(), "updated_at": _now(),
            "deployment_url": f"{api}/deployments/{dep.id}", "repository_url": api,
        }

    def _create_status(self, repo: Repo, dep: Deployment, token: Token, data: dict[str, Any]
                       ) -> tuple[int, dict[str, str], Any]:
        state = data.get("state")
        if state not in _STATUS_STATES:
            raise HTTPError(422, "Validation Failed",
                            extra={"errors": [{"resource": "DeploymentStatus",
                                               "field": "state", "code": "invalid"}]})
        description = data.get("description", "")
        if isinstance(description, str) and len(description) > 140:
            raise HTTPError(422, "Validation Failed",
                            extra={"errors": [{"resource": "DeploymentStatus",
                                               "field": "description",
                                               "code": "custom",
                                               "message": "description is too long "
                                                          "(maximum is 140 characters)"}]})
        status = self._status_json(repo, dep, next(self._ids), state, token, data)
        dep.statuses.append(status)
        dep.updated_at = status["created_at"]
        if state == "success" and data.get("auto_inactive", True):
            # As GitHub: every other deployment of the environment that was last successful
            # gets an inactive status.
            for other in self.deployments_by_repo.get(repo.full_name, []):
                if (other is not dep and other.environment == dep.environment
                        and not other.production_environment and other.statuses
                        and other.statuses[-1]["state"] == "success"):
                    other.statuses.append(self._status_json(
                        repo, other, next(self._ids), "inactive", token,
                        {"description": "superseded"}))
        return 201, {}, status

    def _codeload(self, path: str, query: dict[str, list[str]]
                  ) -> tuple[int, dict[str, str], bytes]:
        ticket = query.get("token", [""])[0]
        with self.lock:
            found = self._codeload_tokens.pop(ticket, None)
        if found is None:
            return 404, {"Content-Type": "text/plain"}, b"404: Not Found"
        full, sha = found
        data = self.tarball_bytes(full, sha)
        owner, name = full.split("/")
        return 200, {
            "Content-Type": "application/x-gzip",
            "Content-Disposition": f"attachment; filename={owner}-{name}-{sha[:7]}.tar.gz",
        }, data


class _Handler(BaseHTTPRequestHandler):
    standin: GitHubStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, payload = self.standin.handle(self.command, self.path, headers,
                                                           body)
        self.send_response(status)
        for k, v in out_headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _serve
