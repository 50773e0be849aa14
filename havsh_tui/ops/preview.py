"""Previews: a neutralized copy of a parent service for every open pull request of a connected
repository, kept at the PR's head, destroyed when the PR closes. Never left behind.

The reconciler compares what GitHub says (the open pull requests of every repository with
previews on: one request per repository) with what exists (the inventory's previews, and every
host's objects labelled ``sh.hav.pr``, so a preview the inventory lost is still found), then:

* a wanted PR without a preview → **Creating**: the parent's addons volume copied, the PR's
  repository at the head SHA streamed over it (ops/repos.py), then a Copy of the parent with
  neutralize forced and verified before its server ever starts (ops/copy.py), then the modules
  changed between base and head (compare API) installed or updated, a new container labelled
  with the head SHA, start, health → **Active**;
* the head SHA moved → **Updating**: the new tree, ``-u``/``-i`` of what changed, a new
  container, health → Active;
* the PR closed or merged, retargeted, from a fork while forks are off, previews turned off,
  or the repository disconnected → **Destroyed**: container, database, role and volumes go; the
  inventory row stays, as history;
* a failing step → **Failed**, with the step and its log; retried on the next pass, then with
  a growing pause while the head does not move (a new push retries at once).

Each preview has a GitHub Deployment per head SHA (environment ``preview/pr-<n>``, transient,
not production) with statuses in_progress, success (``environment_url`` = the preview's URL),
failure and inactive. Keys are (repository, PR number), never the branch. At most
``previews_per_parent`` previews per parent; a PR over the cap gets one comment saying so.

A pass that finds nothing new costs one GitHub request per repository with previews on (per
100 open PRs), plus two Docker calls per host. A per-preview file lock keeps two reconcilers
(or a reconciler and a hand-made create) from working on the same preview at once.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docker.errors
import filelock

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceStatus, ServiceType, Step, utcnow
from havsh_tui.github.client import GitHubError, NotFound, PullInfo
from havsh_tui.ops import odoo
from havsh_tui.ops.bootstrap import psql
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import NullReporter, OperationCancelled, Reporter
from havsh_tui.ops.repos import (
    RepoConnection,
    apply_commit,
    changed_modules,
    copy_addons,
    list_connections,
)
from havsh_tui.ops.services import (
    LABEL_HEAD,
    LABEL_SOURCE_HOST,
    _Steps,
    remove_service_objects,
)
from havsh_tui.remote.ssh import RemoteError

ENV_PREFIX = "preview/pr-"
#: Inventory values: bookkeeping per preview, PRs told about the cap, hand-destroyed PRs.
META_KEY = "preview.meta"
CAPPED_KEY = "preview.capped"
DISMISSED_KEY = "preview.dismissed"
RETRY_BASE = 60.0
RETRY_MAX = 3600.0
_PR_RE = re.compile(r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<n>\d+)")
_HOST_ERRORS = (RemoteError, OSError, docker.errors.APIError, docker.errors.DockerException)


def parse_pr(key: str | None) -> tuple[str, int] | None:
    m = _PR_RE.fullmatch(key or "")
    return (m.group("repo"), int(m.group("n"))) if m else None


def environment(number: int) -> str:
    return f"{ENV_PREFIX}{number}"


def preview_url(service: Service) -> str:
    """The URL posted to GitHub: the service's own (its proxy hostname) when it has one, else
    its address on the host's havsh network (reachable through `havsh service open`)."""
    return service.url or f"http://{names.container_name(service.name)}:{odoo.HTTP_PORT}"


def list_previews(inventory, *, include_destroyed: bool = True) -> list[Service]:
    return [s for s in inventory.list_services() if s.type is ServiceType.PREVIEW
            and (include_destroyed or s.status is not ServiceStatus.DESTROYED)]


@dataclass
class PreviewAction:
    """One thing a pass did (or decided not to do) about one pull request."""

    action: str  # created updated destroyed failed capped ignored skipped busy kept
    pr: str
    preview: str | None = None
    host: str | None = None
    parent: str | None = None
    sha: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def line(self) -> str:
        where = f" {self.preview}@{self.host}" if self.preview else ""
        sha = f" at {self.sha[:12]}" if self.sha else ""
        return f"{self.action:9} {self.pr}{where}{sha}" + (f": {self.detail}" if self.detail
                                                            else "")


@dataclass
class PassResult:
    started_at: datetime = field(default_factory=utcnow)
    seconds: float = 0.0
    repos: int = 0
    pulls: int = 0
    actions: list[PreviewAction] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(a.action in ("created", "updated", "destroyed", "failed")
                   for a in self.actions)

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a.action == action)

    def to_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at.isoformat(), "seconds": round(self.seconds, 2),
                "repos": self.repos, "pulls": self.pulls,
                "actions": [a.to_dict() for a in self.actions], "errors": self.errors}


@dataclass
class Existing:
    """A preview that exists: in the inventory, on a host (by its labels), or both."""

    slug: str
    host: str
    parent: str | None
    parent_host: str
    pr: str
    head_sha: str | None = None
    service: Service | None = None
    on_host: bool = False

    @property
    def repo(self) -> str:
        return (parse_pr(self.pr) or ("", 0))[0]

    @property
    def number(self) -> int:
        return (parse_pr(self.pr) or ("", 0))[1]


Key = tuple[str, str, str, int]  # (parent host, parent, repo lowercased, PR number)


def _key(parent_host: str, parent: str | None, pr: str) -> Key | None:
    parsed = parse_pr(pr)
    if parsed is None:
        return None
    return (parent_host, parent or "", parsed[0].lower(), parsed[1])


class Reconciler:
    """Previews for every connected repository with previews on. One pass, or a loop.

    ``github`` is a GitHubClient (or None when there is no login: then nothing that needs
    GitHub happens, and nothing is destroyed for lack of an answer).
    """

    def __init__(self, inventory, secret_store, pool, github, *, settings=None,
                 lock_dir: Path | None = None, reporter: Reporter | None = None, audit=None,
                 clock: Callable[[], float] = time.time) -> None:
        from havsh_tui.core.settings import Settings

        self.inventory = inventory
        self.secret_store = secret_store
        self.pool = pool
        self.github = github
        self.settings = settings or Settings()
        self.lock_dir = Path(lock_dir) if lock_dir else Path(inventory.path).parent / "locks"
        self.reporter = reporter or NullReporter()
        self.audit = audit
        self.clock = clock
        self._unreachable: set[str] = set()

    # -- bookkeeping -------------------------------------------------------------------------
    def meta(self, host: str, slug: str) -> dict[str, Any]:
        value = self.inventory.get_value(META_KEY, {}) or {}
        return dict(value.get(f"{host}/{slug}") or {})

    def _set_meta(self, host: str, slug: str, **changes: Any) -> None:
        def change(value: Any) -> dict:
            value = value if isinstance(value, dict) else {}
            value[f"{host}/{slug}"] = {**(value.get(f"{host}/{slug}") or {}), **changes}
            return value

        self.inventory.update_value(META_KEY, change, {})

    def _drop_meta(self, host: str, slug: str) -> None:
        def change(value: Any) -> dict:
            value = value if isinstance(value, dict) else {}
            value.pop(f"{host}/{slug}", None)
            return value

        self.inventory.update_value(META_KEY, change, {})

    def _lock(self, host: str, slug: str) -> filelock.FileLock:
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return filelock.FileLock(str(self.lock_dir / f"preview-{host}-{slug}.lock"),
                                 mode=0o600)

    def _gh(self, fn: Callable[[], Any], result: PassResult | None = None) -> Any:
        """A GitHub call whose failure must not stop the preview (statuses, comments)."""
        try:
            return fn()
        except GitHubError as exc:
            self.reporter.warning(f"GitHub: {exc}")
            if result is not None:
                result.errors.append(str(exc))
            return None

    def _audit(self, host: str, action: str, slug: str, outcome: str, detail: str) -> None:
        if self.audit is not None:
            self.audit.append(host, action, slug, outcome, detail)

    # -- the pass ----------------------------------------------------------------------------
    def reconcile(self) -> PassResult:
        """One pass over every repository with previews on, and every host."""
        result = PassResult()
        t0 = time.monotonic()
        self._unreachable = set()
        conns = list_connections(self.inventory)
        enabled = [c for c in conns if c.previews]
        pulls_by_repo: dict[str, dict[int, PullInfo]] = {}
        unknown_repos: set[str] = set()
        for lower, name in sorted({c.repo.lower(): c.repo for c in enabled}.items()):
            if self.github is None:
                unknown_repos.add(lower)
                result.errors.append(f"{name}: no GitHub login (`havsh github login`)")
                continue
            try:
                pulls = self.github.repo(name).open_pulls()
            except GitHubError as exc:
                unknown_repos.add(lower)
                result.errors.append(str(exc))
                self.reporter.warning(str(exc))
                continue
            pulls_by_repo[lower] = {p.number: p for p in pulls}
        result.repos = len(pulls_by_repo)
        result.pulls = sum(len(p) for p in pulls_by_repo.values())

        parents = {(s.host, s.name) for s in self.inventory.list_services()}
        wanted: dict[Key, tuple[RepoConnection, PullInfo]] = {}
        for c in enabled:
            for pr in (pulls_by_repo.get(c.repo.lower()) or {}).values():
                if pr.base_ref != c.branch:
                    continue
                if pr.is_fork and not c.forks:
                    result.actions.append(PreviewAction(
                        "ignored", pr.key, parent=c.service, sha=pr.head_sha,
                        detail=f"from a fork ({pr.head_repo or 'deleted'}); forks are off "
                               f"(`havsh repo previews on {c.service} {c.repo} --forks`)"))
                    continue
                if (c.host, c.service) not in parents:
                    result.errors.append(f"{c.repo} is connected to {c.service} on {c.host}, "
                                         "which is not in the inventory any more")
                    continue
                wanted[(c.host, c.service, c.repo.lower(), pr.number)] = (c, pr)

        existing, strays = self._existing(result)
        by_conn = {c.key: c for c in conns}
        foreign_cache: dict[str, str | None] = {}
        destroyed: set[Key] = set()
        for slug, host, reason in strays:
            self._destroy_slug(host, slug, reason, result)
        for key, ex in sorted(existing.items()):
            if key in wanted or key[2] in unknown_repos:
                continue
            conn = by_conn.get((ex.parent_host, ex.parent or "", key[2]))
            if conn is not None and conn.previews and key[2] in pulls_by_repo:
                pr = pulls_by_repo[key[2]].get(key[3])
                if pr is None:
                    reason = "its pull request is closed"
                elif pr.base_ref != conn.branch:
                    reason = f"its pull request now targets {pr.base_ref}, not {conn.branch}"
                elif pr.is_fork:
                    reason = "its pull request comes from a fork, and forks are off"
                else:
                    reason = "its parent service is gone"
            elif conn is not None and not conn.previews:
                reason = "previews are off for its repository"
            else:
                reason = self._foreign_reason(ex, result, foreign_cache)
                if reason is None:
                    continue
            if self._destroy(ex, reason, result):
                destroyed.add(key)

        counts: dict[tuple[str, str], int] = {}
        for key in existing:
            if key not in destroyed:
                counts[(key[0], key[1])] = counts.get((key[0], key[1]), 0) + 1
        dismissed = self.inventory.get_value(DISMISSED_KEY, {}) or {}
        cap = self.settings.previews_per_parent
        capped_now: set[str] = set()
        for key in sorted(wanted):
            conn, pr = wanted[key]
            ex = existing.get(key)
            if ex is not None and key not in destroyed:
                self._maybe_update(ex, conn, pr, result)
                continue
            mark = dismissed.get(_dismiss_key(conn, pr))
            if mark is not None and mark == pr.head_sha:
                result.actions.append(PreviewAction(
                    "skipped", pr.key, parent=conn.service, sha=pr.head_sha,
                    detail="destroyed by hand; a new push or `havsh preview create` brings "
                           "it back"))
                continue
            parent_key = (conn.host, conn.service)
            if cap and counts.get(parent_key, 0) >= cap:
                capped_now.add(_capped_key(conn, pr))
                self._capped(conn, pr, cap, result)
                continue
            if self._create(conn, pr, result):
                counts[parent_key] = counts.get(parent_key, 0) + 1
        self._prune_notes(capped_now, wanted, dismissed)
        self._forget_old_history()
        result.seconds = time.monotonic() - t0
        return result

    def _forget_old_history(self) -> None:
        """Destroyed previews are kept as history rows for ``preview_history_days``; older
        ones are forgotten, so a busy repository does not grow the inventory forever."""
        days = self.settings.preview_history_days
        if not days:
            return
        cutoff = utcnow() - timedelta(days=days)
        for s in self.inventory.list_services():
            if (s.type is ServiceType.PREVIEW and s.status is ServiceStatus.DESTROYED
                    and s.updated_at < cutoff):
                try:
                    self.inventory.remove_service(s.host, s.name)
                except Exception:  # noqa: BLE001 - gone already (another process)
                    pass

    def watch(self, interval: float = 60.0, stop: threading.Event | None = None,
              on_pass: Callable[[PassResult], None] | None = None,
              max_passes: int | None = None) -> int:
        """Pass after pass, ``interval`` seconds apart, until ``stop`` is set. A pass that
        raises is reported and the loop goes on. Returns the number of passes."""
        stop = stop or threading.Event()
        passes = 0
        while not stop.is_set():
            try:
                res = self.reconcile()
            except OperationCancelled:
                break
            except Exception as exc:  # noqa: BLE001 - a long-running loop must not die
                res = PassResult(errors=[f"the pass failed: {type(exc).__name__}: {exc}"])
                self.reporter.warning(res.errors[0])
            passes += 1
            if on_pass is not None:
                on_pass(res)
            if max_passes is not None and passes >= max_passes:
                break
            stop.wait(interval)
        return passes

    # -- what exists -------------------------------------------------------------------------
    def _scan_host(self, host) -> dict[str, dict[str, str]]:
        """Slug → labels of every object on ``host`` labelled as a preview: two calls."""
        client = self.pool.session(host).docker()
        flt = {"label": [f"{names.LABEL_MANAGED}=1", names.LABEL_PR]}
        found: dict[str, dict[str, str]] = {}
        for v in (client.api.volumes(filters=flt) or {}).get("Volumes") or []:
            labels = v.get("Labels") or {}
            slug = labels.get(names.LABEL_SERVICE)
            if slug:
                found.setdefault(slug, {}).update(labels)
        for c in client.api.containers(all=True, filters=flt):
            labels = c.get("Labels") or {}
            slug = labels.get(names.LABEL_SERVICE)
            if slug:
                entry = found.setdefault(slug, {})
                if labels.get(names.LABEL_ROLE) == "odoo":
                    entry.update(labels)
                else:
                    for k, v in labels.items():
                        entry.setdefault(k, v)
        return found

    def _existing(self, result: PassResult) -> tuple[dict[Key, Existing],
                                                     list[tuple[str, str, str]]]:
        found: dict[Key, Existing] = {}
        strays: list[tuple[str, str, str]] = []
        records = {(s.host, s.name): s for s in self.inventory.list_services()}
        for s in records.values():
            if s.type is not ServiceType.PREVIEW or s.status is ServiceStatus.DESTROYED:
                continue
            key = _key(s.source_host or s.host, s.source, s.pr or "")
            if key is None:
                continue
            if key in found:
                strays.append((s.name, s.host, f"a second preview of {s.pr}"))
                continue
            found[key] = Existing(s.name, s.host, s.source, s.source_host or s.host,
                                  s.pr or "", s.head_sha, s)
        for host in self.inventory.list_hosts():
            try:
                labelled = self._scan_host(host)
            except _HOST_ERRORS as exc:
                self._unreachable.add(host.name)
                result.errors.append(f"{host.name}: cannot list its previews: {exc}")
                continue
            for slug, labels in labelled.items():
                rec = records.get((host.name, slug))
                if rec is not None and rec.type is ServiceType.PREVIEW and (
                        rec.status is not ServiceStatus.DESTROYED):
                    for ex in found.values():
                        if ex.slug == slug and ex.host == host.name:
                            ex.on_host = True
                            ex.head_sha = ex.head_sha or labels.get(LABEL_HEAD)
                    continue
                pr = labels.get(names.LABEL_PR, "")
                parent_host = labels.get(LABEL_SOURCE_HOST) or host.name
                key = _key(parent_host, labels.get(names.LABEL_SOURCE), pr)
                if key is None or key in found:
                    strays.append((slug, host.name, "left behind (its inventory row says "
                                   "Destroyed, or another preview has its PR)"))
                    continue
                found[key] = Existing(slug, host.name, labels.get(names.LABEL_SOURCE),
                                      parent_host, pr, labels.get(LABEL_HEAD), None, True)
        return found, strays

    def _foreign_reason(self, ex: Existing, result: PassResult,
                        cache: dict[str, str | None]) -> str | None:
        """A preview whose repository is not connected (with previews) to its parent here:
        destroyed if its PR is closed or gone, kept while it is open."""
        if ex.pr in cache:
            return cache[ex.pr]
        reason: str | None = None
        if self.github is None or not ex.repo:
            reason = None if ex.repo else "it has no valid sh.hav.pr label"
        else:
            try:
                pr = self.github.repo(ex.repo).pull(ex.number)
                if not pr.is_open:
                    reason = "its pull request is " + ("merged" if pr.merged else "closed")
                else:
                    result.actions.append(PreviewAction(
                        "kept", ex.pr, ex.slug, ex.host, ex.parent, ex.head_sha,
                        "its repository is not connected to its parent here; kept while "
                        "the pull request is open"))
            except NotFound:
                reason = "its pull request is gone"
            except GitHubError as exc:
                result.errors.append(str(exc))
        cache[ex.pr] = reason
        return reason

    # -- create ------------------------------------------------------------------------------
    def _slug_for(self, conn: RepoConnection, pr: PullInfo) -> str:
        taken = {s.name: s for s in self.inventory.list_services(host=conn.host)}
        slug = names.preview_slug(conn.service, pr.number)
        other = taken.get(slug)
        if other is None or other.pr == pr.key or other.status is ServiceStatus.DESTROYED:
            return slug
        # Two repositories with previews on one parent can both have a PR #n.
        repo_part = re.sub(r"[^a-z0-9]+", "-", pr.repo.split("/")[1].lower()).strip("-")
        alt = names.preview_slug(f"{conn.service}-{repo_part or 'repo'}", pr.number)
        other = taken.get(alt)
        if other is None or other.pr == pr.key or other.status is ServiceStatus.DESTROYED:
            return alt
        raise OpsError(f"no free name for the preview of {pr.key} on {conn.host} "
                       f"({slug} and {alt} are taken)")

    def _create(self, conn: RepoConnection, pr: PullInfo, result: PassResult, *,
                wait: float = 0) -> bool:
        try:
            parent = self.inventory.get_service(conn.service, host=conn.host)
            slug = self._slug_for(conn, pr)
        except Exception as exc:  # noqa: BLE001 - one PR must not stop the pass
            result.actions.append(PreviewAction("failed", pr.key, parent=conn.service,
                                                sha=pr.head_sha, detail=str(exc)))
            return False
        lock = self._lock(conn.host, slug)
        try:
            lock.acquire(timeout=wait)
        except filelock.Timeout:
            result.actions.append(PreviewAction("busy", pr.key, slug, conn.host, conn.service,
                                                pr.head_sha, "another havsh is working on it"))
            return False
        try:
            return self._create_locked(conn, pr, parent, slug, result)
        finally:
            lock.release()

    def _clear_leftover(self, host, slug: str, result: PassResult) -> None:
        """Before (re)creating: a Destroyed, Failed or Missing row and its objects go."""
        try:
            rec = self.inventory.get_service(slug, host=host.name)
        except Exception:  # noqa: BLE001 - NotFound
            rec = None
        client = self.pool.session(host).docker()
        removed = remove_service_objects(client, slug)
        if rec is not None:
            self.inventory.record_operation({
                "kind": "preview.history", "host": host.name, "service": slug, "pr": rec.pr,
                "state": rec.status.value, "head_sha": rec.head_sha,
                "failed_step": rec.failed_step, "error": (rec.last_error or "")[-2000:],
                "steps": [s.__dict__ for s in rec.steps], "removed": removed})
            self.inventory.remove_service(host.name, slug)
        self.secret_store.delete_prefix(_secret_prefix(host.name, slug))

    def _create_locked(self, conn: RepoConnection, pr: PullInfo, parent: Service, slug: str,
                       result: PassResult) -> bool:
        from havsh_tui.ops.copy import CopySpec, copy_service

        host = self.inventory.get_host(parent.host)
        rep = self.reporter
        try:
            rec = self.inventory.get_service(slug, host=host.name)
        except Exception:  # noqa: BLE001 - NotFound
            rec = None
        if rec is not None and rec.status in (ServiceStatus.RUNNING, ServiceStatus.STOPPED,
                                              ServiceStatus.UPDATING):
            return False  # made meanwhile by another havsh
        rep.step(f"{slug}: create preview of {pr.key}", "running", pr.head_sha[:12])
        gh_repo = self.github.repo(conn.repo)
        session = self.pool.session(host)
        from_sha = conn.deployed_sha or pr.base_sha
        meta = self.meta(host.name, slug) if rec is not None else {}
        dep_id = meta.get("deployment_id") if meta.get("deployment_sha") == pr.head_sha else None
        if not dep_id:  # a retry of the same head keeps its deployment
            dep_id = self._gh(lambda: gh_repo.create_deployment(
                pr.head_sha, environment(pr.number),
                description=f"havsh preview {slug} of {parent.name}",
                payload={"havsh": {"preview": slug, "host": host.name,
                                   "parent": parent.name}}), result)
        self._status(gh_repo, dep_id, "in_progress", f"creating {slug}", result=result)
        self._set_meta(host.name, slug, deployment_id=dep_id, deployment_sha=pr.head_sha,
                       from_sha=from_sha, repo=conn.repo, number=pr.number,
                       parent=parent.name, copied=False,
                       failures=int(meta.get("failures") or 0))
        try:
            self._clear_leftover(host, slug, result)
            new = copy_service(
                self.inventory, self.secret_store, self.pool,
                CopySpec(source_host=parent.host, source=parent.name, name=slug,
                         neutralize=True),
                rep, self.audit, service_type=ServiceType.PREVIEW, pr=pr.key,
                force_neutralize=True)
        except Exception as exc:  # noqa: BLE001 - copy_service cleaned up and marked Failed
            self._note_fields(host.name, slug, pr)
            self._failed(gh_repo, host.name, slug, pr, dep_id, getattr(exc, "step", "copy"),
                         exc, result, conn)
            if isinstance(exc, OperationCancelled):
                raise
            return False
        new.head_sha, new.pr_title, new.pr_branch = pr.head_sha, pr.title, pr.head_ref
        new.status = ServiceStatus.CREATING
        self.inventory.upsert_service(new)
        # The copy runs (neutralized) on an empty addons volume: its parent's addons go in
        # first, then the PR's tree over them (in _bring_to_head, with the module update).
        steps = _Steps(self.inventory, new, rep)
        try:
            steps.run("copy parent addons", lambda: copy_addons(
                session.docker(), parent.image, parent.name, new), f"from {parent.name}")
        except Exception as exc:  # noqa: BLE001 - recorded as Failed, made again next pass
            steps.fail(str(exc), getattr(exc, "log", "") or "")
            self._failed(gh_repo, host.name, slug, pr, dep_id, "copy parent addons", exc,
                         result, conn)
            return False
        self._set_meta(host.name, slug, copied=True)
        return self._bring_to_head(new, conn, pr, gh_repo, session, from_sha, dep_id, None,
                                   result, action="created", steps=steps)

    def _note_fields(self, host: str, slug: str, pr: PullInfo) -> None:
        try:
            self.inventory.update_service(host, slug, head_sha=pr.head_sha, pr_title=pr.title,
                                          pr_branch=pr.head_ref)
        except Exception:  # noqa: BLE001 - the row may be gone
            pass

    # -- update ------------------------------------------------------------------------------
    def _maybe_update(self, ex: Existing, conn: RepoConnection, pr: PullInfo,
                      result: PassResult) -> None:
        if ex.host in self._unreachable:
            result.actions.append(PreviewAction("skipped", pr.key, ex.slug, ex.host,
                                                ex.parent, pr.head_sha, "host unreachable"))
            return
        s = ex.service
        if s is None:
            s = self._adopt(ex)
            if s is None:  # leftovers without a server (a creation that died): start over
                self._create(conn, pr, result)
                return
        if (s.pr_title, s.pr_branch) != (pr.title, pr.head_ref) and s.status in (
                ServiceStatus.RUNNING, ServiceStatus.STOPPED):
            s = self.inventory.update_service(s.host, s.name, pr_title=pr.title,
                                              pr_branch=pr.head_ref)
        if s.status in (ServiceStatus.RUNNING, ServiceStatus.STOPPED) and (
                s.head_sha == pr.head_sha):
            return  # up to date: nothing to do, nothing to say
        if s.status is ServiceStatus.FAILED and s.head_sha == pr.head_sha:
            meta = self.meta(s.host, s.name)
            retry_at = float(meta.get("retry_after") or 0)
            if self.clock() < retry_at:
                result.actions.append(PreviewAction(
                    "skipped", pr.key, s.name, s.host, s.source, pr.head_sha,
                    f"failed at '{s.failed_step}'; next retry in "
                    f"{retry_at - self.clock():.0f} s (or on a new push)"))
                return
        lock = self._lock(s.host, s.name)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            result.actions.append(PreviewAction("busy", pr.key, s.name, s.host, s.source,
                                                pr.head_sha, "another havsh is working on it"))
            return
        try:
            s = self.inventory.get_service(s.name, host=s.host)  # afresh, under the lock
            if s.status in (ServiceStatus.RUNNING, ServiceStatus.STOPPED) and (
                    s.head_sha == pr.head_sha):
                return
            host = self.inventory.get_host(s.host)
            try:
                self.pool.session(host).docker().api.inspect_container(
                    names.container_name(s.name))
                has_container = True
            except docker.errors.NotFound:
                has_container = False
            except _HOST_ERRORS as exc:
                result.actions.append(PreviewAction("skipped", pr.key, s.name, s.host,
                                                    s.source, pr.head_sha, str(exc)))
                return
        finally:
            lock.release()
        copied = self.meta(s.host, s.name).get("copied", True)
        if not has_container or not copied or s.status in (
                ServiceStatus.CREATING, ServiceStatus.MISSING, ServiceStatus.DESTROYING):
            # Nothing sound to update in place (its creation failed or died before the copy
            # was whole, or the container went): make it again from the parent.
            self._create(conn, pr, result)
            return
        self._update(s, conn, pr, result)

    def _adopt(self, ex: Existing) -> Service | None:
        """A preview the inventory lost (another laptop, a reset): a row from its labels."""
        try:
            host = self.inventory.get_host(ex.host)
            client = self.pool.session(host).docker()
            attrs = client.api.inspect_container(names.container_name(ex.slug))
        except Exception:  # noqa: BLE001 - no container: it cannot be updated in place
            return None
        labels = attrs.get("Config", {}).get("Labels") or {}
        state = attrs.get("State", {})
        s = Service(
            name=ex.slug, host=ex.host, type=ServiceType.PREVIEW,
            odoo_version=labels.get(names.LABEL_ODOO, "?"),
            image=attrs.get("Config", {}).get("Image", ""),
            status=ServiceStatus.RUNNING if state.get("Running") else ServiceStatus.STOPPED,
            database=names.database_name(ex.slug), source=ex.parent,
            source_host=ex.parent_host, pr=ex.pr, head_sha=labels.get(LABEL_HEAD),
            container_id=attrs.get("Id"))
        self.inventory.upsert_service(s)
        return s

    def _update(self, s: Service, conn: RepoConnection, pr: PullInfo, result: PassResult
                ) -> bool:
        lock = self._lock(s.host, s.name)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            result.actions.append(PreviewAction("busy", pr.key, s.name, s.host, s.source,
                                                pr.head_sha, "another havsh is working on it"))
            return False
        try:
            host = self.inventory.get_host(s.host)
            meta = self.meta(s.host, s.name)
            from_sha = (meta.get("from_sha") or (s.head_sha if s.status is ServiceStatus.RUNNING
                                                 else None)
                        or conn.deployed_sha or pr.base_sha)
            gh_repo = self.github.repo(conn.repo)
            old_dep = meta.get("deployment_id")
            if old_dep and meta.get("deployment_sha") == pr.head_sha:
                dep_id, old_dep = old_dep, None
            else:
                dep_id = self._gh(lambda: gh_repo.create_deployment(
                    pr.head_sha, environment(pr.number),
                    description=f"havsh preview {s.name} of {s.source}",
                    payload={"havsh": {"preview": s.name, "host": s.host,
                                       "parent": s.source}}), result)
                self._set_meta(s.host, s.name, deployment_id=dep_id,
                               deployment_sha=pr.head_sha)
            self._status(gh_repo, dep_id, "in_progress", f"updating {s.name}", result=result)
            self.reporter.step(f"{s.name}: update to {pr.head_sha[:12]}", "running",
                               f"from {from_sha[:12]}")
            s.status = ServiceStatus.UPDATING
            s.head_sha, s.pr_title, s.pr_branch = pr.head_sha, pr.title, pr.head_ref
            s.failed_step = s.last_error = None
            s.steps = []
            self.inventory.upsert_service(s)
            session = self.pool.session(host)
            return self._bring_to_head(s, conn, pr, gh_repo, session, from_sha, dep_id,
                                       old_dep, result, action="updated")
        finally:
            lock.release()

    def _bring_to_head(self, s: Service, conn: RepoConnection, pr: PullInfo, gh_repo,
                       session, from_sha: str, dep_id: int | None, old_dep: int | None,
                       result: PassResult, *, action: str, steps: _Steps | None = None) -> bool:
        """The shared end of create and update: the PR's tree at the head, the modules it
        changed, a new container (labelled with the head), start, health."""
        steps = steps or _Steps(self.inventory, s, self.reporter)
        try:
            touched = steps.run("compare", lambda: changed_modules(
                gh_repo, from_sha, pr.head_sha, conn.subdir),
                f"{from_sha[:12]}...{pr.head_sha[:12]}")
            apply_commit(session, self.secret_store, s, gh_repo, pr.head_sha,
                         subdir=conn.subdir, touched=touched, install_new=True, steps=steps,
                         reporter=self.reporter, rollback=False, recreate=True, start=True)
            url = preview_url(s)
            steps.run("base url", lambda: psql(
                session.docker(), "UPDATE ir_config_parameter SET value = :'url' "
                                  "WHERE key = 'web.base.url';\n",
                database=s.database, variables={"url": url}), url)
        except BaseException as exc:
            steps.fail(str(exc), getattr(exc, "log", "") or "")
            self._failed(gh_repo, s.host, s.name, pr, dep_id, steps.current or "update", exc,
                         result, conn)
            if not isinstance(exc, Exception) or isinstance(exc, OperationCancelled):
                raise
            return False
        s.status = ServiceStatus.RUNNING
        s.url = url
        s.failed_step = s.last_error = None
        s.updated_at = utcnow()
        self.inventory.upsert_service(s)
        self._set_meta(s.host, s.name, from_sha=pr.head_sha, failures=0, retry_after=0)
        self._status(gh_repo, dep_id, "success", f"{s.name} runs {pr.head_sha[:12]}",
                     environment_url=url, result=result)
        if old_dep:
            self._status(gh_repo, old_dep, "inactive", "superseded by a newer push",
                         result=result)
        self._note_done(conn, pr)
        self.inventory.record_operation({
            "kind": f"preview.{'create' if action == 'created' else 'update'}",
            "host": s.host, "service": s.name, "pr": pr.key, "sha": pr.head_sha,
            "state": "done", "steps": [st.__dict__ for st in s.steps]})
        self._audit(s.host, f"preview.{action[:-1]}", s.name, "ok",
                    f"{pr.key} at {pr.head_sha[:12]}")
        self.reporter.step(f"{s.name}: {action} ({s.status_label})", "done", url)
        result.actions.append(PreviewAction(action, pr.key, s.name, s.host, s.source,
                                            pr.head_sha, url))
        return True

    def _failed(self, gh_repo, host: str, slug: str, pr: PullInfo, dep_id: int | None,
                step: str, exc: BaseException, result: PassResult,
                conn: RepoConnection | None = None) -> None:
        meta = self.meta(host, slug)
        failures = int(meta.get("failures") or 0) + 1
        pause = 0.0 if failures <= 1 else min(RETRY_BASE * 2 ** (failures - 2), RETRY_MAX)
        self._set_meta(host, slug, failures=failures, retry_after=self.clock() + pause)
        message = str(exc) or type(exc).__name__
        self._status(gh_repo, dep_id, "failure", f"failed at {step}: {message}",
                     result=result)
        self.inventory.record_operation({
            "kind": "preview.failed", "host": host, "service": slug, "pr": pr.key,
            "sha": pr.head_sha, "state": "failed", "step": step, "error": message[:2000],
            "log": (getattr(exc, "log", "") or "")[-8000:]})
        self._audit(host, "preview", slug, "failed", f"{pr.key} at {pr.head_sha[:12]}: "
                                                     f"{message[:200]}")
        self.reporter.step(f"{slug}: failed at {step}", "failed", message)
        result.actions.append(PreviewAction("failed", pr.key, slug, host,
                                            conn.service if conn else None, pr.head_sha,
                                            f"{step}: {message}"))

    def _status(self, gh_repo, dep_id: int | None, state: str, description: str, *,
                environment_url: str | None = None, result: PassResult | None = None) -> None:
        if not dep_id:
            return
        self._gh(lambda: gh_repo.deployment_status(dep_id, state, description=description,
                                                   environment_url=environment_url),
                 result)

    # -- destroy -----------------------------------------------------------------------------
    def _destroy(self, ex: Existing, reason: str, result: PassResult, *,
                 wait: float = 0) -> bool:
        if ex.host in self._unreachable:
            result.actions.append(PreviewAction("skipped", ex.pr, ex.slug, ex.host, ex.parent,
                                                ex.head_sha, f"host unreachable ({reason})"))
            return False
        lock = self._lock(ex.host, ex.slug)
        try:
            lock.acquire(timeout=wait)
        except filelock.Timeout:
            result.actions.append(PreviewAction("busy", ex.pr, ex.slug, ex.host, ex.parent,
                                                ex.head_sha, "another havsh is working on it"))
            return False
        try:
            return self._destroy_locked(ex, reason, result)
        finally:
            lock.release()

    def _destroy_slug(self, host: str, slug: str, reason: str, result: PassResult) -> None:
        ex = Existing(slug, host, None, host, "", None, None, True)
        self._destroy(ex, reason, result)

    def _destroy_locked(self, ex: Existing, reason: str, result: PassResult) -> bool:
        try:
            rec = self.inventory.get_service(ex.slug, host=ex.host)
        except Exception:  # noqa: BLE001 - NotFound: an orphan
            rec = None
        if rec is not None and rec.type is not ServiceType.PREVIEW:
            result.errors.append(f"{ex.slug} on {ex.host} carries preview labels but is a "
                                 f"{rec.type.label} service: left alone")
            return False
        self.reporter.step(f"{ex.slug}: destroy", "running", reason)
        if rec is not None:
            self.inventory.update_service(ex.host, ex.slug, status=ServiceStatus.DESTROYING)
        try:
            host = self.inventory.get_host(ex.host)
            removed = remove_service_objects(self.pool.session(host).docker(), ex.slug)
        except Exception as exc:  # noqa: BLE001 - retried next pass
            if rec is not None:
                self.inventory.update_service(ex.host, ex.slug, status=ServiceStatus.FAILED,
                                              failed_step="destroy", last_error=str(exc))
            self.reporter.step(f"{ex.slug}: destroy", "failed", str(exc))
            result.actions.append(PreviewAction("failed", ex.pr, ex.slug, ex.host, ex.parent,
                                                ex.head_sha, f"destroy: {exc}"))
            return False
        self.secret_store.delete_prefix(_secret_prefix(ex.host, ex.slug))
        if rec is not None:
            steps = [*rec.steps, Step("destroy", "done", utcnow(), utcnow(),
                                      f"{reason}: {', '.join(removed) or 'nothing left'}")]
            self.inventory.update_service(ex.host, ex.slug, status=ServiceStatus.DESTROYED,
                                          container_id=None, steps=steps, last_error=None,
                                          failed_step=None)
        self._inactive(ex, result)
        self._drop_meta(ex.host, ex.slug)
        self.inventory.record_operation({
            "kind": "preview.destroy", "host": ex.host, "service": ex.slug, "pr": ex.pr,
            "state": "done", "reason": reason, "removed": removed})
        self._audit(ex.host, "preview.destroy", ex.slug, "ok", f"{ex.pr}: {reason}")
        self.reporter.step(f"{ex.slug}: destroyed", "done", reason)
        result.actions.append(PreviewAction("destroyed", ex.pr or "?", ex.slug, ex.host,
                                            ex.parent, ex.head_sha, reason))
        return True

    def _inactive(self, ex: Existing, result: PassResult) -> None:
        """Mark the preview's deployment inactive (looked up by its payload if unknown)."""
        if self.github is None or not ex.repo:
            return
        gh_repo = self.github.repo(ex.repo)
        dep_id = self.meta(ex.host, ex.slug).get("deployment_id")
        ids = [dep_id] if dep_id else []
        if not ids:
            deps = self._gh(lambda: gh_repo.deployments(environment(ex.number)), result) or []
            ids = [d.id for d in deps if isinstance(d.payload, dict)
                   and (d.payload.get("havsh") or {}).get("preview") == ex.slug
                   and (d.payload.get("havsh") or {}).get("host") == ex.host]
        for i in ids:
            self._status(gh_repo, i, "inactive", f"{ex.slug} destroyed", result=result)

    # -- the cap ------------------------------------------------------------------------------
    def _capped(self, conn: RepoConnection, pr: PullInfo, cap: int, result: PassResult) -> None:
        note = _capped_key(conn, pr)
        told = set(self.inventory.get_value(CAPPED_KEY, []) or [])
        detail = f"{conn.service} has {cap} previews already (setting previews_per_parent)"
        if note not in told and self.github is not None:
            body = (f"havsh: no preview of `{conn.service}` for this pull request yet: it has "
                    f"{cap} previews already, the limit set by `previews_per_parent`. One "
                    "will be made here when another preview goes (its pull request closes).")
            try:
                self.github.repo(conn.repo).comment(pr.number, body)
            except GitHubError as exc:
                self.reporter.warning(f"GitHub: {exc}")
                result.errors.append(str(exc))
            else:
                self.inventory.update_value(
                    CAPPED_KEY, lambda v: sorted(set(v or []) | {note}), [])
                detail += "; said so on the pull request"
        result.actions.append(PreviewAction("capped", pr.key, parent=conn.service,
                                            sha=pr.head_sha, detail=detail))

    def _note_done(self, conn: RepoConnection, pr: PullInfo) -> None:
        note = _capped_key(conn, pr)
        if note in set(self.inventory.get_value(CAPPED_KEY, []) or []):
            self.inventory.update_value(CAPPED_KEY, lambda v: [n for n in v or [] if n != note],
                                        [])

    def _prune_notes(self, capped_now: set[str], wanted: dict, dismissed: dict) -> None:
        told = set(self.inventory.get_value(CAPPED_KEY, []) or [])
        open_keys = {_capped_key(c, p) for c, p in wanted.values()}
        stale = {n for n in told if n not in open_keys}
        if stale:
            self.inventory.update_value(CAPPED_KEY, lambda v: sorted(set(v or []) - stale), [])
        open_dismiss = {_dismiss_key(c, p) for c, p in wanted.values()}
        if any(k not in open_dismiss for k in dismissed):
            self.inventory.update_value(
                DISMISSED_KEY, lambda v: {k: x for k, x in (v or {}).items()
                                          if k in open_dismiss}, {})

    # -- by hand -----------------------------------------------------------------------------
    def create_one(self, parent: Service, repo: str, number: int) -> PassResult:
        """Create (or bring up to date) the preview of one PR now, by the same rules as a
        pass: the repository connected to ``parent`` with previews on, the PR open and based
        on the connected branch, forks only where allowed, the cap respected."""
        from havsh_tui.ops.repos import get_connection

        if self.github is None:
            raise OpsError("no GitHub login (`havsh github login` or GITHUB_TOKEN)")
        conn = get_connection(self.inventory, parent.host, parent.name, repo)
        if not conn.previews:
            raise OpsError(f"previews are off for {conn.repo} on {parent.name}: "
                           f"`havsh repo previews on {parent.name} {conn.repo}`")
        pr = self.github.repo(conn.repo).pull(number)
        if not pr.is_open:
            raise OpsError(f"{pr.key} is {'merged' if pr.merged else 'closed'}")
        if pr.base_ref != conn.branch:
            raise OpsError(f"{pr.key} targets {pr.base_ref}; {parent.name} follows "
                           f"{conn.branch}")
        if pr.is_fork and not conn.forks:
            raise OpsError(f"{pr.key} comes from a fork ({pr.head_repo or 'deleted'}); forks "
                           f"are off for {conn.repo} (`havsh repo previews on {parent.name} "
                           f"{conn.repo} --forks`)")
        result = PassResult()
        existing, _ = self._existing(result)
        key = (conn.host, conn.service, conn.repo.lower(), pr.number)
        cap = self.settings.previews_per_parent
        count = sum(1 for k in existing if (k[0], k[1]) == (conn.host, conn.service))
        if key not in existing and cap and count >= cap:
            raise OpsError(f"{parent.name} has {count} previews, the limit "
                           f"(previews_per_parent = {cap}); destroy one first")
        self.inventory.update_value(
            DISMISSED_KEY, lambda v: {k: x for k, x in (v or {}).items()
                                      if k != _dismiss_key(conn, pr)}, {})
        if key in existing:
            ex = existing[key]
            if ex.service is not None and ex.service.status is ServiceStatus.FAILED:
                self._set_meta(ex.host, ex.slug, retry_after=0)  # by hand: retry now
            self._maybe_update(ex, conn, pr, result)
            if not result.actions:
                result.actions.append(PreviewAction("kept", pr.key, ex.slug, ex.host,
                                                    ex.parent, pr.head_sha, "up to date"))
            return result
        self._create(conn, pr, result, wait=60)
        return result

    def destroy_one(self, service: Service, *, dismiss: bool = True) -> PassResult:
        """Destroy one preview now. While its PR stays at the same head, passes leave it
        destroyed (``dismiss``); a new push, or `havsh preview create`, brings it back."""
        if service.type is not ServiceType.PREVIEW:
            raise OpsError(f"{service.name} is not a preview")
        result = PassResult()
        ex = Existing(service.name, service.host, service.source,
                      service.source_host or service.host, service.pr or "",
                      service.head_sha, service, True)
        key = _key(ex.parent_host, ex.parent, ex.pr)
        if dismiss and key is not None and service.head_sha:
            mark = f"{ex.parent_host}/{ex.parent}|{ex.pr}"
            self.inventory.update_value(
                DISMISSED_KEY, lambda v: {**(v or {}), mark: service.head_sha}, {})
        self._destroy(ex, "destroyed by hand", result, wait=60)
        return result


def _dismiss_key(conn: RepoConnection, pr: PullInfo) -> str:
    return f"{conn.host}/{conn.service}|{pr.key}"


def _capped_key(conn: RepoConnection, pr: PullInfo) -> str:
    return f"{conn.host}/{conn.service}|{pr.key}"


def _secret_prefix(host: str, slug: str) -> str:
    from havsh_tui.core.secrets import service_prefix

    return service_prefix(host, slug)


def destroy_previews_of(inventory, secret_store, pool, conn: RepoConnection, *, gh=None,
                        reporter: Reporter | None = None, audit=None,
                        reason: str = "previews turned off", strict: bool = False) -> list[str]:
    """Destroy every preview of ``conn``'s repository made from ``conn``'s service (used when
    previews are turned off and when the repository is disconnected). Returns their slugs;
    ``strict`` raises when one could not be destroyed."""
    rec = Reconciler(inventory, secret_store, pool, gh, reporter=reporter, audit=audit)
    result = PassResult()
    existing, _ = rec._existing(result)
    done, failed = [], []
    for key, ex in sorted(existing.items()):
        if (key[0], key[1], key[2]) != (conn.host, conn.service, conn.repo.lower()):
            continue
        if rec._destroy(ex, reason, result, wait=60):
            done.append(ex.slug)
        else:
            failed.append(ex.slug)
    if failed and strict:
        raise OpsError(f"could not destroy the previews {', '.join(failed)} now "
                       f"({'; '.join(result.errors) or 'see above'}); the repository stays "
                       "connected with previews off, and the next reconcile pass retries")
    return done
