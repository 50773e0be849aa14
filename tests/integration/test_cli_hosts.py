"""`havsh host ...` as a user runs it: the real CLI in a subprocess, HAVSH_HOME set, against
the testbed. JSON results on stdout, JSON errors on stderr, non-zero exits.

Faults happen on side sshds and in hostc only (see tests/integration/test_hosts.py).
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from havsh_tui.core.model import Host
from tests.infra import testbed as tb
from tests.integration.test_hosts import (
    assert_no_auth,
    keygen,
    known_fingerprint,
    new_lines,
    pub_fingerprint,
    pushme,  # noqa: F401 - a fixture, shared
    start_side,
    stop_sides,
)

HAVSH = str(Path(sys.executable).with_name("havsh"))


class CLI:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env

    def __call__(self, *args: str, timeout: float = 120, env: dict | None = None):
        import subprocess

        t0 = time.monotonic()
        p = subprocess.run([HAVSH, *args], capture_output=True, text=True, timeout=timeout,
                           env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL)
        p.seconds = time.monotonic() - t0  # type: ignore[attr-defined]
        return p

    def json(self, *args: str, **kw):
        """Run with --json; returns (rc, last stdout JSON or None, stderr JSON or None, p)."""
        p = self(*args, "--json", **kw)
        out = [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]
        err = [json.loads(ln) for ln in p.stderr.splitlines() if ln.strip().startswith("{")]
        errors = [e["error"] for e in err if "error" in e]
        return p.returncode, (out[-1] if out else None), (errors[-1] if errors else None), p

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"


@pytest.fixture
def cli(tmp_path):
    home = tmp_path / "havsh"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HAVSH_", "SSH_", "DOCKER_"))}
    env["HAVSH_HOME"] = str(home)
    return CLI(home, env)


@pytest.fixture
def sides():
    started: list = []
    yield started
    stop_sides(started)


@pytest.fixture(scope="module")
def hostc(testbed):
    return tb.ensure_hostc()


@pytest.fixture
def key(testbed) -> str:
    return str(testbed.client_key)


def _a(key):
    return ["--ssh", "root@127.0.0.1:2222", "--identity", key]


def _b(key):
    return ["--ssh", "root@10.213.9.2", "--identity", key]


IMAGES = ["--postgres-image", "havsh-test/postgres:15", "--odoo-image", "havsh-test/odoo:17.0"]
#: The proxy settings of the shared test hosts (tests/integration/conftest.py): bootstrap
#: with any other would re-create the hosts' havsh-proxy under the other tests' feet.
PROXY = {"a": ["--proxy-image", "havsh-test/caddy:2", "--proxy-bind", "127.0.0.1",
               "--tls", "internal"],
         "b": ["--proxy-image", "havsh-test/caddy:2", "--proxy-bind", "10.213.9.2",
               "--tls", "internal"]}


def test_add_pin_tofu_ls_check_set(cli, key, testbed):
    fp_a = known_fingerprint(testbed.known_hosts, "[127.0.0.1]:2222")
    rc, out, err, _ = cli.json("host", "add", "a", *_a(key))
    assert rc == 1 and out is None
    assert err["type"] == "unknown_host_key" and err["fingerprint"] == fp_a
    assert "--accept-host-key" in err["message"]
    assert cli.json("host", "ls")[1] == []
    rc, _, err, _ = cli.json("host", "add", "a", *_a(key), "--accept-host-key",
                             "SHA256:" + "x" * 43)
    assert rc == 1 and err["type"] == "host_key_mismatch"
    rc, _, err, _ = cli.json("host", "add", "a", *_a(key), "--accept-host-key", fp_a,
                             "--trust-on-first-use")
    assert rc == 2 and err["type"] == "usage"
    rc, _, err, _ = cli.json("host", "add", "a", "--ssh", "root@", "--identity", key)
    assert rc == 2 and err["type"] == "usage"
    assert not cli.known_hosts.exists() or "127.0.0.1" not in cli.known_hosts.read_text()

    rc, out, err, _ = cli.json("host", "add", "a", *_a(key), "--accept-host-key", fp_a, *IMAGES)
    assert rc == 0, err
    assert out["fingerprint"] == fp_a and out["accepted_new_key"] is True
    assert out["docker_root"] == "/var/lib/docker" and out["host"]["port"] == 2222
    assert "[127.0.0.1]:2222 ssh-ed25519 " in cli.known_hosts.read_text()
    rc, out, err, _ = cli.json("host", "add", "b", *_b(key), "--trust-on-first-use", *IMAGES)
    assert rc == 0, err
    assert out["docker_root"] == "/var/lib/docker-b"
    rc, _, err, _ = cli.json("host", "add", "a", *_a(key))
    assert rc == 1 and "exists already" in err["message"]

    rc, rows, _, _ = cli.json("host", "ls")
    assert [r["name"] for r in rows] == ["a", "b"] and rows[0]["destination"] == \
        "root@127.0.0.1:2222"
    rc, rows, err, _ = cli.json("host", "ls", "--check")
    assert rc == 0 and all(r["health"]["reachable"] for r in rows), err
    rc, health, err, _ = cli.json("host", "check", "b")
    assert rc == 0 and err is None
    assert health["reachable"] and health["docker_root"] == "/var/lib/docker-b"
    for field in ("docker_version", "cpus", "load1", "mem_total", "mem_available",
                  "disk_free", "managed_containers", "rtt_ms", "ssh_rtt_ms"):
        assert health[field] is not None, field
    rc, both, _, _ = cli.json("host", "check")
    assert rc == 0 and [h["host"] for h in both] == ["a", "b"]
    p = cli("host", "check", "a")
    assert p.returncode == 0 and p.stdout.startswith("a: docker ")

    rc, out, err, _ = cli.json("host", "set", "a", "--odoo-image", "havsh-test/odoo:18.0")
    assert rc == 0 and out == {"host": "a", "changed": {"odoo_image": "havsh-test/odoo:18.0"}}
    rc, _, err, _ = cli.json("host", "set", "a")
    assert rc == 2 and err["type"] == "usage"
    # A new way to reach it is tested before it is saved.
    rc, _, err, _ = cli.json("host", "set", "a", "--port", "2299")
    assert rc == 1 and err["type"] == "host_unreachable" and "refused" in err["message"]
    assert cli.json("host", "ls")[1][0]["port"] == 2222
    audit = (cli.home / "audit.log").read_text()
    assert '"host.add"' in audit and '"host.set"' in audit


def test_ssh_config_alias_and_jump(cli, key, testbed):
    env = {"HAVSH_SSH_CONFIG": str(testbed.ssh_config)}
    # The alias's own UserKnownHostsFile knows the key: nothing to accept.
    rc, out, err, _ = cli.json("host", "add", "ha", "--ssh", "hosta", *IMAGES, env=env)
    assert rc == 0, err
    assert out["accepted_new_key"] is False and out["host"]["ssh_alias"] == "hosta"
    assert out["docker_root"] == "/var/lib/docker"
    rc, out, err, _ = cli.json("host", "add", "bj", *_b(key), "--jump", "hosta", env=env)
    assert rc == 0, err
    assert out["docker_root"] == "/var/lib/docker-b" and out["host"]["jump"] == "hosta"
    rc, health, err, _ = cli.json("host", "check", "bj", env=env)
    assert rc == 0 and health["docker_root"] == "/var/lib/docker-b", err
    p = cli("host", "ls", env=env)
    assert "hosta" in p.stdout and "bj" in p.stdout


def test_changed_key_refused_then_forget_and_accept(cli, key, sides):
    side = start_side("clichanged", sides, log_level="DEBUG1")
    dest = ["--ssh", f"root@{side.address}:{side.port}", "--identity", key]
    rc, out, err, _ = cli.json("host", "add", "side", *dest, "--trust-on-first-use")
    assert rc == 0, err
    old_fp = out["fingerprint"]
    side.new_host_key()
    side.restart()
    new_fp = pub_fingerprint(side.host_key.with_suffix(".pub"))
    before = side.log_text()
    rc, health, err, p = cli.json("host", "check", "side")
    assert rc == 1
    assert health["reachable"] is False and health["error_kind"] == "changed_host_key"
    assert err["type"] == "changed_host_key"
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in err["message"]
    assert err["fingerprint"] == new_fp and err["expected_fingerprint"] == old_fp
    p2 = cli("host", "check", "side")
    assert "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @" in p2.stdout
    rc, _, err, _ = cli.json("host", "bootstrap", "side")
    assert rc == 1 and err["type"] == "changed_host_key"
    rc, _, err, _ = cli.json("host", "check", "side", "--trust-on-first-use")
    assert rc == 1 and err["type"] == "changed_host_key"  # TOFU never overrides a change
    time.sleep(0.3)
    log = new_lines(side.log_text(), before)
    assert_no_auth(log)
    assert log.count("Connection from") == 4  # check x2, bootstrap, check --tofu

    rc, out, _, _ = cli.json("host", "forget-key", "side")
    assert rc == 0 and out["removed"] == 1 and out["known_hosts_entry"] == side.known_hosts_name
    rc, health, err, _ = cli.json("host", "check", "side")
    assert rc == 1 and err["type"] == "unknown_host_key" and err["fingerprint"] == new_fp
    rc, health, err, _ = cli.json("host", "check", "side", "--accept-host-key", new_fp)
    assert rc == 0 and health["reachable"] and health["docker_root"] == "/var/lib/docker-b"
    rc, health, err, _ = cli.json("host", "check", "side")
    assert rc == 0, err


@pytest.fixture
def enc_key(tmp_path):
    k = keygen(tmp_path / "id_enc", passphrase="s3cret pass")
    with tb.authorized_key(k.with_suffix(".pub").read_text()):
        yield k


def _pty_run(argv: list[str], env: dict, answers: list[tuple[str, str, int]], timeout=60):
    """Run argv on a pseudo-terminal, answering prompts: (marker, answer, n) answers the
    n-th time the marker shows. Returns (rc, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: havsh with the pty as its controlling terminal
        os.execve(argv[0], argv, env)
    out = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            # Answer the n-th prompt only once it is fully out (getpass flushes what was
            # typed before it turned echo off).
            if pending and out.count(pending[0][0].encode()) >= pending[0][2]:
                time.sleep(0.1)
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
                out += b"<answered>"
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:  # still waiting for an answer that never came: stop it (our child)
            time.sleep(1)
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_encrypted_key_passphrase_file_and_prompt(cli, enc_key, tmp_path, testbed):
    dest = ["--ssh", "root@127.0.0.1:2222", "--identity", str(enc_key), "--trust-on-first-use"]
    rc, _, err, _ = cli.json("host", "add", "enc", *dest)
    assert rc == 1 and err["type"] == "passphrase_required"
    assert err["key"] == str(enc_key) and "--passphrase-file" in err["message"]
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    rc, _, err, _ = cli.json("host", "add", "enc", *dest, "--passphrase-file", str(wrong))
    assert rc == 1 and err["type"] == "wrong_passphrase"
    right = tmp_path / "right"
    right.write_text("s3cret pass\n")
    rc, out, err, _ = cli.json("host", "add", "enc", *dest, "--passphrase-file", str(right))
    assert rc == 0 and out["docker_root"] == "/var/lib/docker", err
    rc, health, err, _ = cli.json("host", "check", "enc",
                                  env={"HAVSH_SSH_PASSPHRASE_FILE": str(right)})
    assert rc == 0 and health["reachable"], err
    assert "s3cret" not in (cli.home / "audit.log").read_text()
    # On a terminal: asked with hidden input (a wrong answer first, as a user would).
    prompt = f"Enter passphrase for key '{enc_key}': "
    rc, output = _pty_run([HAVSH, "host", "check", "enc"], cli.env, [
        (prompt, "wrong one", 1), (prompt, "s3cret pass", 2)])
    assert rc == 0, output
    assert "Bad passphrase, try again." in output
    assert "enc: docker " in output
    assert "s3cret" not in output and "wrong one" not in output  # never echoed


def test_unknown_key_question_on_a_terminal(cli, key, testbed):
    fp = known_fingerprint(testbed.known_hosts, "10.213.9.2")
    rc, output = _pty_run([HAVSH, "host", "add", "qb", *_b(key), *IMAGES], cli.env, [
        ("(yes/no/[fingerprint])? ", "no", 1)])
    assert rc == 1 and fp in output and "not accepted" in output
    assert not cli.known_hosts.exists() or "10.213.9.2" not in cli.known_hosts.read_text()
    rc, output = _pty_run([HAVSH, "host", "add", "qb", *_b(key), *IMAGES], cli.env, [
        ("(yes/no/[fingerprint])? ", fp, 1)])
    assert rc == 0, output
    assert "added host qb" in output and "10.213.9.2 ssh-ed25519" in cli.known_hosts.read_text()


def test_unreachable_hosts_fail_within_10s(cli, key, hostc):
    # A connect timeout of 6 s (settings.toml) leaves room for the process start (about a
    # second on this loaded 2-core machine) inside 10 s.
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "settings.toml").write_text("ssh_connect_timeout = 6\n")
    timings = {}
    for name, addr in (("refused", hostc["refused"]), ("blackhole", hostc["blackhole"])):
        rc, out, err, p = cli.json("host", "add", name, "--ssh", f"root@{addr}",
                                   "--identity", key)
        assert rc == 1 and err["type"] == "host_unreachable", err
        assert p.seconds < 10, p.seconds
        rc, _, _, _ = cli.json("host", "add", name, "--ssh", f"root@{addr}", "--identity",
                               key, "--no-check")
        assert rc == 0
        rc, health, err, p = cli.json("host", "check", name)
        timings[name] = p.seconds
        assert rc == 1 and health["reachable"] is False
        assert err["type"] == "host_unreachable" and err["host"] == name
        assert ("refused" if name == "refused" else "timed out") in err["message"]
        assert p.seconds < 10, p.seconds
    print(f"\nCLI `host check` (process start included): refused {timings['refused']:.2f} s, "
          f"blackholed {timings['blackhole']:.2f} s with a 6 s connect timeout")


def test_rm_refuses_while_services_remain(cli, key):
    from havsh_tui.core.inventory import open_inventory
    from havsh_tui.core.model import Service, ServiceType
    from havsh_tui.core.paths import AppPaths

    rc, *_ = cli.json("host", "add", "gone", "--ssh", "root@10.213.10.2", "--no-check")
    assert rc == 0
    inv = open_inventory(AppPaths(home=cli.home))
    for n in ("shop", "erp"):
        inv.add_service(Service(name=n, host="gone", type=ServiceType.TEST,
                                odoo_version="17.0", image="odoo:17.0"))
    rc, _, err, _ = cli.json("host", "rm", "gone")
    assert rc == 1 and err["type"] == "host_in_use" and err["services"] == ["erp", "shop"]
    assert "erp, shop" in err["message"]
    p = cli("host", "rm", "gone")
    assert p.returncode == 1 and "still has 2 service(s): erp, shop" in p.stderr
    for n in ("shop", "erp"):
        inv.remove_service("gone", n)
    inv.close()
    rc, out, _, _ = cli.json("host", "rm", "gone")
    assert rc == 0 and out == {"removed": "gone"}
    rc, _, err, _ = cli.json("host", "rm", "gone")
    assert rc == 1 and "not in the inventory" in err["message"]


def test_docker_not_running_is_a_clear_error(cli, key, sides, hostc):
    side = start_side("clinodocker", sides, netns="hostc", address=hostc["refused"],
                      docker="none")
    rc, _, err, _ = cli.json("host", "add", "nd", "--ssh", f"root@{side.address}:{side.port}",
                             "--identity", key, "--trust-on-first-use")
    assert rc == 1 and err["type"] == "docker_unavailable" and err["reason"] == "not_running"
    assert "the Docker engine is not running" in err["message"]
    assert cli.json("host", "ls")[1] == []


@pytest.mark.slow
def test_bootstrap_twice_then_push_image(cli, key, testbed):
    for name, dest in (("a", _a(key)), ("b", _b(key))):
        rc, _, err, _ = cli.json("host", "add", name, *dest, "--trust-on-first-use", *IMAGES,
                                 *PROXY[name])
        assert rc == 0, err
    for name in ("a", "b"):
        rc, first, err, _ = cli.json("host", "bootstrap", name)
        assert rc == 0, err
        rc, second, err, _ = cli.json("host", "bootstrap", name)
        assert rc == 0, err
        assert second["noop"] is True and second["created"] == [] and second["changed"] == []
        assert second["ids"] == first["ids"]
        p = cli("host", "bootstrap", name)
        assert "already bootstrapped, nothing changed" in p.stdout


def test_push_image_cli(cli, key, testbed, pushme):  # noqa: F811
    from havsh_tui.remote.hosts import HostSession, SSHOptions

    ref, local_a, local_b = pushme
    for name, dest in (("a", _a(key)), ("b", _b(key))):
        rc, _, err, _ = cli.json("host", "add", name, *dest, "--trust-on-first-use", *IMAGES)
        assert rc == 0, err
    rc, _, err, _ = cli.json("host", "push-image", "b", "havsh-test/nowhere:1", "--from", "a")
    assert rc == 1 and "no image" in err["message"]
    rc, _, err, _ = cli.json("host", "push-image", "b", ref, "--from", "b")
    assert rc == 2 and err["type"] == "usage"
    rc, out, err, _ = cli.json("host", "push-image", "b", ref, "--from", "local")
    assert rc == 0, err
    assert out["skipped"] is False and out["bytes"] > 100_000
    rc, out, err, _ = cli.json("host", "push-image", "b", ref, "--from", "a")
    assert rc == 0 and out["skipped"] is True
    assert local_b.images.get(ref).id == local_a.images.get(ref).id
    # Run it on B, through the product's own SSH path.
    opts = SSHOptions(known_hosts=cli.known_hosts, system_known_hosts=False)
    s = HostSession(Host(name="b", address="10.213.9.2", user="root", identity_file=key), opts)
    try:
        out = s.docker().containers.run(ref, ["/tini", "--version"], remove=True,
                                        labels={"sh.hav.test": "1"})
    finally:
        s.close()
    assert b"tini version" in out
    assert '"image.load"' in (cli.home / "audit.log").read_text()
