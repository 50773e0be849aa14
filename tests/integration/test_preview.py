"""Previews of GitHub pull requests, on the real testbed with the stand-in Odoo, against the
local GitHub stand-in (tests/infra/github_standin.py).

One parent per module: a Demo service `pv-erp` on host A (demo data: an active mail server,
so a copy that was not neutralized would send mail), with the repository acme/pv-addons
connected, deployed and its module pv_base installed. Each test opens its own pull requests
and closes them again at the end, then checks that a pass leaves no preview behind.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from havsh_tui.core.model import Host, ServiceStatus, ServiceType
from havsh_tui.core.settings import Settings
from havsh_tui.ops.reporter import RecordingReporter
from tests.infra.github_standin import ALL_RIGHTS, GitHubStandin
from tests.integration.conftest import _host, wipe_service

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("preview")]

PARENT = "pv-erp"
REPO = "acme/pv-addons"
HOST = "hosta"
SLUGS = [PARENT, *(f"{PARENT}-pr{n}" for n in range(1, 40))]


def manifest(name: str, version: str = "1.0", depends: tuple[str, ...] = ("base",)) -> str:
    return (f"{{'name': {name!r}, 'version': {version!r}, 'depends': {list(depends)!r}, "
            "'license': 'LGPL-3', 'data': []}\n")


@dataclass
class Env:
    home: Path
    paths: object
    inventory: object
    pool: object
    secrets: object
    hosts: dict[str, Host]
    testbed: object
    github: GitHubStandin
    token: str
    gh: object
    parent: object = None
    opened: list[int] = field(default_factory=list)

    def client(self, host: str = HOST):
        return self.pool.session(self.hosts[host]).docker()

    def local(self, host: str = HOST) -> docker.DockerClient:
        """The engine's own socket: inspection only (labels, leftovers)."""
        sock = self.testbed.hosts[host].docker_socket
        return docker.DockerClient(base_url=f"unix://{sock}", version="1.41")

    def sql(self, query: str, database: str = "postgres", host: str = HOST) -> list[list[str]]:
        from havsh_tui.ops.bootstrap import psql

        out = psql(self.client(host), query, database=database)
        return [line.split("|") for line in out.splitlines() if line]

    def reconciler(self, reporter=None, **settings):
        from havsh_tui.ops.preview import Reconciler

        return Reconciler(self.inventory, self.secrets, self.pool, self.gh,
                          settings=Settings(**settings), lock_dir=self.paths.data_dir / "locks",
                          reporter=reporter or RecordingReporter())

    def open_pr(self, head: str, changes: dict, title: str = "A change", **kw) -> int:
        n = self.github.open_pr(REPO, head, title=title, changes=changes, **kw)
        self.opened.append(n)
        return n

    def preview(self, n: int):
        from havsh_tui.ops.preview import list_previews

        found = [s for s in list_previews(self.inventory) if s.pr == f"{REPO}#{n}"]
        assert len(found) <= 1, found
        return found[0] if found else None

    def leftovers(self, slug: str, host: str = HOST):
        c = self.local(host)
        try:
            containers = [x.name for x in c.containers.list(
                all=True, filters={"label": f"sh.hav.service={slug}"})]
            volumes = [v.name for v in c.volumes.list() if v.name.startswith(f"havsh-{slug}-")]
        finally:
            c.close()
        db = slug.replace("-", "_")
        dbs = self.sql(f"SELECT datname FROM pg_database WHERE datname = '{db}';", host=host)
        roles = self.sql(f"SELECT rolname FROM pg_roles WHERE rolname = 'havsh_{db}';",
                         host=host)
        return containers + volumes + [r[0] for r in dbs + roles]

    def cli(self, *args: str, input: str | None = None, **env):
        from havsh_tui.cli import cli

        full_env = {"HAVSH_HOME": str(self.home), "HAVSH_SSH_CONFIG": "", "GITHUB_TOKEN": "",
                    "GITHUB_API_URL": "", **env}
        return CliRunner().invoke(cli, list(args), env=full_env, input=input,
                                  catch_exceptions=False)


def _wipe(testbed) -> None:
    for h in testbed.hosts.values():
        for slug in SLUGS:
            wipe_service(h.docker_socket, slug)


@pytest.fixture(scope="module")
def env(testbed, tmp_path_factory):
    from havsh_tui.core.inventory import open_inventory
    from havsh_tui.core.paths import AppPaths
    from havsh_tui.core.secrets import SecretStore
    from havsh_tui.github.client import GitHubConnection, connect
    from havsh_tui.ops import repos
    from havsh_tui.ops.services import CreateSpec, create_service, wait_healthy
    from havsh_tui.remote.hosts import HostPool, SSHOptions

    _wipe(testbed)
    home = tmp_path_factory.mktemp("pv-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAVSH_HOME", str(home))
        paths = AppPaths.from_env().ensure()
    shutil.copy(testbed.hosts["hosta"].known_hosts, paths.known_hosts)
    paths.known_hosts.chmod(0o600)
    opts = SSHOptions(known_hosts=paths.known_hosts, ssh_config=None, connect_timeout=5.0,
                      command_timeout=120.0, system_known_hosts=False)
    pool = HostPool(opts)
    inventory = open_inventory(paths)
    hosts = {}
    for name in ("hosta", "hostb"):
        hosts[name] = _host(testbed.hosts[name], name, postgres="havsh-test/postgres:15",
                            odoo="havsh-test/odoo:17.0")
        inventory.add_host(hosts[name])
    secrets = SecretStore(paths.secrets)
    standin = GitHubStandin().start()
    token = standin.add_token("acme")
    standin.create_repo(REPO, {
        "README.md": "PV addons\n",
        "pv_base/__manifest__.py": manifest("PV Base"),
        "pv_base/__init__.py": "",
        ".github/workflows/ci.yml": "on: push\n",
    })
    gh = connect(GitHubConnection(standin.api_url, token, "GITHUB_TOKEN"), throttle=False)
    e = Env(home, paths, inventory, pool, secrets, hosts, testbed, standin, token, gh)
    try:
        parent = create_service(inventory, secrets, pool, CreateSpec(
            name=PARENT, host=HOST, type=ServiceType.DEMO, odoo_version="17.0",
            image="havsh-test/odoo:17.0")).service
        conn, result = repos.connect_repo(inventory, secrets, pool, gh, parent, REPO)
        assert result is not None and result.modules == ["pv_base"]
        # Install pv_base in the parent, the way havsh runs any module update.
        client = e.client()
        cname = f"havsh-{PARENT}"
        conf = repos.current_conf(client, cname)
        client.api.stop(cname, timeout=30)
        repos.run_module_update(client, parent, repos.db_password(secrets, parent), conf,
                                repos.ModulePlan(install=["pv_base"]), RecordingReporter())
        client.api.start(cname)
        wait_healthy(pool.session(hosts[HOST]), parent, RecordingReporter())
        repos.set_previews(inventory, secrets, pool, parent, REPO, enabled=True, gh=gh)
        e.parent = inventory.get_service(PARENT, host=HOST)
        yield e
    finally:
        gh.close()
        standin.stop()
        pool.close()
        _wipe(testbed)


@pytest.fixture
def pv(env):
    """The module's env; at the end every PR the test opened is closed and one pass must
    leave none of their previews behind."""
    yield env
    for n in env.opened:
        pr = env.github.pulls[REPO].get(n)
        if pr is not None and pr.state == "open":
            env.github.close_pr(REPO, n)
    env.reconciler().reconcile()
    for n in env.opened:
        s = env.preview(n)
        if s is not None:
            assert s.status is ServiceStatus.DESTROYED, (s.name, s.status, s.last_error)
            assert env.leftovers(s.name) == []
    env.opened.clear()


class StatusWatch(RecordingReporter):
    """Records the inventory status of the preview slugs at every step."""

    def __init__(self, inventory) -> None:
        super().__init__()
        self.inventory = inventory
        self.seen: dict[str, list[ServiceStatus]] = {}

    def step(self, name: str, state: str, detail: str = "") -> None:
        super().step(name, state, detail)
        for s in self.inventory.list_services(host=HOST):
            if s.type is ServiceType.PREVIEW:
                seen = self.seen.setdefault(s.name, [])
                if not seen or seen[-1] is not s.status:
                    seen.append(s.status)


def _module(env, database: str, name: str) -> list[list[str]]:
    return env.sql(f"SELECT state, latest_version FROM ir_module_module WHERE name = '{name}';",
                   database)


def _mail_count(env, database: str) -> int:
    return int(env.sql("SELECT count(*) FROM mail_mail_sent;", database)[0][0])


def _statuses(env, dep_id: int) -> list[str]:
    return [s["state"] for s in env.github.statuses(REPO, dep_id)]


def test_open_push_close(pv):
    from havsh_tui.ops.services import check_neutralized

    env = pv
    n = env.open_pr("feature-x", {
        "pv_feature/__manifest__.py": manifest("PV Feature", "1.0", ("pv_base",)),
        "pv_feature/__init__.py": "",
        "pv_feature/models/__init__.py": "",
    }, title="Add pv_feature")
    head1 = env.github.pr_head(REPO, n)
    watch = StatusWatch(env.inventory)
    result = env.reconciler(watch).reconcile()
    assert [a.action for a in result.actions] == ["created"], result.to_dict()
    slug = f"{PARENT}-pr{n}"
    s = env.preview(n)
    assert (s.name, s.host, s.source, s.type) == (slug, HOST, PARENT, ServiceType.PREVIEW)
    assert s.status is ServiceStatus.RUNNING and s.status_label == "Active"
    assert (s.head_sha, s.pr_title, s.pr_branch) == (head1, "Add pv_feature", "feature-x")
    assert watch.seen[slug][0] is ServiceStatus.CREATING
    assert watch.seen[slug][-1] is ServiceStatus.RUNNING

    # Labelled with its PR and head; the addons volume mounted.
    c = env.local()
    try:
        attrs = c.api.inspect_container(f"havsh-{slug}")
    finally:
        c.close()
    labels = attrs["Config"]["Labels"]
    assert labels["sh.hav.pr"] == f"{REPO}#{n}"
    assert labels["sh.hav.head"] == head1
    assert labels["sh.hav.type"] == "preview" and labels["sh.hav.source"] == PARENT
    assert any(m.get("Name") == f"havsh-{slug}-addons" and m["Destination"] ==
               "/mnt/extra-addons" for m in attrs["Mounts"])

    # Neutralized, verified; its copy of the mail log does not grow while the parent's does.
    db = slug.replace("-", "_")
    assert check_neutralized(env.client(), db).ok
    sent_before, parent_before = _mail_count(env, db), _mail_count(env, "pv_erp")
    time.sleep(12)  # more than two runs of the stand-in's mail cron (every 5 s)
    assert _mail_count(env, db) == sent_before
    assert _mail_count(env, "pv_erp") > parent_before

    # The PR's module installed at the head (its manifest's version); the parent's copied.
    assert _module(env, db, "pv_feature") == [["installed", "17.0.1.0"]]
    assert _module(env, db, "pv_base") == _module(env, "pv_erp", "pv_base") != []
    assert _module(env, "pv_erp", "pv_feature") in ([], [["uninstalled", ""]])

    # One transient, non-production deployment with in_progress then success and the URL.
    (dep,) = env.github.deployments(REPO, f"preview/pr-{n}")
    assert dep.sha == head1 and dep.transient_environment and not dep.production_environment
    assert _statuses(env, dep.id) == ["in_progress", "success"]
    assert env.github.statuses(REPO, dep.id)[-1]["environment_url"] == s.url != ""
    assert env.sql("SELECT value FROM ir_config_parameter WHERE key = 'web.base.url';",
                   db) == [[s.url]]

    # Nothing changed: a pass costs one GitHub request (the PR list) and does nothing.
    mark = env.github.mark()
    again = env.reconciler().reconcile()
    requests = env.github.requests_since(mark)
    assert again.actions == [] and not again.errors
    assert [(r.method, r.path) for r in requests] == [("GET", f"/api/v3/repos/{REPO}/pulls")]
    print(f"\nGitHub requests for an unchanged pass, 1 repository: {len(requests)}; "
          f"create pass {result.seconds:.1f} s, unchanged pass {again.seconds:.2f} s")

    # Push: Updating, then Active at the new SHA with the changed module updated.
    head2 = env.github.push(REPO, n, {
        "pv_feature/__manifest__.py": manifest("PV Feature", "1.1", ("pv_base",))})
    watch = StatusWatch(env.inventory)
    result = env.reconciler(watch).reconcile()
    assert [a.action for a in result.actions] == ["updated"], result.to_dict()
    print(f"update pass {result.seconds:.1f} s")
    assert ServiceStatus.UPDATING in watch.seen[slug]
    s = env.preview(n)
    assert s.status is ServiceStatus.RUNNING and s.head_sha == head2
    assert _module(env, db, "pv_feature") == [["installed", "17.0.1.1"]]
    assert check_neutralized(env.client(), db).ok
    assert dict(watch.steps()).get("update modules") == "done"
    c = env.local()
    try:
        assert c.api.inspect_container(f"havsh-{slug}")["Config"]["Labels"][
            "sh.hav.head"] == head2
    finally:
        c.close()
    new, old = env.github.deployments(REPO, f"preview/pr-{n}")
    assert (new.sha, old.sha) == (head2, head1)
    assert _statuses(env, new.id) == ["in_progress", "success"]
    assert _statuses(env, old.id)[-1] == "inactive"

    # Close: Destroyed, nothing left on the host, the deployment inactive, the row kept.
    env.github.close_pr(REPO, n, merged=True)
    result = env.reconciler().reconcile()
    assert [a.action for a in result.actions] == ["destroyed"], result.to_dict()
    print(f"destroy pass {result.seconds:.1f} s")
    s = env.preview(n)
    assert s.status is ServiceStatus.DESTROYED
    assert env.leftovers(slug) == []
    assert _statuses(env, new.id)[-1] == "inactive"
    assert env.secrets.keys() == [k for k in env.secrets.keys() if f"/{slug}/" not in k]


def test_closed_while_no_reconciler_runs_orphans_destroyed(pv):
    env = pv
    a = env.open_pr("orphan-a", {"pv_a/__manifest__.py": manifest("PV A")}, title="A")
    b = env.open_pr("orphan-b", {"pv_b/__manifest__.py": manifest("PV B")}, title="B")
    result = env.reconciler().reconcile()
    assert sorted(x.action for x in result.actions) == ["created", "created"], result.to_dict()
    slug_a, slug_b = env.preview(a).name, env.preview(b).name
    # No reconciler runs while both PRs close. B's preview is also lost from the inventory
    # (another laptop made it, or the inventory was reset): only its labels are left.
    env.github.close_pr(REPO, a)
    env.github.close_pr(REPO, b, merged=True)
    env.inventory.remove_service(HOST, slug_b)
    rec = env.reconciler()
    rec._drop_meta(HOST, slug_b)
    result = rec.reconcile()
    done = {x.preview: x for x in result.actions}
    assert {x.action for x in result.actions} == {"destroyed"}, result.to_dict()
    assert set(done) == {slug_a, slug_b}
    assert env.leftovers(slug_a) == [] and env.leftovers(slug_b) == []
    assert env.preview(a).status is ServiceStatus.DESTROYED
    assert env.preview(b) is None  # it had no row; the operation is in the history
    assert any(op.get("kind") == "preview.destroy" for op in
               env.inventory.list_operations(service=slug_b, host=HOST))
    # Both deployments inactive: B's found on GitHub by its payload.
    for n in (a, b):
        (dep,) = env.github.deployments(REPO, f"preview/pr-{n}")
        assert _statuses(env, dep.id)[-1] == "inactive"


def test_fork_ignored_broken_manifest_fails_then_a_push_fixes_it(pv):
    env = pv
    fork = env.github.fork(REPO, "mallory")
    env.github.commit(fork, "evil", {"pv_evil/__manifest__.py": manifest("Evil")})
    forked = env.github.open_pr(REPO, "evil", head_repo=fork, title="From a fork")
    env.opened.append(forked)
    broken = env.open_pr("broken", {
        "pv_broken/__manifest__.py": "{'name': 'Broken', 'version': '1.0',\n",  # no close
        "pv_broken/__init__.py": "",
    }, title="Broken manifest")
    rec = env.reconciler()
    result = rec.reconcile()
    actions = {x.pr: x for x in result.actions}
    assert actions[f"{REPO}#{forked}"].action == "ignored"
    assert "fork" in actions[f"{REPO}#{forked}"].detail
    assert env.preview(forked) is None
    assert env.leftovers(f"{PARENT}-pr{forked}") == []
    assert actions[f"{REPO}#{broken}"].action == "failed", result.to_dict()
    s = env.preview(broken)
    assert s.status is ServiceStatus.FAILED and s.failed_step == "update modules"
    assert "Failed to load the manifest of module 'pv_broken'" in s.last_error
    (dep,) = env.github.deployments(REPO, f"preview/pr-{broken}")
    assert _statuses(env, dep.id)[-1] == "failure"
    assert "update modules" in env.github.statuses(REPO, dep.id)[-1]["description"]

    # Retried on the next pass; after a second failure at the same head it waits.
    assert [x.action for x in rec.reconcile().actions if x.pr.endswith(f"#{broken}")] == [
        "failed"]
    again = [x for x in rec.reconcile().actions if x.pr.endswith(f"#{broken}")]
    assert [x.action for x in again] == ["skipped"] and "next retry" in again[0].detail

    # A push that fixes the manifest retries at once: Active, the module installed.
    fixed = env.github.push(REPO, broken, {
        "pv_broken/__manifest__.py": manifest("Broken no more", "1.2")})
    result = rec.reconcile()
    assert [x.action for x in result.actions if x.pr.endswith(f"#{broken}")] == ["updated"]
    s = env.preview(broken)
    assert s.status is ServiceStatus.RUNNING and s.head_sha == fixed
    assert s.last_error is None and s.failed_step is None
    assert _module(env, s.database, "pv_broken") == [["installed", "17.0.1.2"]]
    dep = env.github.deployments(REPO, f"preview/pr-{broken}")[0]
    assert dep.sha == fixed and _statuses(env, dep.id)[-1] == "success"

    # Forks opted in for the repository: the fork's PR gets its preview.
    from havsh_tui.ops.repos import get_connection, update_connection

    update_connection(env.inventory, get_connection(env.inventory, HOST, PARENT, REPO),
                      forks=True)
    try:
        result = rec.reconcile()
        assert [x.action for x in result.actions if x.pr.endswith(f"#{forked}")] == [
            "created"], result.to_dict()
        assert env.preview(forked).status is ServiceStatus.RUNNING
    finally:
        update_connection(env.inventory, get_connection(env.inventory, HOST, PARENT, REPO),
                          forks=False)
    # Forks off again: the fork's PR is ignored again, and its preview goes at the next pass.
    result = rec.reconcile()
    assert [x.action for x in result.actions if x.pr.endswith(f"#{forked}")] == [
        "ignored", "destroyed"]
    assert env.leftovers(f"{PARENT}-pr{forked}") == []


def test_cap_comment_and_the_cli(pv):
    env = pv
    one = env.open_pr("cap-1", {"pv_c1/__manifest__.py": manifest("C1")}, title="Cap one")
    two = env.open_pr("cap-2", {"pv_c2/__manifest__.py": manifest("C2")}, title="Cap two")
    env.paths.settings.write_text("previews_per_parent = 1\n")
    try:
        r = env.cli("preview", "reconcile", "--json", GITHUB_TOKEN=env.token,
                    GITHUB_API_URL=env.github.api_url)
        assert r.exit_code == 0, r.output
        result = [line for line in r.stdout.splitlines() if '"event": "result"' in line]
        actions = {a["pr"]: a for a in json.loads(result[-1])["actions"]}
        assert actions[f"{REPO}#{one}"]["action"] == "created"
        assert actions[f"{REPO}#{two}"]["action"] == "capped"
        (comment,) = env.github.comments(REPO, two)
        assert "previews_per_parent" in comment["body"] and PARENT in comment["body"]
        # A second pass says it once only.
        r = env.cli("preview", "reconcile", GITHUB_TOKEN=env.token,
                    GITHUB_API_URL=env.github.api_url)
        assert r.exit_code == 0, r.output
        assert len(env.github.comments(REPO, two)) == 1

        # The list, as the previews screen shows it.
        r = env.cli("preview", "ls", "--json")
        (row,) = [p for p in json.loads(r.stdout) if p["pr"] == f"{REPO}#{one}"]
        assert (row["pr_number"], row["pr_title"], row["pr_branch"], row["parent"]) == (
            one, "Cap one", "cap-1", PARENT)
        assert row["status_label"] == "Active" and row["head_sha"] == env.github.pr_head(
            REPO, one)
        assert row["url"] and row["age_seconds"] >= 0

        # Destroyed by hand: it stays destroyed (same head), and the capped PR gets the slot.
        slug_one = row["name"]
        r = env.cli("preview", "destroy", slug_one, GITHUB_TOKEN=env.token,
                    GITHUB_API_URL=env.github.api_url)
        assert r.exit_code == 0, r.output
        assert env.leftovers(slug_one) == []
        r = env.cli("preview", "reconcile", "--json", GITHUB_TOKEN=env.token,
                    GITHUB_API_URL=env.github.api_url)
        actions = {a["pr"]: a for a in json.loads(
            [x for x in r.stdout.splitlines() if '"event": "result"' in x][-1])["actions"]}
        assert actions[f"{REPO}#{one}"]["action"] == "skipped"
        assert actions[f"{REPO}#{two}"]["action"] == "created"
        # By hand again, over the cap: refused with the reason.
        r = env.cli("preview", "create", PARENT, REPO, str(one), "--json",
                    GITHUB_TOKEN=env.token, GITHUB_API_URL=env.github.api_url)
        assert r.exit_code == 1 and "previews_per_parent = 1" in r.output
    finally:
        env.paths.settings.unlink()


def test_repo_cli_login_deploy_and_roll_back(pv):
    env = pv
    # Login from stdin, stored in secrets, with its API root.
    r = env.cli("github", "login", "--api-url", env.github.api_url, "--json",
                input=env.token + "\n")
    assert r.exit_code == 0, r.output
    login = json.loads(r.stdout)
    assert login["login"] == "acme" and REPO in login["repositories"]
    assert env.token not in env.inventory.path.read_text()
    r = env.cli("github", "status", "--json")
    assert json.loads(r.stdout)["user"] == "acme"
    # A token without the rights needed: the message names the right.
    weak = env.github.add_token("acme", rights=ALL_RIGHTS - {"contents:read"})
    r = env.cli("repo", "deploy", PARENT, REPO, "--json", GITHUB_TOKEN=weak)
    assert r.exit_code == 1
    assert json.loads(r.stderr)["error"]["missing_right"] == "Contents: read"

    r = env.cli("repo", "ls", PARENT, "--json")
    (conn,) = json.loads(r.stdout)
    assert conn["repo"] == REPO and conn["previews"] and conn["modules"] == ["pv_base"]
    before = conn["deployed_sha"]

    # A new commit on main: deploy updates pv_base (installed) and restarts the parent.
    sha = env.github.commit(REPO, "main", {"pv_base/__manifest__.py": manifest("PV Base",
                                                                              "1.1")})
    r = env.cli("repo", "deploy", PARENT, REPO, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.splitlines()[-1])["deploy"]
    assert (result["sha"], result["previous_sha"]) == (sha, before)
    assert result["plan"]["update"] == ["pv_base"] and result["restarted"]
    assert _module(env, "pv_erp", "pv_base") == [["installed", "17.0.1.1"]]
    assert env.inventory.get_service(PARENT, host=HOST).status is ServiceStatus.RUNNING

    # A commit whose manifest is broken: the update fails, the previous addons come back
    # and the parent runs again on them.
    env.github.commit(REPO, "bad", {"pv_base/__manifest__.py": "{'name': "},
                      from_ref="main")
    r = env.cli("repo", "deploy", PARENT, REPO, "--ref", "bad", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stderr)["error"]["step"] == "update modules"
    c = env.local()
    try:
        assert c.api.inspect_container(f"havsh-{PARENT}")["State"]["Running"]
    finally:
        c.close()
    conn = json.loads(env.cli("repo", "ls", PARENT, "--json").stdout)[0]
    assert conn["deployed_sha"] == sha
    from havsh_tui.ops.services import wait_healthy

    wait_healthy(env.pool.session(env.hosts[HOST]), env.parent, RecordingReporter())
    out = env.client().api.exec_create(f"havsh-{PARENT}",
                                       ["cat", "/mnt/extra-addons/pv_base/__manifest__.py"])
    assert "'1.1'" in env.client().api.exec_start(out["Id"]).decode()
