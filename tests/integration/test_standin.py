"""The Odoo stand-in image (tests/infra/images/odoo) on host A, driven over SSH like the product.

It checks the surface of shared/ODOO-CONTRACT.md that the other integration tests rely on: real
rows for new databases (with and without demo data, and 19.0's inverted demo flag), real
filestore files, the HTTP endpoints, neutralization, mail "sends" that a neutralized database
never makes, and module install/update failures. Everything it creates carries the labels
sh.hav.test=1 and sh.hav.standin-test=<run id>, and is removed at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

PG_IMAGE = "havsh-test/postgres:15"
ODOO_17 = "havsh-test/odoo:17.0"
ODOO_19 = "havsh-test/odoo:19.0"
PG_PASSWORD = "pg-secret"
ROLE, ROLE_PASSWORD = "svc", "svc-secret"
RUN_LABEL = "sh.hav.standin-test"
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ "
    r"[\w.]+: .*$"
)


class Stack:
    """A network with a PostgreSQL container, plus the Odoo containers of one test."""

    def __init__(self, client) -> None:
        self.client = client
        self.run_id = uuid.uuid4().hex[:10]
        self.labels = {"sh.hav.test": "1", RUN_LABEL: self.run_id}
        self.prefix = f"standin-{self.run_id}"
        self.containers: list = []
        self.volumes: list = []
        self.network = client.networks.create(self.prefix, driver="bridge", labels=self.labels)
        self.pg_name = f"{self.prefix}-pg"
        self.pg = self._keep(client.containers.run(
            PG_IMAGE, detach=True, name=self.pg_name, network=self.network.name,
            environment={"POSTGRES_PASSWORD": PG_PASSWORD}, labels=self.labels))
        self._wait_pg()
        self.psql("postgres", f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{ROLE_PASSWORD}'")

    def _keep(self, container):
        self.containers.append(container)
        return container

    def _wait_pg(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc, out = self.pg.exec_run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SELECT 1"],
                environment={"PGPASSWORD": PG_PASSWORD})
            if rc == 0 and out.strip() == b"1":
                return
            time.sleep(0.5)
        raise AssertionError(f"PostgreSQL did not start:\n{self.pg.logs().decode()[-3000:]}")

    def psql(self, dbname: str, query: str) -> list[list[str]]:
        rc, out = self.pg.exec_run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", dbname, "-v", "ON_ERROR_STOP=1",
             "-AtF", "|", "-c", query],
            environment={"PGPASSWORD": PG_PASSWORD})
        assert rc == 0, out.decode()
        return [line.split("|") for line in out.decode().splitlines() if line]

    def scalar(self, dbname: str, query: str) -> str:
        rows = self.psql(dbname, query)
        return rows[0][0] if rows else ""

    def volume(self, role: str):
        vol = self.client.volumes.create(f"{self.prefix}-{role}", labels=self.labels)
        self.volumes.append(vol)
        return vol

    def _env(self, env: dict[str, str] | None) -> dict[str, str]:
        return {"HOST": self.pg_name, "USER": ROLE, "PASSWORD": ROLE_PASSWORD, **(env or {})}

    def odoo(self, image: str, *args: str, data=None, addons=None,
             env: dict[str, str] | None = None, timeout: int = 180):
        """A one-off `docker run IMAGE odoo ...`: (exit code, logs, the exited container)."""
        container = self._keep(self.client.containers.run(
            image, list(args), detach=True, network=self.network.name,
            environment=self._env(env), volumes=self._mounts(data, addons), labels=self.labels))
        code = container.wait(timeout=timeout)["StatusCode"]
        return code, container.logs().decode(), container

    def server(self, image: str, *args: str, data=None, addons=None,
               env: dict[str, str] | None = None):
        container = self._keep(self.client.containers.run(
            image, ["odoo", *args], detach=True, network=self.network.name,
            environment=self._env(env), volumes=self._mounts(data, addons), labels=self.labels))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rc, out = container.exec_run(["curl", "-s", "localhost:8069/web/health"])
            if rc == 0 and out:
                return container
            container.reload()
            assert container.status == "running", container.logs().decode()[-3000:]
            time.sleep(0.3)
        raise AssertionError(f"server never answered:\n{container.logs().decode()[-3000:]}")

    @staticmethod
    def _mounts(data, addons) -> dict:
        mounts = {}
        if data is not None:
            mounts[data.name] = {"bind": "/var/lib/odoo", "mode": "rw"}
        if addons is not None:
            mounts[addons.name] = {"bind": "/mnt/extra-addons", "mode": "rw"}
        return mounts

    def put_files(self, volume, files: dict[str, str]) -> None:
        """Write files into an addons volume through a created (never started) container."""
        holder = self._keep(self.client.containers.create(
            ODOO_17, ["true"], volumes=self._mounts(None, volume), labels=self.labels))
        buf = io.BytesIO()
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files
                       for i in range(1, p.count("/") + 1)})
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for d in dirs:
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                tar.addfile(info)
            for path, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        assert holder.put_archive("/mnt/extra-addons", buf.getvalue())

    def close(self) -> None:
        for container in self.containers:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        # anything else of this run (a test that died half-way)
        for container in self.client.containers.list(
                all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"}):
            container.remove(force=True)
        for vol in self.volumes:
            try:
                vol.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        try:
            self.network.remove()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def docker_a(pool, host_a, testbed_images):
    """Host A's engine through the product's own SSH transport."""
    for version in ("17.0", "19.0"):
        assert testbed_images.odoo_tag(version) == f"havsh-test/odoo:{version}"
    assert testbed_images.postgres == PG_IMAGE
    return pool.session(host_a).docker()


@pytest.fixture
def stack(docker_a):
    s = Stack(docker_a)
    try:
        yield s
    finally:
        s.close()


def _filestore(container, dbname: str) -> dict[str, bytes]:
    """The files under /var/lib/odoo/filestore/<db>/, by their path below it."""
    chunks, _ = container.get_archive(f"/var/lib/odoo/filestore/{dbname}")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name.split("/", 1)[1]] = tar.extractfile(member).read()
    return out


def _check_new_database(stack: Stack, dbname: str, logs: str, demo: bool, serie: str) -> None:
    lines = logs.splitlines()
    assert any(re.fullmatch(
        rf"\S+ \S+,\d{{3}} \d+ INFO {dbname} odoo\.modules\.loading: loading \d+ modules\.\.\.",
        line) for line in lines), logs
    assert all(LOG_LINE.match(line) for line in lines if line[:2] == "20"), logs
    params = dict(stack.psql(dbname, "SELECT key, value FROM ir_config_parameter"))
    assert {"database.uuid", "database.secret", "database.create_date"} <= set(params)
    assert params["web.base.url"] == "http://localhost:8069"
    assert "database.is_neutralized" not in params
    assert stack.psql(dbname, "SELECT login, password FROM res_users WHERE active") == (
        [["admin", "admin"], ["demo", "demo"]] if demo else [["admin", "admin"]])
    base = stack.psql(dbname, "SELECT state, latest_version, demo FROM ir_module_module"
                              " WHERE name = 'base'")
    assert base == [["installed", f"{serie}.1.3", "t" if demo else "f"]]
    crons = stack.psql(dbname, "SELECT d.module || '.' || d.name, c.active FROM ir_cron c JOIN"
                               " ir_model_data d ON d.model = 'ir.cron' AND d.res_id = c.id")
    assert len(crons) >= 3 and all(active == "t" for _, active in crons)
    assert {"base.autovacuum_job", "mail.ir_cron_mail_scheduler_action"} <= {x for x, _ in crons}
    partners = {r[0] for r in stack.psql(dbname, "SELECT name FROM res_partner")}
    assert ("Azure Interior" in partners) is demo
    assert len(partners) >= (15 if demo else 3)
    servers = stack.psql(dbname, "SELECT name, smtp_host, smtp_port, active FROM ir_mail_server")
    assert servers == ([["Demo SMTP", "smtp.example.com", "25", "t"]] if demo else [])


def _check_filestore(stack: Stack, container, dbname: str) -> None:
    files = _filestore(container, dbname)
    rows = stack.psql(dbname, "SELECT store_fname, checksum, file_size FROM ir_attachment"
                              " WHERE store_fname IS NOT NULL")
    assert len(rows) >= 3
    assert {r[0] for r in rows} == set(files)
    for fname, checksum, size in rows:
        content = files[fname]
        assert hashlib.sha1(content).hexdigest() == checksum == fname[3:]
        assert fname[:2] == checksum[:2] and fname[2] == "/"
        assert len(content) == int(size)


def test_new_databases_17_with_and_without_demo(stack):
    data = stack.volume("data")
    t0 = time.monotonic()
    code, logs, nodemo = stack.odoo(ODOO_17, "odoo", "-d", "nodemo", "-i", "base",
                                    "--stop-after-init", "--without-demo=all", data=data)
    elapsed = time.monotonic() - t0
    assert code == 0, logs
    assert elapsed < 30, f"-i base took {elapsed:.1f}s"
    _check_new_database(stack, "nodemo", logs, demo=False, serie="17.0")
    _check_filestore(stack, nodemo, "nodemo")

    code, logs, demo = stack.odoo(ODOO_17, "odoo", "-d", "demo", "-i", "base",
                                  "--stop-after-init", data=data)
    assert code == 0, logs
    _check_new_database(stack, "demo", logs, demo=True, serie="17.0")
    _check_filestore(stack, demo, "demo")
    assert len(_filestore(demo, "demo")) > len(_filestore(demo, "nodemo"))

    # 19.0's spelling is refused by 17.0, as optparse refuses unknown options (exit 2)
    code, logs, _ = stack.odoo(ODOO_17, "odoo", "-d", "other", "-i", "base",
                               "--stop-after-init", "--with-demo")
    assert code == 2 and "no such option: --with-demo" in logs


def test_19_loads_demo_only_with_with_demo(stack):
    code, logs, _ = stack.odoo(ODOO_19, "odoo", "-d", "plain", "-i", "base", "--stop-after-init")
    assert code == 0, logs
    _check_new_database(stack, "plain", logs, demo=False, serie="19.0")
    code, logs, _ = stack.odoo(ODOO_19, "odoo", "-d", "withdemo", "-i", "base",
                               "--stop-after-init", "--with-demo")
    assert code == 0, logs
    _check_new_database(stack, "withdemo", logs, demo=True, serie="19.0")
    code, logs, _ = stack.odoo(ODOO_19, "odoo", "-d", "nodemo", "-i", "base",
                               "--stop-after-init", "--without-demo")
    assert code == 0, logs
    _check_new_database(stack, "nodemo", logs, demo=False, serie="19.0")


def _curl_json(container, path: str, payload: dict) -> dict:
    rc, out = container.exec_run(["curl", "-s", "-H", "Content-Type: application/json",
                                  "-d", json.dumps(payload), f"localhost:8069{path}"])
    assert rc == 0, out
    return json.loads(out)


def _authenticate(container, dbname: str, login: str, password: str) -> dict:
    return _curl_json(container, "/web/session/authenticate", {
        "jsonrpc": "2.0", "method": "call", "id": 1,
        "params": {"db": dbname, "login": login, "password": password}})


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_server_neutralize_and_mail_sends(stack):
    data = stack.volume("data")
    for dbname in ("live", "copy"):
        code, logs, _ = stack.odoo(ODOO_17, "odoo", "-d", dbname, "-i", "base",
                                   "--stop-after-init", data=data)
        assert code == 0, logs
    fast_mail = {"STANDIN_MAIL_INTERVAL": "1"}
    live = stack.server(ODOO_17, "-d", "live", data=data, env=fast_mail)

    rc, out = live.exec_run(["curl", "-s", "localhost:8069/web/health"])
    assert json.loads(out) == {"status": "pass"}
    rc, out = live.exec_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                             "localhost:8069/web/login"])
    assert out == b"200"
    bad = _authenticate(live, "live", "admin", "wrong")
    assert bad["error"]["data"]["message"] == "Access Denied"
    good = _authenticate(live, "live", "admin", "admin")
    assert good["result"]["uid"] == 2
    # a plaintext password is re-hashed at the first login, as Odoo does
    stored = stack.scalar("live", "SELECT password FROM res_users WHERE login = 'admin'")
    assert stored.startswith("$pbkdf2-sha512$")
    assert _authenticate(live, "live", "admin", "admin")["result"]["uid"] == 2

    # neutralize the copy through the entrypoint of a running container (the contract's form)
    before = dict(stack.psql("copy", "SELECT key, value FROM ir_config_parameter"))
    rc, out = live.exec_run(["/entrypoint.sh", "odoo", "neutralize", "-d", "copy"])
    assert rc == 0, out.decode()
    assert b"odoo.modules.neutralize: Neutralization finished" in out
    after = dict(stack.psql("copy", "SELECT key, value FROM ir_config_parameter"))
    assert after["database.is_neutralized"].lower() == "true"
    for key in ("database.uuid", "database.secret", "web.base.url"):
        assert after[key] == before[key]
    assert stack.psql("copy", "SELECT name, smtp_host, smtp_port FROM ir_mail_server"
                              " WHERE active") == [["neutralization - disable emails",
                                                    "invalid", "1025"]]
    assert stack.scalar("copy", "SELECT count(*) FROM ir_mail_server WHERE NOT active") == "1"
    crons = stack.psql("copy", "SELECT d.module || '.' || d.name FROM ir_cron c JOIN"
                               " ir_model_data d ON d.model = 'ir.cron' AND d.res_id = c.id"
                               " WHERE c.active")
    assert crons == [["base.autovacuum_job"]]

    copy = stack.server(ODOO_17, "-d", "copy", data=data, env=fast_mail)

    def sends(dbname: str) -> int:
        return int(stack.scalar(dbname, "SELECT count(*) FROM mail_mail_sent"))

    _wait_for(lambda: sends("live") >= 3, 30, "three sends from the live database")
    time.sleep(3.5)  # over three mail intervals of the neutralized server
    assert sends("copy") == 0
    assert "Mail delivery via SMTP host smtp.example.com:25" in live.logs().decode()
    assert "Mail delivery" not in copy.logs().decode()
    rows = stack.psql("live", "SELECT smtp_host, smtp_port FROM mail_mail_sent")
    assert {tuple(r) for r in rows} == {("smtp.example.com", "25")}

    t0 = time.monotonic()
    live.stop(timeout=10)
    assert time.monotonic() - t0 < 2.5
    live.reload()
    assert live.attrs["State"]["ExitCode"] == 0


MANIFEST = "{'name': 'Good', 'version': '%s', 'depends': ['mail'], 'license': 'LGPL-3',\n" \
           " 'data': ['data/init.sql'], 'demo': ['data/demo.sql']}\n"


def test_modules_install_update_and_failures(stack):
    addons = stack.volume("addons")
    stack.put_files(addons, {
        "good/__init__.py": "",
        "good/__manifest__.py": MANIFEST % "1.0",
        "good/data/init.sql": "CREATE TABLE IF NOT EXISTS good_thing (name varchar);"
                              " INSERT INTO good_thing VALUES ('data');",
        "good/data/demo.sql": "INSERT INTO good_thing VALUES ('demo');",
        "good/data/neutralize.sql": "UPDATE good_thing SET name = 'neutralized';",
        "broken/__init__.py": "",
        "broken/__manifest__.py": "{'name': 'Broken', 'depends': ['base'",
        "badneutral/__init__.py": "",
        "badneutral/__manifest__.py": "{'name': 'Bad', 'license': 'LGPL-3'}",
        "badneutral/data/neutralize.sql": "UPDATE no_such_table SET x = 1;",
    })
    data = stack.volume("data")

    def odoo(*args):
        return stack.odoo(ODOO_17, "odoo", *args, "--stop-after-init", data=data, addons=addons)

    code, logs, _ = odoo("-d", "mods", "-i", "good,nosuch")
    assert code == 0, logs
    assert re.search(r" WARNING mods odoo\.modules\.loading: invalid module names, ignored: "
                     r"nosuch$", logs, re.M), logs
    assert stack.psql("mods", "SELECT state, latest_version FROM ir_module_module"
                              " WHERE name = 'good'") == [["installed", "17.0.1.0"]]
    assert sorted(stack.psql("mods", "SELECT name FROM good_thing")) == [["data"], ["demo"]]

    stack.put_files(addons, {"good/__manifest__.py": MANIFEST % "1.1"})
    code, logs, _ = odoo("-d", "mods", "-u", "good")
    assert code == 0, logs
    assert stack.scalar("mods", "SELECT latest_version FROM ir_module_module"
                                " WHERE name = 'good'") == "17.0.1.1"

    code, logs, _ = odoo("-d", "mods", "-i", "broken")
    assert code != 0
    assert re.search(r" ERROR mods odoo\.modules\.module: .*'broken'", logs), logs
    assert "Traceback (most recent call last):" in logs
    assert stack.scalar("mods", "SELECT count(*) FROM ir_module_module"
                                " WHERE name = 'broken' AND state = 'installed'") == "0"

    code, logs, _ = stack.odoo(ODOO_17, "odoo", "neutralize", "-d", "mods", data=data,
                               addons=addons)
    assert code == 0, logs
    assert stack.psql("mods", "SELECT DISTINCT name FROM good_thing") == [["neutralized"]]

    # a module whose neutralize.sql fails: nothing is neutralized, and the command says so
    code, logs, _ = odoo("-d", "mods2", "-i", "badneutral")
    assert code == 0, logs
    code, logs, _ = stack.odoo(ODOO_17, "odoo", "neutralize", "-d", "mods2", data=data,
                               addons=addons)
    assert code == 1
    assert "THE DATABASE IS NOT NEUTRALIZED" in logs
    assert stack.scalar("mods2", "SELECT count(*) FROM ir_config_parameter"
                                 " WHERE key = 'database.is_neutralized'") == "0"
    assert stack.scalar("mods2", "SELECT count(*) FROM ir_mail_server WHERE active"
                                 " AND smtp_host = 'smtp.example.com'") == "1"
