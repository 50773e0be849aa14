"""The preview reconciler's decisions, with fake hosts (the Docker objects of each host as a
dict of labels) and fake copy/deploy steps, against the local GitHub stand-in: what a pass
creates, updates, destroys, ignores and leaves alone, what it costs on GitHub, and what it
does when GitHub or a host does not answer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import docker.errors
import pytest

from havsh_tui.core import names
from havsh_tui.core.inventory import open_inventory
from havsh_tui.core.model import Host, Service, ServiceStatus, ServiceType
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.secrets import SecretStore
from havsh_tui.core.settings import Settings
from havsh_tui.github.addons import AddonsTree
from havsh_tui.github.client import GitHubConnection, connect
from havsh_tui.ops import preview as pv
from havsh_tui.ops import repos
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import RecordingReporter
from havsh_tui.ops.services import StepFailed, service_labels
from havsh_tui.remote.ssh import HostUnreachable
from tests.infra.github_standin import ALL_RIGHTS, GitHubStandin

REPO = "acme/addons"
OTHER = "acme/tools"


class FakeAPI:
    def __init__(self, world: World, host: str) -> None:
        self.world, self.host = world, host

    @property
    def objects(self) -> dict[str, dict[str, str]]:
        return self.world.objects.setdefault(self.host, {})

    def _check(self) -> None:
        if self.host in self.world.down:
            raise HostUnreachable(f"{self.host}: connection refused")

    def volumes(self, filters=None):
        self._check()
        return {"Volumes": [{"Name": names.volume_name(s), "Labels": dict(labels)}
                            for s, labels in self.objects.items()
                            if names.LABEL_PR in labels]}

    def containers(self, all=False, filters=None):  # noqa: A002 - docker's name
        self._check()
        return [{"Id": s, "Names": [f"/havsh-{s}"], "Labels": dict(labels)}
                for s, labels in self.objects.items() if names.LABEL_PR in labels]

    def inspect_container(self, name: str):
        self._check()
        slug = name.removeprefix("havsh-")
        if slug not in self.objects:
            raise docker.errors.NotFound(f"No such container: {name}")
        return {"Id": slug, "Config": {"Labels": dict(self.objects[slug]),
                                       "Image": "odoo:17.0"}, "State": {"Running": True}}


class FakeClient:
    def __init__(self, world: World, host: str) -> None:
        self.api = FakeAPI(world, host)


class FakeSession:
    def __init__(self, world: World, host: str) -> None:
        self.world, self.host = world, host

    def docker(self):
        if self.host in self.world.down:
            raise HostUnreachable(f"{self.host}: connection refused")
        return FakeClient(self.world, self.host)


class FakePool:
    def __init__(self, world: World) -> None:
        self.world = world

    def session(self, host: Host):
        return FakeSession(self.world, host.name)


@dataclass
class World:
    """The fake hosts and the calls the fake steps saw."""

    objects: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    copies: list[str] = field(default_factory=list)
    deploys: list[tuple[str, str, frozenset | None]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # head SHAs whose update fails


@pytest.fixture
def world(monkeypatch):
    w = World()

    def fake_copy(inventory, secret_store, pool, spec, reporter=None, audit=None,
                  service_type=ServiceType.COPY, pr=None, force_neutralize=False):
        assert service_type is ServiceType.PREVIEW and force_neutralize
        src = inventory.get_service(spec.source, host=spec.source_host)
        new = Service(name=spec.name, host=src.host, type=service_type,
                      odoo_version=src.odoo_version, image=src.image,
                      status=ServiceStatus.RUNNING, database=names.database_name(spec.name),
                      source=src.name, source_host=src.host, pr=pr)
        inventory.add_service(new)
        w.objects.setdefault(src.host, {})[spec.name] = service_labels(new)
        w.copies.append(spec.name)
        return new

    def fake_apply(session, secret_store, service, gh_repo, sha, *, touched, steps, **kw):
        assert kw["install_new"] and kw["recreate"] and not kw["rollback"]
        steps.run("update modules", lambda: _update(service, sha))
        w.deploys.append((service.name, sha, None if touched is None else frozenset(touched)))
        return AddonsTree(modules=["m"], done=True), repos.ModulePlan(), True

    def _update(service, sha):
        if sha in w.broken:
            raise StepFailed("update modules", "odoo exited 255",
                             "ERROR odoo.modules.module: Failed to load the manifest")
        w.objects[service.host][service.name] = service_labels(service)

    def fake_remove(client, slug):
        w.removed.append(slug)
        return [f"container havsh-{slug}"] if w.objects.get(client.api.host, {}).pop(
            slug, None) else []

    monkeypatch.setattr("havsh_tui.ops.copy.copy_service", fake_copy)
    monkeypatch.setattr(pv, "apply_commit", fake_apply)
    monkeypatch.setattr(pv, "copy_addons", lambda *a, **k: False)
    monkeypatch.setattr(pv, "psql", lambda *a, **k: "")
    monkeypatch.setattr(pv, "remove_service_objects", fake_remove)
    return w


@pytest.fixture
def gh():
    with GitHubStandin() as standin:
        standin.token = standin.add_token("acme")
        for repo in (REPO, OTHER):
            standin.create_repo(repo, {"m/__manifest__.py": "{}", "README.md": "x"})
        yield standin


@dataclass
class Setup:
    inventory: object
    secrets: SecretStore
    pool: FakePool
    world: World
    github: GitHubStandin
    client: object
    paths: AppPaths
    now: list[float] = field(default_factory=lambda: [1000.0])

    def reconciler(self, **settings) -> pv.Reconciler:
        return pv.Reconciler(self.inventory, self.secrets, self.pool, self.client,
                             settings=Settings(**settings), lock_dir=self.paths.home / "locks",
                             reporter=RecordingReporter(), clock=lambda: self.now[0])

    def connect(self, repo: str = REPO, service: str = "erp", host: str = "hosta",
                **kw) -> repos.RepoConnection:
        conn = repos.RepoConnection(host=host, service=service, repo=repo,
                                    branch=kw.pop("branch", "main"), previews=True,
                                    deployed_sha=self.github.branch_sha(repo, "main"), **kw)
        repos._modify(self.inventory, lambda conns: [*conns, conn])
        return conn

    def open(self, head: str, repo: str = REPO, **kw) -> int:
        return self.github.open_pr(repo, head, title=f"PR {head}",
                                   changes={f"m/{head}.py": head}, **kw)

    def previews(self, *, live: bool = True) -> dict[str, Service]:
        return {s.name: s for s in pv.list_previews(self.inventory)
                if not live or s.status is not ServiceStatus.DESTROYED}

    def on_host(self, host: str = "hosta") -> dict[str, dict[str, str]]:
        return self.world.objects.get(host, {})


@pytest.fixture
def env(tmp_path, world, gh):
    paths = AppPaths(home=tmp_path).ensure()
    inv = open_inventory(paths)
    for name in ("hosta", "hostb"):
        inv.add_host(Host(name=name, address=f"{name}.invalid"))
    inv.add_service(Service(name="erp", host="hosta", type=ServiceType.LIVE,
                            odoo_version="17.0", image="odoo:17.0",
                            status=ServiceStatus.RUNNING, database="erp"))
    client = connect(GitHubConnection(gh.api_url, gh.token, "GITHUB_TOKEN"), throttle=False)
    yield Setup(inv, SecretStore(paths.secrets), FakePool(world), world, gh, client, paths)
    client.close()


def actions(result) -> list[tuple[str, str]]:
    return sorted((a.action, a.pr) for a in result.actions)


def statuses(gh, dep_id: int) -> list[str]:
    return [s["state"] for s in gh.statuses(REPO, dep_id)]


# -- the happy path and its cost --------------------------------------------------------------


def test_create_update_destroy_and_the_cost_of_a_quiet_pass(env):
    env.connect()
    n = env.open("feat")
    head1 = env.github.pr_head(REPO, n)
    rec = env.reconciler()
    assert actions(rec.reconcile()) == [("created", f"{REPO}#{n}")]
    s = env.previews()["erp-pr1"]
    assert (s.status, s.head_sha, s.pr_title, s.pr_branch, s.source) == (
        ServiceStatus.RUNNING, head1, "PR feat", "feat", "erp")
    assert env.on_host()["erp-pr1"][pv.LABEL_HEAD] == head1
    # The modules to update come from compare(parent's deployed SHA, head).
    assert env.world.deploys == [("erp-pr1", head1, frozenset({"m"}))]
    (dep,) = env.github.deployments(REPO, "preview/pr-1")
    assert statuses(env.github, dep.id) == ["in_progress", "success"]
    assert env.github.statuses(REPO, dep.id)[-1]["environment_url"] == s.url

    # Nothing changed: one request per repository with previews on, nothing done.
    for repos_on, expected in ((1, 1), (2, 2)):
        if repos_on == 2:
            env.connect(OTHER)
        mark = env.github.mark()
        result = rec.reconcile()
        assert result.actions == [] and result.errors == []
        assert len(env.github.requests_since(mark)) == expected

    # Push: an update from the previous head, a new deployment, the old one inactive.
    head2 = env.github.push(REPO, n, {"m/other.py": "x"})
    assert actions(rec.reconcile()) == [("updated", f"{REPO}#{n}")]
    assert env.world.deploys[-1] == ("erp-pr1", head2, frozenset({"m"}))
    assert env.previews()["erp-pr1"].head_sha == head2
    new, old = env.github.deployments(REPO, "preview/pr-1")
    assert (new.sha, statuses(env.github, new.id)) == (head2, ["in_progress", "success"])
    assert statuses(env.github, old.id)[-1] == "inactive"

    # Close: destroyed; the row stays as history; the deployment inactive.
    env.github.close_pr(REPO, n)
    assert actions(rec.reconcile()) == [("destroyed", f"{REPO}#{n}")]
    assert "erp-pr1" not in env.on_host() and env.previews() == {}
    assert env.previews(live=False)["erp-pr1"].status is ServiceStatus.DESTROYED
    assert statuses(env.github, new.id)[-1] == "inactive"
    assert rec.meta("hosta", "erp-pr1") == {}
    # Reopened: made again under the same name.
    env.github.reopen_pr(REPO, n)
    assert actions(rec.reconcile()) == [("created", f"{REPO}#{n}")]
    assert env.world.copies == ["erp-pr1", "erp-pr1"]


def test_many_open_prs_cost_one_request_per_hundred(env):
    env.connect()
    env.open("b0")
    env.github.commit(REPO, "elsewhere", {"y": "1"})
    for i in range(1, 130):  # based on another branch: listed, but not previewed
        env.github.open_pr(REPO, f"b{i}", base="elsewhere", changes={"x": str(i)})
    rec = env.reconciler()
    rec.reconcile()
    mark = env.github.mark()
    result = rec.reconcile()
    assert result.pulls == 130 and result.actions == []
    assert len(env.github.requests_since(mark)) == 2


# -- which PRs get a preview ------------------------------------------------------------------


def test_forks_off_by_default_other_bases_ignored_retarget_destroys(env):
    conn = env.connect()
    fork = env.github.fork(REPO, "mallory")
    env.github.commit(fork, "evil", {"m/evil.py": "boom"})
    f = env.github.open_pr(REPO, "evil", head_repo=fork)
    env.github.commit(REPO, "stable", {"s": "1"})
    other_base = env.open("for-stable", base="stable")
    ok = env.open("feat")
    rec = env.reconciler()
    result = rec.reconcile()
    assert actions(result) == [("created", f"{REPO}#{ok}"), ("ignored", f"{REPO}#{f}")]
    assert "forks are off" in next(a.detail for a in result.actions if a.action == "ignored")
    assert set(env.previews()) == {f"erp-pr{ok}"}
    assert other_base not in {s.pr for s in env.previews().values()}
    repos.update_connection(env.inventory, conn, forks=True)
    assert actions(rec.reconcile()) == [("created", f"{REPO}#{f}")]
    # A PR retargeted to another branch loses its preview.
    env.github.retarget_pr(REPO, ok, "stable")
    result = rec.reconcile()
    assert actions(result) == [("destroyed", f"{REPO}#{ok}")]
    assert "now targets stable" in result.actions[0].detail


def test_cap_per_parent_with_one_comment(env):
    env.connect()
    a, b, c = env.open("a"), env.open("b"), env.open("c")
    rec = env.reconciler(previews_per_parent=2)
    result = rec.reconcile()
    assert actions(result) == [("capped", f"{REPO}#{c}"), ("created", f"{REPO}#{a}"),
                               ("created", f"{REPO}#{b}")]
    rec.reconcile()
    (comment,) = env.github.comments(REPO, c)
    assert "previews_per_parent" in comment["body"] and "`erp`" in comment["body"]
    assert env.github.comments(REPO, a) == []
    env.github.close_pr(REPO, a)
    result = rec.reconcile()
    assert actions(result) == [("created", f"{REPO}#{c}"), ("destroyed", f"{REPO}#{a}")]
    assert env.inventory.get_value(pv.CAPPED_KEY) == []
    assert len(env.github.comments(REPO, c)) == 1


def test_two_repositories_with_the_same_pr_number(env):
    env.connect()
    env.connect(OTHER)
    n1, n2 = env.open("x"), env.open("y", repo=OTHER)
    assert n1 == n2 == 1
    env.reconciler().reconcile()
    got = {s.pr: s.name for s in env.previews().values()}
    assert got == {f"{REPO}#1": "erp-pr1", f"{OTHER}#1": "erp-tools-pr1"}


# -- when something does not answer -----------------------------------------------------------


def test_github_errors_and_no_login_destroy_nothing(env):
    env.connect()
    n = env.open("feat")
    env.reconciler().reconcile()
    env.github.close_pr(REPO, n)
    env.github.tokens[env.github.token].rights = ALL_RIGHTS - {"pull_requests:read"}
    result = env.reconciler().reconcile()
    assert result.actions == [] and "Pull requests: read" in result.errors[0]
    rec = env.reconciler()
    rec.github = None
    result = rec.reconcile()
    assert result.actions == [] and "no GitHub login" in result.errors[0]
    assert set(env.previews()) == {"erp-pr1"} and "erp-pr1" in env.on_host()
    env.github.tokens[env.github.token].rights = ALL_RIGHTS
    assert actions(env.reconciler().reconcile()) == [("destroyed", f"{REPO}#{n}")]


def test_an_unreachable_host_is_left_alone(env):
    env.connect()
    n = env.open("feat")
    env.reconciler().reconcile()
    env.github.close_pr(REPO, n)
    env.world.down.add("hosta")
    result = env.reconciler().reconcile()
    assert [a.action for a in result.actions] == ["skipped"]
    assert "unreachable" in result.actions[0].detail and "hosta" in result.errors[0]
    assert env.previews()["erp-pr1"].status is ServiceStatus.RUNNING
    env.world.down.clear()
    assert actions(env.reconciler().reconcile()) == [("destroyed", f"{REPO}#{n}")]


def test_failed_retried_next_pass_then_backs_off_until_a_push(env):
    env.connect()
    n = env.open("feat")
    env.world.broken.add(env.github.pr_head(REPO, n))
    rec = env.reconciler()
    result = rec.reconcile()
    assert actions(result) == [("failed", f"{REPO}#{n}")]
    s = env.previews()["erp-pr1"]
    assert s.status is ServiceStatus.FAILED and s.failed_step == "update modules"
    assert "Failed to load the manifest" in s.last_error
    (dep,) = env.github.deployments(REPO, "preview/pr-1")
    assert statuses(env.github, dep.id) == ["in_progress", "failure"]
    # Retried on the next pass (in place: the copy is whole), with the same deployment.
    assert actions(rec.reconcile()) == [("failed", f"{REPO}#{n}")]
    assert env.world.copies == ["erp-pr1"]
    # Then it waits 60 s, 120 s...
    result = rec.reconcile()
    assert [a.action for a in result.actions] == ["skipped"]
    assert "next retry in 60 s" in result.actions[0].detail
    env.now[0] += 61
    assert actions(rec.reconcile()) == [("failed", f"{REPO}#{n}")]
    assert "next retry in 120 s" in rec.reconcile().actions[0].detail
    # ...but a push is retried at once.
    head2 = env.github.push(REPO, n, {"m/fix.py": "fixed"})
    assert actions(rec.reconcile()) == [("updated", f"{REPO}#{n}")]
    s = env.previews()["erp-pr1"]
    assert (s.status, s.head_sha, s.last_error) == (ServiceStatus.RUNNING, head2, None)
    assert rec.meta("hosta", "erp-pr1")["failures"] == 0
    assert len(env.github.deployments(REPO, "preview/pr-1")) == 2


def test_a_failed_copy_is_made_again(env, monkeypatch):
    env.connect()
    n = env.open("feat")
    real_copy = __import__("havsh_tui.ops.copy", fromlist=["copy_service"]).copy_service

    def failing_copy(inventory, *a, **kw):
        spec = a[2]
        inventory.add_service(Service(name=spec.name, host="hosta", type=ServiceType.PREVIEW,
                                      odoo_version="17.0", image="odoo:17.0",
                                      status=ServiceStatus.FAILED, pr=f"{REPO}#{n}",
                                      source="erp", source_host="hosta",
                                      failed_step="copy database"))
        raise StepFailed("copy database", "pg_restore exited 1")

    monkeypatch.setattr("havsh_tui.ops.copy.copy_service", failing_copy)
    rec = env.reconciler()
    result = rec.reconcile()
    assert actions(result) == [("failed", f"{REPO}#{n}")]
    assert env.previews()["erp-pr1"].head_sha == env.github.pr_head(REPO, n)
    monkeypatch.setattr("havsh_tui.ops.copy.copy_service", real_copy)
    assert actions(rec.reconcile()) == [("created", f"{REPO}#{n}")]
    assert env.previews()["erp-pr1"].status is ServiceStatus.RUNNING


# -- orphans ----------------------------------------------------------------------------------


def _labels(slug: str, pr: str, parent: str = "erp", head: str = "0" * 40) -> dict:
    s = Service(name=slug, host="hosta", type=ServiceType.PREVIEW, odoo_version="17.0",
                image="odoo:17.0", source=parent, source_host="hosta", pr=pr, head_sha=head)
    return service_labels(s)


def test_orphans_found_by_labels(env):
    env.connect()
    closed = env.open("gone")
    env.github.close_pr(REPO, closed)
    foreign_open = env.open("foreign", repo=OTHER)  # OTHER is not connected here
    foreign_closed = env.open("foreign2", repo=OTHER)
    env.github.close_pr(OTHER, foreign_closed)
    host = env.world.objects.setdefault("hosta", {})
    host["erp-pr1"] = _labels("erp-pr1", f"{REPO}#{closed}")
    host["erp-tools-pr1"] = _labels("erp-tools-pr1", f"{OTHER}#{foreign_open}")
    host["erp-tools-pr2"] = _labels("erp-tools-pr2", f"{OTHER}#{foreign_closed}")
    host["live-thing"] = {names.LABEL_MANAGED: "1", names.LABEL_SERVICE: "live-thing"}
    result = env.reconciler().reconcile()
    assert actions(result) == [("destroyed", f"{REPO}#{closed}"),
                               ("destroyed", f"{OTHER}#{foreign_closed}"),
                               ("kept", f"{OTHER}#{foreign_open}")]
    assert set(env.on_host()) == {"erp-tools-pr1", "live-thing"}
    # Labels of a preview whose row says Destroyed: leftovers of a half-done removal.
    env.inventory.add_service(Service(name="erp-pr9", host="hosta", type=ServiceType.PREVIEW,
                                      odoo_version="17.0", image="x",
                                      status=ServiceStatus.DESTROYED, pr=f"{REPO}#9",
                                      source="erp", source_host="hosta"))
    host["erp-pr9"] = _labels("erp-pr9", f"{REPO}#9")
    result = env.reconciler().reconcile()
    assert ("destroyed", f"{REPO}#9") in actions(result) and "erp-pr9" not in env.on_host()


def test_a_preview_the_inventory_lost_is_adopted_and_updated(env):
    env.connect()
    n = env.open("feat")
    rec = env.reconciler()
    rec.reconcile()
    env.inventory.remove_service("hosta", "erp-pr1")
    rec._drop_meta("hosta", "erp-pr1")
    env.github.push(REPO, n, {"m/2.py": "2"})
    assert actions(rec.reconcile()) == [("updated", f"{REPO}#{n}")]
    assert env.world.copies == ["erp-pr1"]  # updated in place, not copied again
    assert env.previews()["erp-pr1"].status is ServiceStatus.RUNNING


# -- by hand, and the switches ----------------------------------------------------------------


def test_by_hand_rules_destroy_sticks_until_a_push(env):
    conn = env.connect()
    n = env.open("feat")
    rec = env.reconciler()
    parent = env.inventory.get_service("erp", host="hosta")
    result = rec.create_one(parent, REPO, n)
    assert [a.action for a in result.actions] == ["created"]
    assert [a.action for a in rec.create_one(parent, REPO, n).actions] == ["kept"]
    rec.destroy_one(env.previews()["erp-pr1"])
    result = rec.reconcile()
    assert [a.action for a in result.actions] == ["skipped"]
    assert "destroyed by hand" in result.actions[0].detail and env.previews() == {}
    env.github.push(REPO, n, {"m/3.py": "3"})
    assert actions(rec.reconcile()) == [("created", f"{REPO}#{n}")]
    # The rules of a pass apply by hand too.
    env.github.close_pr(REPO, n)
    with pytest.raises(OpsError, match="is closed"):
        rec.create_one(parent, REPO, n)
    fork = env.github.fork(REPO, "mallory")
    env.github.commit(fork, "evil", {"e": "1"})
    f = env.github.open_pr(REPO, "evil", head_repo=fork)
    with pytest.raises(OpsError, match="from a fork"):
        rec.create_one(parent, REPO, f)
    repos.update_connection(env.inventory, conn, previews=False)
    with pytest.raises(OpsError, match="previews are off"):
        rec.create_one(parent, REPO, f)


def test_previews_off_and_disconnect_destroy_their_previews(env):
    env.connect()
    env.connect(OTHER)
    a, b = env.open("a"), env.open("b", repo=OTHER)
    env.reconciler().reconcile()
    assert len(env.previews()) == 2
    parent = env.inventory.get_service("erp", host="hosta")
    repos.set_previews(env.inventory, env.secrets, env.pool, parent, REPO, enabled=False,
                       gh=env.client)
    assert {s.pr for s in env.previews().values()} == {f"{OTHER}#{b}"}
    (dep,) = env.github.deployments(REPO, f"preview/pr-{a}")
    assert statuses(env.github, dep.id)[-1] == "inactive"
    assert env.reconciler().reconcile().actions == []  # off: not made again
    removed = repos.disconnect_repo(env.inventory, env.secrets, env.pool, parent, OTHER,
                                    gh=env.client)
    assert removed == [f"preview erp-tools-pr{b}"]
    assert env.previews() == {}
    assert [c.repo for c in repos.list_connections(env.inventory)] == [REPO]
    # A host that cannot be reached: the connection stays, with previews off.
    repos.set_previews(env.inventory, env.secrets, env.pool, parent, REPO, enabled=True)
    env.reconciler().reconcile()
    env.world.down.add("hosta")
    with pytest.raises(OpsError, match="could not destroy"):
        repos.disconnect_repo(env.inventory, env.secrets, env.pool, parent, REPO,
                              gh=env.client)
    (conn,) = repos.list_connections(env.inventory)
    assert conn.previews is False


def test_watch_survives_a_failing_pass(env, monkeypatch):
    rec = env.reconciler()
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return pv.PassResult()

    monkeypatch.setattr(rec, "reconcile", flaky)
    seen = []
    assert rec.watch(0.01, on_pass=seen.append, max_passes=3) == 3
    assert "boom" in seen[0].errors[0] and seen[1].errors == []
    stop = threading.Event()
    stop.set()
    assert rec.watch(60, stop) == 0


def test_preview_keys_and_names():
    assert pv.parse_pr("acme/addons#12") == ("acme/addons", 12)
    assert pv.parse_pr("acme/addons") is None and pv.parse_pr(None) is None
    assert pv.environment(7) == "preview/pr-7"
    assert repos.repo_key("OCA/web") == "OCA__web"
    s = Service(name="erp-pr1", host="h", type=ServiceType.PREVIEW, odoo_version="17.0",
                image="x")
    assert pv.preview_url(s) == "http://havsh-erp-pr1:8069"
    s.url = "https://erp-pr1.example.com"
    assert pv.preview_url(s) == "https://erp-pr1.example.com"


def test_cli_watch_runs_passes_and_stops_cleanly_on_sigterm(tmp_path):
    """`havsh preview watch` under a service manager: one JSON line per pass, and SIGTERM
    ends it after the pass in progress with exit status 0."""
    import json
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "HAVSH_HOME": str(tmp_path), "GITHUB_TOKEN": "",
           "GITHUB_API_URL": ""}
    argv = [sys.executable, "-m", "havsh_tui", "preview", "watch", "--json"]
    done = subprocess.run([*argv, "--interval", "1", "--passes", "2"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    passes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [p["event"] for p in passes] == ["pass", "pass"] and passes[0]["errors"] == []
    proc = subprocess.Popen([*argv, "--interval", "600"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert json.loads(first)["event"] == "pass"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_destroyed_previews_are_forgotten_after_the_history_days(env):
    from datetime import timedelta

    env.connect()
    a, b = env.open("old"), env.open("new")
    rec = env.reconciler(preview_history_days=14)
    rec.reconcile()
    env.github.close_pr(REPO, a)
    env.github.close_pr(REPO, b)
    rec.reconcile()
    assert {s.status for s in env.previews(live=False).values()} == {ServiceStatus.DESTROYED}
    # One was destroyed 15 days ago, the other 13.
    for n, age in ((a, 15), (b, 13)):
        s = env.previews(live=False)[f"erp-pr{n}"]
        s.updated_at = s.updated_at - timedelta(days=age)
        env.inventory.upsert_service(s)
    rec.reconcile()
    assert sorted(env.previews(live=False)) == [f"erp-pr{b}"]
    # 0 keeps them all; the parent and other types are never touched.
    env.reconciler(preview_history_days=0).reconcile()
    env.reconciler(preview_history_days=1).reconcile()
    assert sorted(env.previews(live=False)) == []
    assert [s.name for s in env.inventory.list_services()] == ["erp"]
