"""Addons repositories on a service: connect, deploy a pinned commit, disconnect.

A connected repository's addons live in the service's addons volume (``havsh-<slug>-addons``,
mounted read-only at /mnt/extra-addons, Odoo's addons path). They are deployed at a pinned
commit: the operator's machine downloads GitHub's tarball of that SHA and streams it, rewritten
on the fly (github/addons.py), into the volume with the Docker API's ``put_archive``, so the
host needs neither git nor access to GitHub, and the tarball is never held whole anywhere.

The volume also holds its own record, ``.havsh/<owner>__<repo>.modules`` and ``.sha``: which
module folders each repository put there, at which commit. So a deploy replaces exactly that
repository's modules (removing the ones the new commit deleted), several repositories can share
one volume, and the truth is on the host.

A deploy: stage the new tree in the volume while the server runs; stop it; swap the tree in
(the previous one is kept aside); ``-u`` the modules that changed between the deployed commit
and the new one (compare API) and are installed; start and health-check. If the swap or the
update fails, the previous tree is put back and the server started again, so a bad commit never
leaves a Live service down. The deployed SHA is recorded ("tracked by version").

Connections are kept in the inventory (value ``github.repos``), one entry per (host, service,
repository), changed under the inventory's lock so two havsh processes lose nothing.
"""

from __future__ import annotations

import io
import re
import secrets as pysecrets
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceType, utcnow
from havsh_tui.github.addons import AddonsError, AddonsTree, rewrite_tarball, validate_subdir
from havsh_tui.github.client import GitHubError, validate_repo_name
from havsh_tui.ops import odoo
from havsh_tui.ops.bootstrap import psql
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import NullReporter, Reporter, check_cancelled
from havsh_tui.ops.services import (
    StepFailed,
    container_logs,
    create_server_container,
    run_odoo_once,
    wait_healthy,
)
from havsh_tui.remote.ssh import RemoteError

REPOS_KEY = "github.repos"
META_DIR = ".havsh"
STAGE_PREFIX = ".havsh-incoming-"
INSTALLED_STATES = ("installed", "to upgrade")

# Moves the repository's previous modules aside (kept for a roll-back), the staged ones in,
# and records the new list and SHA. "$1" key, "$2" staging folder ("-": none), "$3" SHA,
# then the module names (validated identifiers).
SWAP_SCRIPT = r"""set -eu
cd /dst
key="$1"; stage="$2"; sha="$3"; shift 3
prev="$PWD/.havsh/previous/$key"
mkdir -p .havsh
rm -rf -- "$prev"
mkdir -p "$prev"
if [ -f ".havsh/$key.modules" ]; then
  while IFS= read -r m; do
    case "$m" in ""|*[!A-Za-z0-9_]*) continue ;; esac
    if [ -e "./$m" ]; then mv -- "./$m" "$prev/$m"; fi
  done < ".havsh/$key.modules"
  cp -- ".havsh/$key.modules" "$prev/.modules"
  if [ -f ".havsh/$key.sha" ]; then cp -- ".havsh/$key.sha" "$prev/.sha"; fi
fi
: > ".havsh/$key.modules.new"
for m in "$@"; do
  if [ -e "./$m" ]; then
    echo "module $m was already in the addons folder (another repository's): replaced" >&2
    rm -rf -- "./$m"
  fi
  mv -- "$stage/$m" "./$m"
  printf '%s\n' "$m" >> ".havsh/$key.modules.new"
done
mv -- ".havsh/$key.modules.new" ".havsh/$key.modules"
if [ "$sha" = "-" ]; then
  rm -f -- ".havsh/$key.sha"
else
  printf '%s\n' "$sha" > ".havsh/$key.sha"
fi
for d in ./.havsh-incoming-*; do
  if [ -e "$d" ]; then rm -rf -- "$d"; fi
done
echo "modules=$#" >&2
"""

# Puts back what SWAP_SCRIPT kept aside. "$1" key.
RESTORE_SCRIPT = r"""set -eu
cd /dst
key="$1"
prev="$PWD/.havsh/previous/$key"
if [ ! -d "$prev" ]; then echo "nothing kept aside for $key" >&2; exit 3; fi
if [ -f ".havsh/$key.modules" ]; then
  while IFS= read -r m; do
    case "$m" in ""|*[!A-Za-z0-9_]*) continue ;; esac
    rm -rf -- "./$m"
  done < ".havsh/$key.modules"
fi
for d in "$prev"/*; do
  if [ -e "$d" ]; then mv -- "$d" "./${d##*/}"; fi
done
rm -f -- ".havsh/$key.modules" ".havsh/$key.sha"
if [ -f "$prev/.modules" ]; then mv -- "$prev/.modules" ".havsh/$key.modules"; fi
if [ -f "$prev/.sha" ]; then mv -- "$prev/.sha" ".havsh/$key.sha"; fi
rm -rf -- "$prev"
"""

# A preview starts from its parent's addons: the whole volume, without the roll-back copies.
COPY_SCRIPT = r"""set -eu
cp -a /src/. /dst/
rm -rf -- /dst/.havsh/previous
find /dst -mindepth 1 -maxdepth 1 -name '.havsh-incoming-*' -exec rm -rf -- {} +
"""


# -- connections --------------------------------------------------------------------------------


def repo_key(repo: str) -> str:
    """``owner/repo`` as a file name in the volume's record: ``owner__repo``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", validate_repo_name(repo).replace("/", "__"))


@dataclass
class RepoConnection:
    """One repository connected to one service."""

    host: str
    service: str
    repo: str
    branch: str
    subdir: str = ""
    #: Previews for the repository's pull requests (the eye mark).
    previews: bool = False
    #: Previews of pull requests from forks too (off by default: a preview runs the PR's code
    #: next to a copy of production data).
    forks: bool = False
    deployed_sha: str | None = None
    deployed_at: str | None = None
    modules: list[str] = field(default_factory=list)
    connected_at: str = field(default_factory=lambda: utcnow().isoformat())

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.host, self.service, self.repo.lower())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RepoConnection:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _load(value: Any) -> list[RepoConnection]:
    out = []
    for d in value or []:
        if isinstance(d, dict):
            try:
                out.append(RepoConnection.from_dict(d))
            except TypeError:
                continue
    return out


def list_connections(inventory, *, host: str | None = None, service: str | None = None,
                     repo: str | None = None) -> list[RepoConnection]:
    conns = _load(inventory.get_value(REPOS_KEY, []))
    return sorted(
        (c for c in conns
         if (host is None or c.host == host) and (service is None or c.service == service)
         and (repo is None or c.repo.lower() == repo.lower())),
        key=lambda c: (c.host, c.service, c.repo.lower()))


def get_connection(inventory, host: str, service: str, repo: str) -> RepoConnection:
    for c in list_connections(inventory, host=host, service=service, repo=repo):
        return c
    raise OpsError(f"{repo} is not connected to {service} on {host} "
                   f"(`havsh repo connect {service} {repo}`)")


def _modify(inventory, fn: Callable[[list[RepoConnection]], list[RepoConnection]]) -> None:
    inventory.update_value(REPOS_KEY, lambda v: [c.to_dict() for c in fn(_load(v))], [])


def update_connection(inventory, conn: RepoConnection, **changes: Any) -> RepoConnection:
    """Change fields of a stored connection in one locked write; returns it as stored."""
    result: list[RepoConnection] = []

    def change(conns: list[RepoConnection]) -> list[RepoConnection]:
        for c in conns:
            if c.key == conn.key:
                for k, v in changes.items():
                    setattr(c, k, v)
                result.append(c)
        return conns

    _modify(inventory, change)
    if not result:
        raise OpsError(f"{conn.repo} is no longer connected to {conn.service} on {conn.host}")
    return result[0]


# -- the addons volume ----------------------------------------------------------------------------


def _helper(client, image: str, slug: str, argv: list[str], binds: dict, purpose: str) -> str:
    """A one-off container for the service (labelled, so a cleanup finds it), not started."""
    labels = {names.LABEL_MANAGED: "1", names.LABEL_SERVICE: slug, names.LABEL_ROLE: purpose}
    return client.api.create_container(
        image, command=argv, entrypoint=[], labels=labels, user="0:0",
        host_config=client.api.create_host_config(binds=binds, network_mode="none"),
    )["Id"]


def _run_helper(client, cid: str, step: str, timeout: float = 600.0) -> str:
    """Start it, wait, return its log; StepFailed with the log on a non-zero exit."""
    try:
        client.api.start(cid)
        code = int(client.api.wait(cid, timeout=timeout)["StatusCode"])
        log = container_logs(client, cid, tail=200)
        if code != 0:
            raise StepFailed(step, f"the {step} helper exited {code}", log)
        return log
    finally:
        try:
            client.api.remove_container(cid, force=True)
        except (docker.errors.APIError, RemoteError, OSError):
            pass


def ensure_addons_volume(client, service: Service) -> str:
    from havsh_tui.ops.services import service_labels

    vol = names.addons_volume_name(service.name)
    try:
        client.api.inspect_volume(vol)
    except docker.errors.NotFound:
        client.api.create_volume(vol, labels=service_labels(service)
                                 | {names.LABEL_ROLE: "addons"})
    return vol


def volume_exists(client, name: str) -> bool:
    try:
        client.api.inspect_volume(name)
        return True
    except docker.errors.NotFound:
        return False


@dataclass
class Staged:
    """A tree put into the volume's staging folder, not yet in place."""

    stage: str
    sha: str
    tree: AddonsTree


def _counting(chunks: Iterable[bytes], reporter: Reporter, what: str) -> Iterator[bytes]:
    total = 0
    last = 0.0
    for chunk in chunks:
        check_cancelled(reporter)
        total += len(chunk)
        now = time.monotonic()
        if now - last > 0.25:
            reporter.progress(total, None, what)
            last = now
        yield chunk
    reporter.progress(total, None, what)


def stage_commit(client, service: Service, gh_repo, sha: str, subdir: str,
                 reporter: Reporter) -> Staged:
    """Stream GitHub's tarball of ``sha`` into a staging folder of the addons volume."""
    vol = ensure_addons_volume(client, service)
    stage = STAGE_PREFIX + pysecrets.token_hex(6)
    tree = AddonsTree()
    cid = _helper(client, service.image, service.name, ["true"],
                  {vol: {"bind": "/dst", "mode": "rw"}}, "addons-stage")
    try:
        with gh_repo.tarball(sha) as chunks:
            body = rewrite_tarball(_counting(chunks, reporter, "addons bytes downloaded"),
                                   prefix=stage, subdir=subdir, tree=tree)
            client.api.put_archive(cid, "/dst", body)
    except AddonsError as exc:
        raise StepFailed("fetch addons", str(exc)) from None
    finally:
        try:
            client.api.remove_container(cid, force=True)
        except (docker.errors.APIError, RemoteError, OSError):
            pass
    if not tree.done:
        raise StepFailed("fetch addons", "the tarball stream ended early")
    if tree.commit and re.fullmatch(r"[0-9a-f]{40}", tree.commit) and tree.commit != sha:
        raise StepFailed("fetch addons", f"GitHub sent commit {tree.commit}, not {sha}")
    if subdir and not tree.files:
        raise StepFailed("fetch addons", f"{gh_repo.full_name}@{sha[:12]} has no files under "
                                         f"{subdir}/")
    for skipped in tree.skipped[:20]:
        reporter.log(f"skipped {skipped}")
    reporter.log(f"{gh_repo.full_name}@{sha[:12]}: {len(tree.modules)} modules, "
                 f"{tree.files} files, {tree.bytes} bytes")
    return Staged(stage, sha, tree)


def swap_staged(client, service: Service, repo: str, staged: Staged | None) -> str:
    """Put the staged tree in place of the repository's previous one (kept aside)."""
    vol = names.addons_volume_name(service.name)
    modules = staged.tree.modules if staged else []
    argv = ["sh", "-c", SWAP_SCRIPT, "swap", repo_key(repo),
            staged.stage if staged else "-", staged.sha if staged else "-", *modules]
    cid = _helper(client, service.image, service.name, argv,
                  {vol: {"bind": "/dst", "mode": "rw"}}, "addons-swap")
    return _run_helper(client, cid, "deploy addons")


def restore_previous(client, service: Service, repo: str) -> str:
    vol = names.addons_volume_name(service.name)
    cid = _helper(client, service.image, service.name,
                  ["sh", "-c", RESTORE_SCRIPT, "restore", repo_key(repo)],
                  {vol: {"bind": "/dst", "mode": "rw"}}, "addons-restore")
    return _run_helper(client, cid, "restore addons")


def copy_addons(client, image: str, source: str, target: Service) -> bool:
    """Copy ``source``'s addons volume into ``target``'s; False when the source has none."""
    src = names.addons_volume_name(source)
    if not volume_exists(client, src):
        return False
    dst = ensure_addons_volume(client, target)
    cid = _helper(client, image, target.name, ["sh", "-c", COPY_SCRIPT],
                  {src: {"bind": "/src", "mode": "ro"}, dst: {"bind": "/dst", "mode": "rw"}},
                  "addons-copy")
    _run_helper(client, cid, "copy addons")
    return True


# -- modules --------------------------------------------------------------------------------------


@dataclass
class ModulePlan:
    install: list[str] = field(default_factory=list)
    update: list[str] = field(default_factory=list)
    #: Changed modules that are neither installed nor to be installed.
    untouched: list[str] = field(default_factory=list)
    #: Installed modules the new commit deleted (Odoo keeps them in the database).
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.install and not self.update

    def describe(self) -> str:
        parts = []
        if self.install:
            parts.append("-i " + ",".join(self.install))
        if self.update:
            parts.append("-u " + ",".join(self.update))
        return " ".join(parts) or "no module to update"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def module_states(client, database: str, modules: Iterable[str]) -> dict[str, str]:
    mods = sorted(set(modules))
    if not mods:
        return {}
    out = psql(client, "SELECT name, state FROM ir_module_module "
                       "WHERE name = ANY(string_to_array(:'mods', ','));\n",
               database=database, variables={"mods": ",".join(mods)})
    states = {}
    for line in out.splitlines():
        name, _, state = line.partition("|")
        if name:
            states[name] = state
    return states


def plan_modules(client, database: str, touched: set[str] | None, tree_modules: Iterable[str],
                 *, install_new: bool) -> ModulePlan:
    """``touched``: modules the commit range changed (None: unknown, so all of the tree's)."""
    tree = set(tree_modules)
    changed = tree if touched is None else touched & tree
    gone = set() if touched is None else touched - tree
    states = module_states(client, database, changed | gone)
    plan = ModulePlan()
    for m in sorted(changed):
        state = states.get(m)
        if state in INSTALLED_STATES:
            plan.update.append(m)
        elif install_new and state != "uninstallable":
            plan.install.append(m)
        else:
            plan.untouched.append(m)
    plan.removed = sorted(m for m in gone if states.get(m) in INSTALLED_STATES)
    return plan


def changed_modules(gh_repo, from_sha: str | None, to_sha: str, subdir: str) -> set[str] | None:
    """Modules touched between two commits (compare API); None means "assume all"."""
    from havsh_tui.github.addons import touched_modules

    if not from_sha:
        return None
    if from_sha == to_sha:
        return set()
    files = gh_repo.changed_files(from_sha, to_sha)
    return None if files is None else touched_modules(files, subdir)


def current_conf(client, container: str) -> str:
    """The odoo.conf the container runs with (so a recreated one keeps whatever made it)."""
    stream, _ = client.api.get_archive(container, odoo.CONF_PATH)
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    return fh.read().decode()
    raise OpsError(f"{container} has no {odoo.CONF_PATH}")


def has_addons_mount(attrs: dict, slug: str) -> bool:
    want = names.addons_volume_name(slug)
    return any(m.get("Name") == want and m.get("Destination") == odoo.ADDONS_DIR
               for m in attrs.get("Mounts") or [])


def db_password(secret_store, service: Service) -> str:
    from havsh_tui.core import secrets as sk

    pw = secret_store.get(sk.service_db_password_key(service.host, service.name))
    if pw is None:
        raise OpsError(f"the database password of {service.name} is not in the secrets store")
    return pw


class _LogKeeper:
    """Passes everything on to a reporter and keeps Odoo's ERROR and CRITICAL lines (with
    the traceback lines that follow them), which a failed update's log must lead with: the
    tail alone is often just the end of a traceback."""

    def __init__(self, reporter: Reporter, keep: int = 120) -> None:
        self.reporter = reporter
        self.keep = keep
        self.errors: list[str] = []
        self._in_error = False

    def log(self, line: str) -> None:
        parsed = odoo.parse_log_line(line)
        if parsed is not None:
            self._in_error = parsed["level"] in ("ERROR", "CRITICAL")
        if self._in_error and len(self.errors) < self.keep:
            self.errors.append(line)
        self.reporter.log(line)

    def __getattr__(self, name: str):
        return getattr(self.reporter, name)


def run_module_update(client, service: Service, password: str, conf: str, plan: ModulePlan,
                      reporter: Reporter) -> str:
    args = ["-d", service.database]
    if plan.install:
        args += ["-i", ",".join(plan.install)]
    if plan.update:
        args += ["-u", ",".join(plan.update)]
    args.append("--stop-after-init")
    keeper = _LogKeeper(reporter)
    try:
        return run_odoo_once(client, service, password, conf, args, keeper, suffix="update")
    except StepFailed as exc:
        if keeper.errors:
            # Both parts bounded, so that a record keeping the last 8000 characters keeps
            # the first error too.
            log = ("\n".join(keeper.errors)[:4000] + "\n...\n" + (exc.log or "")[-3000:])
            raise StepFailed("update modules", str(exc).removeprefix("step 'update' failed: "),
                             log) from exc
        raise


def recreate_server(client, service: Service, password: str, conf: str) -> str:
    """A new server container (new labels, the addons mount) on the same volumes."""
    cname = names.container_name(service.name)
    try:
        client.api.remove_container(cname, force=True)
    except docker.errors.NotFound:
        pass
    return create_server_container(client, service, password, conf)


# -- a deploy: stage, stop, swap, update, start ---------------------------------------------------


@dataclass
class DeployResult:
    repo: str
    sha: str
    previous_sha: str | None
    modules: list[str]
    plan: ModulePlan
    restarted: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "sha": self.sha, "previous_sha": self.previous_sha,
                "modules": self.modules, "plan": self.plan.to_dict(),
                "restarted": self.restarted, "seconds": round(self.seconds, 1)}


def apply_commit(session, secret_store, service: Service, gh_repo, sha: str, *, subdir: str,
                 touched: set[str] | None, install_new: bool, steps, reporter: Reporter,
                 rollback: bool, recreate: bool = False, start: bool | None = None,
                 deployed: AddonsTree | None = None) -> tuple[AddonsTree, ModulePlan, bool]:
    """Bring ``service``'s addons of ``gh_repo`` to ``sha`` and its modules with them.

    ``steps.run(name, fn, detail)`` runs and records each step. ``deployed``: the tree is in
    place already (a new preview), only update and restart. ``rollback``: on a failed swap or
    update, put the previous tree back and restart (a service); else leave it (a preview,
    marked Failed). ``recreate``: always make a new container (new labels). ``start``: run
    it afterwards (default: if it was running). Returns (tree, plan, started).
    """
    client = session.docker()
    cname = names.container_name(service.name)
    try:
        attrs = client.api.inspect_container(cname)
    except docker.errors.NotFound:
        raise OpsError(f"{service.name}: its container is missing on {service.host}") from None
    running = bool(attrs["State"].get("Running"))
    start = running if start is None else start
    recreate = recreate or not has_addons_mount(attrs, service.name)
    conf = current_conf(client, cname)
    password = db_password(secret_store, service)
    staged = None
    if deployed is None:
        staged = steps.run("fetch addons", lambda: stage_commit(
            client, service, gh_repo, sha, subdir, reporter), f"{gh_repo.full_name}@{sha[:12]}")
    tree = deployed or staged.tree
    plan = steps.run("plan modules", lambda: plan_modules(
        client, service.database, touched, tree.modules, install_new=install_new))
    reporter.log(f"modules: {plan.describe()}"
                 + (f"; not installed, left alone: {', '.join(plan.untouched)}"
                    if plan.untouched else ""))
    if plan.removed:
        reporter.warning(f"{sha[:12]} deletes installed modules {', '.join(plan.removed)}; "
                         "uninstall them in Odoo")
    if running:
        steps.run("stop", lambda: client.api.stop(cname, timeout=30))
    swapped = False
    try:
        if staged is not None:
            steps.run("deploy addons", lambda: swap_staged(client, service, gh_repo.full_name,
                                                           staged))
            swapped = True
        if not plan.empty:
            steps.run("update modules", lambda: run_module_update(
                client, service, password, conf, plan, reporter), plan.describe())
    except BaseException:
        if rollback:
            _roll_back(client, session, service, gh_repo.full_name, swapped, running, reporter)
        raise
    if recreate:
        steps.run("container", lambda: recreate_server(client, service, password, conf))
    if start:
        steps.run("start", lambda: client.api.start(cname))
        steps.run("health", lambda: wait_healthy(session, service, reporter))
    return tree, plan, start


def _roll_back(client, session, service: Service, repo: str, swapped: bool, running: bool,
               reporter: Reporter) -> None:
    try:
        if swapped:
            restore_previous(client, service, repo)
            reporter.log("the previous addons were put back")
        if running:
            client.api.start(names.container_name(service.name))
            wait_healthy(session, service, reporter)
            reporter.log(f"{service.name} runs again on its previous addons")
    except Exception as exc:  # noqa: BLE001 - report, keep the original failure
        reporter.warning(f"the roll-back of {service.name} did not finish: {exc}")


class OperationSteps:
    """Steps recorded in the operations history (not in the service's own record: a failed
    deploy that was rolled back leaves the service as it was)."""

    def __init__(self, inventory, reporter: Reporter, **op: Any) -> None:
        self.inventory = inventory
        self.reporter = reporter
        self.current: str | None = None
        self.steps: list[dict[str, Any]] = []
        self.op_id = inventory.record_operation({**op, "state": "running", "steps": []})

    def run(self, name: str, fn: Callable[[], Any], detail: str = ""):
        check_cancelled(self.reporter)
        self.current = name
        step = {"name": name, "state": "running", "started_at": utcnow().isoformat(),
                "detail": detail}
        self.steps.append(step)
        self.reporter.step(name, "running", detail)
        try:
            result = fn()
        except BaseException as exc:
            step.update(state="failed", finished_at=utcnow().isoformat(), detail=str(exc)[:500])
            self.reporter.step(name, "failed", str(exc))
            raise
        step.update(state="done", finished_at=utcnow().isoformat())
        self.reporter.step(name, "done")
        return result

    def finish(self, state: str, **extra: Any) -> None:
        try:
            self.inventory.update_operation(self.op_id, state=state, steps=self.steps,
                                            finished_at=utcnow().isoformat(), **extra)
        except Exception:  # noqa: BLE001 - history must not hide the outcome
            pass


# -- the operations -------------------------------------------------------------------------------


def _deployable(inventory, service: Service) -> None:
    if service.type is ServiceType.PREVIEW:
        raise OpsError(f"{service.name} is a preview: its addons come from its pull request")
    inventory.get_host(service.host)


def connect_repo(inventory, secret_store, pool, gh, service: Service, repo: str, *,
                 branch: str | None = None, subdir: str = "", deploy: bool = True,
                 reporter: Reporter | None = None, audit=None
                 ) -> tuple[RepoConnection, DeployResult | None]:
    """Connect ``repo`` to ``service`` and (by default) deploy its branch head."""
    reporter = reporter or NullReporter()
    _deployable(inventory, service)
    repo = validate_repo_name(repo)
    try:
        subdir = validate_subdir(subdir)
    except AddonsError as exc:
        raise OpsError(str(exc)) from None
    for c in list_connections(inventory, host=service.host, service=service.name, repo=repo):
        raise OpsError(f"{c.repo} is connected to {service.name} already (branch {c.branch})")
    gh_repo = gh.repo(repo)
    info = gh_repo.info()  # 404: not there or not visible; names the right
    branch = branch or info.default_branch
    gh_repo.commit_sha(branch)  # the branch exists and the contents are readable
    conn = RepoConnection(host=service.host, service=service.name, repo=info.full_name,
                          branch=branch, subdir=subdir)

    def add(conns: list[RepoConnection]) -> list[RepoConnection]:
        if any(c.key == conn.key for c in conns):
            raise OpsError(f"{conn.repo} is connected to {service.name} already")
        return [*conns, conn]

    _modify(inventory, add)
    if audit:
        audit.append(service.host, "repo.connect", service.name, "ok",
                     f"{conn.repo} branch {branch}")
    result = None
    if deploy:
        result = deploy_repo(inventory, secret_store, pool, gh, service, conn.repo,
                             reporter=reporter, audit=audit)
        conn = get_connection(inventory, service.host, service.name, conn.repo)
    return conn, result


def deploy_repo(inventory, secret_store, pool, gh, service: Service, repo: str, *,
                ref: str | None = None, reporter: Reporter | None = None, audit=None
                ) -> DeployResult:
    """Deploy ``ref`` (default: the connected branch's head) of a connected repository."""
    reporter = reporter or NullReporter()
    started = time.monotonic()
    _deployable(inventory, service)
    conn = get_connection(inventory, service.host, service.name, repo)
    gh_repo = gh.repo(conn.repo)
    sha = gh_repo.commit_sha(ref or conn.branch)
    touched = changed_modules(gh_repo, conn.deployed_sha, sha, conn.subdir)
    session = pool.session(inventory.get_host(service.host))
    url_before = service.url
    steps = OperationSteps(inventory, reporter, kind="repo.deploy", host=service.host,
                           service=service.name, repo=conn.repo, sha=sha,
                           previous_sha=conn.deployed_sha)
    try:
        tree, plan, started_server = apply_commit(
            session, secret_store, service, gh_repo, sha, subdir=conn.subdir, touched=touched,
            install_new=False, steps=steps, reporter=reporter, rollback=True)
    except BaseException as exc:
        steps.finish("failed", error=str(exc)[:2000], log=(getattr(exc, "log", "") or "")[-8000:])
        if audit:
            audit.append(service.host, "repo.deploy", service.name, "failed",
                         f"{conn.repo}@{sha[:12]}: {str(exc)[:200]}")
        if isinstance(exc, (StepFailed, OpsError, GitHubError)):
            raise
        if isinstance(exc, (RemoteError, OSError, docker.errors.APIError)):
            raise StepFailed(steps.current or "deploy", str(exc)) from exc
        raise
    update_connection(inventory, conn, deployed_sha=sha, deployed_at=utcnow().isoformat(),
                      modules=tree.modules)
    if service.url != url_before:  # a new container (the addons mount) got its route anew
        inventory.update_service(service.host, service.name, url=service.url)
    steps.finish("done", modules=tree.modules, plan=plan.to_dict())
    if audit:
        audit.append(service.host, "repo.deploy", service.name, "ok",
                     f"{conn.repo}@{sha[:12]} {plan.describe()}")
    return DeployResult(conn.repo, sha, conn.deployed_sha, tree.modules, plan, started_server,
                        time.monotonic() - started)


def set_previews(inventory, secret_store, pool, service: Service, repo: str, *,
                 enabled: bool, forks: bool | None = None, gh=None,
                 reporter: Reporter | None = None, audit=None) -> RepoConnection:
    """Turn previews of ``repo``'s pull requests on or off for ``service``. Off destroys the
    previews at once (and should a host be unreachable, the next reconcile pass will)."""
    reporter = reporter or NullReporter()
    _deployable(inventory, service)
    conn = get_connection(inventory, service.host, service.name, repo)
    if enabled and gh is not None:
        gh.repo(conn.repo).open_pulls()  # the token may list them: else the right is named
    changes: dict[str, Any] = {"previews": enabled}
    if forks is not None:
        changes["forks"] = forks
    conn = update_connection(inventory, conn, **changes)
    if audit:
        audit.append(service.host, "repo.previews", service.name, "ok",
                     f"{conn.repo} previews {'on' if enabled else 'off'}, forks "
                     f"{'on' if conn.forks else 'off'}")
    if not enabled:
        from havsh_tui.ops.preview import destroy_previews_of

        destroy_previews_of(inventory, secret_store, pool, conn, gh=gh, reporter=reporter,
                            audit=audit, reason="previews turned off")
    return conn


def disconnect_repo(inventory, secret_store, pool, service: Service, repo: str, *,
                    remove_addons: bool = False, gh=None, reporter: Reporter | None = None,
                    audit=None) -> list[str]:
    """Forget the connection. Its previews are destroyed first; if one cannot be, the
    connection stays (with previews off) and the error says so. The deployed addons stay
    in the volume unless ``remove_addons``, which refuses while any of them is installed."""
    from havsh_tui.ops.preview import destroy_previews_of

    reporter = reporter or NullReporter()
    conn = get_connection(inventory, service.host, service.name, repo)
    if conn.previews:
        conn = update_connection(inventory, conn, previews=False)
    destroyed = destroy_previews_of(inventory, secret_store, pool, conn, gh=gh,
                                    reporter=reporter, audit=audit,
                                    reason="repository disconnected", strict=True)
    removed = [f"preview {s}" for s in destroyed]
    if remove_addons and conn.modules:
        session = pool.session(inventory.get_host(service.host))
        client = session.docker()
        installed = [m for m, st in module_states(client, service.database,
                                                  conn.modules).items()
                     if st in INSTALLED_STATES]
        if installed:
            raise OpsError(f"{', '.join(sorted(installed))} from {conn.repo} are installed in "
                           f"{service.name}: uninstall them in Odoo first, or disconnect "
                           "without --remove-addons")
        swap_staged(client, service, conn.repo, None)
        removed.append(f"addons {', '.join(conn.modules)}")

    def drop(conns: list[RepoConnection]) -> list[RepoConnection]:
        return [c for c in conns if c.key != conn.key]

    _modify(inventory, drop)
    if audit:
        audit.append(service.host, "repo.disconnect", service.name, "ok",
                     f"{conn.repo}: {', '.join(removed) or 'nothing else removed'}")
    return removed
