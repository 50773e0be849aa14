"""Hosts over SSH on the real testbed: host keys, ProxyJump, passphrases, unreachable hosts,
dropped connections, Docker missing or forbidden, bootstrap, images between hosts, health.

Faults are never made on hosta's or hostb's own sshd, engine or veth (other engineers run
tests against them at the same time). A "side sshd" (tests/infra/testbed.py) is a private
sshd process of this test inside host B's namespace, reaching engine B like hostb's own
sshd does, with its own host key and log: that is where keys change, sessions are killed
and packets are dropped. Unreachable addresses live in the namespace hostc (no sshd, one
address whose packets are dropped).
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import docker
import paramiko
import pytest

from havsh_tui.core.model import Host
from havsh_tui.ops.hosts import check_host, connect_and_verify, forget_host_key
from havsh_tui.remote.docker_api import DockerUnavailable
from havsh_tui.remote.hosts import HostPool, HostSession, SSHOptions, target_for
from havsh_tui.remote.ssh import (
    AuthenticationFailed,
    ChangedHostKey,
    HostKeyMismatch,
    HostUnreachable,
    PassphraseRequired,
    SSHConnection,
    UnknownHostKey,
    WrongPassphrase,
    blob_fingerprint,
)
from tests.infra import testbed as tb

# --------------------------------------------------------------------------- helpers


def known_fingerprint(known_hosts: Path, name: str) -> str:
    for line in known_hosts.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return blob_fingerprint(base64.b64decode(parts[2]))
    raise LookupError(name)


def pub_fingerprint(pub: Path) -> str:
    return blob_fingerprint(base64.b64decode(pub.read_text().split()[1]))


def make_host(name: str, address: str, port: int, key: str | Path, **kw) -> Host:
    return Host(name=name, address=address, port=port, user=kw.pop("user", "root"),
                identity_file=str(key), postgres_image="havsh-test/postgres:15",
                odoo_image="havsh-test/odoo:17.0", **kw)


def start_side(tag: str, started: list, **kw) -> tb.SideSshd:
    """A side sshd on a random free port (retried if the port is taken)."""
    last: Exception | None = None
    for _ in range(4):
        port = random.randint(20000, 29999)
        name = f"{tag}-{os.getpid()}-{port}"
        try:
            s = tb.side_sshd(name, port=port, **kw)
        except tb.TestbedError as exc:
            last = exc
            continue
        started.append(s)
        return s
    raise RuntimeError(f"no side sshd for {tag}: {last}")


def stop_sides(started: list) -> None:
    for s in started:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def new_lines(log_text: str, before: str) -> str:
    return log_text[len(before):]


AUTH_MARKS = ("userauth-request", "publickey", "Accepted", "Starting session",
              "User child", "session_new")


def assert_no_auth(log: str) -> None:
    """A DEBUG1 sshd log with a connection but not one byte of authentication."""
    assert "Connection from" in log, log
    for mark in AUTH_MARKS:
        assert mark not in log, f"{mark!r} in the side sshd log:\n{log}"


def keygen(path: Path, passphrase: str = "", kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", path.name,
                    "-f", str(path)], check=True)
    return path


def ss_tcp(filter_expr: list[str]) -> list[tuple[str, str, set[int]]]:
    """(local, peer, pids) of established TCP sockets matching an ss filter, this netns."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", *filter_expr],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        local, peer = parts[2], parts[3]
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        rows.append((local, peer, pids))
    return rows


@pytest.fixture
def sides():
    started: list[tb.SideSshd] = []
    yield started
    stop_sides(started)


@pytest.fixture(scope="module")
def hostc(testbed):
    return tb.ensure_hostc()


@pytest.fixture
def client_key(testbed) -> str:
    return str(testbed.client_key)


# --------------------------------------------------------------------------- host keys


def test_unknown_key_then_reject_then_accept(ssh_opts, host_a, host_b, testbed):
    trusted = testbed.known_hosts
    ssh_opts.known_hosts.write_text("")
    for h, name in ((host_a, "[127.0.0.1]:2222"), (host_b, "10.213.9.2")):
        expected = known_fingerprint(trusted, name)
        with pytest.raises(UnknownHostKey) as info:
            HostSession(h, ssh_opts).ssh.client()
        e = info.value
        assert (e.hostname, e.key_type, e.fingerprint) == (name, "ssh-ed25519", expected)
        assert "can't be established" in str(e) and f"ED25519 key fingerprint is {expected}" \
            in str(e)
        assert e.extra["fingerprint"] == expected
        # Rejected (the user said no, or pinned another key): nothing is saved.
        with pytest.raises(HostKeyMismatch):
            HostSession(h, ssh_opts, accept_fingerprint="SHA256:" + "A" * 43).ssh.client()
        assert name not in ssh_opts.known_hosts.read_text()
        # Accepted: saved to the app's known_hosts, and then known without any pin.
        s = HostSession(h, ssh_opts, accept_fingerprint=expected)
        s.ssh.client()
        assert s.ssh.accepted_keys == [(name, "ssh-ed25519", expected)]
        assert s.docker().ping()
        s.close()
        again = HostSession(h, ssh_opts)
        again.ssh.client()
        assert again.ssh.accepted_keys == []
        again.close()
    lines = ssh_opts.known_hosts.read_text().splitlines()
    assert len(lines) == 2 and all(" ssh-ed25519 " in ln for ln in lines)


def test_trust_on_first_use_and_connect_and_verify(ssh_opts, host_b, testbed):
    ssh_opts.known_hosts.write_text("")
    session, fp, kind, accepted = connect_and_verify(host_b, ssh_opts, trust_on_first_use=True)
    session.close()
    assert accepted and kind == "ssh-ed25519"
    assert fp == known_fingerprint(testbed.known_hosts, "10.213.9.2")
    session, fp2, _, accepted = connect_and_verify(host_b, ssh_opts, trust_on_first_use=True)
    session.close()
    assert fp2 == fp and not accepted  # known now: nothing new was accepted


def test_unknown_key_sends_no_login(ssh_opts, client_key, sides):
    side = start_side("unknown", sides, log_level="DEBUG1")
    h = make_host("side", side.address, side.port, client_key)
    before = side.log_text()
    with pytest.raises(UnknownHostKey) as info:
        HostSession(h, ssh_opts).ssh.client()
    assert info.value.fingerprint == pub_fingerprint(side.host_key.with_suffix(".pub"))
    time.sleep(0.3)
    assert_no_auth(new_lines(side.log_text(), before))


def test_changed_key_is_refused_with_nothing_sent_then_restored(ssh_opts, client_key, sides,
                                                                testbed):
    """Host B's sshd host key is regenerated, then restored (on a side sshd of host B, which
    serves B's own key and reaches engine B: hostb's shared sshd is left alone)."""
    b_key = tb.SSHD_B.host_key
    side = start_side("changed", sides, log_level="DEBUG1", key_from=b_key)
    h = make_host("bside", side.address, side.port, client_key)
    # Known as B's key, under this address and port.
    b_line = testbed.known_hosts.read_text().splitlines()[1].split(None, 1)[1]
    assert testbed.known_hosts.read_text().splitlines()[1].startswith("10.213.9.2 ")
    with ssh_opts.known_hosts.open("a") as fh:
        fh.write(f"{side.known_hosts_name} {b_line}\n")
    b_fp = pub_fingerprint(b_key.with_suffix(".pub"))
    ok = HostSession(h, ssh_opts)
    assert ok.docker().info()["DockerRootDir"] == "/var/lib/docker-b"
    ok.close()

    side.new_host_key()  # regenerate the host key, and restart the sshd with it
    side.restart()
    new_fp = pub_fingerprint(side.host_key.with_suffix(".pub"))
    before = side.log_text()
    s = HostSession(h, ssh_opts)
    with pytest.raises(ChangedHostKey) as info:
        s.docker()
    e = info.value
    text = str(e)
    assert "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!" in text
    assert "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!" in text
    assert e.fingerprint == new_fp and e.expected_fingerprint == b_fp
    assert f"Offending ED25519 key in {ssh_opts.known_hosts}:" in text
    assert "havsh host forget-key" in text
    time.sleep(0.3)
    log = new_lines(side.log_text(), before)
    assert_no_auth(log)
    assert log.count("Connection from") == 1
    # Refused again, without even connecting, while known_hosts is unchanged.
    before = side.log_text()
    for _ in range(3):
        with pytest.raises(ChangedHostKey):
            s.ssh.client()
    time.sleep(0.3)
    assert "Connection from" not in new_lines(side.log_text(), before)
    assert not s.ssh.is_connected

    # Restore B's own key: the very same session connects again, nothing to forget.
    side.key_from = b_key
    side.restart()
    s.ssh._refused = None  # (a restored key does not change known_hosts)
    assert s.docker().ping()
    s.close()

    # Regenerated for good: forget the old key on purpose, then accept the new one.
    side.new_host_key()
    side.restart()
    with pytest.raises(ChangedHostKey):
        HostSession(h, ssh_opts).ssh.client()
    entry, removed = forget_host_key(h, ssh_opts)
    assert (entry, removed) == (side.known_hosts_name, 1)
    with pytest.raises(UnknownHostKey) as info:
        HostSession(h, ssh_opts).ssh.client()
    fp = info.value.fingerprint
    s = HostSession(h, ssh_opts, accept_fingerprint=fp)
    assert s.docker().info()["DockerRootDir"] == "/var/lib/docker-b"
    s.close()


def test_openssh_known_hosts_files_are_read(ssh_opts, host_a, testbed, tmp_path):
    """~/.ssh/known_hosts (and ssh_config's UserKnownHostsFile) count as known, hashed or
    not; the app's file is not needed then."""
    ssh_opts.known_hosts.write_text("")
    ssh_opts.system_known_hosts = True
    ssh_dir = Path.home() / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    user_kh = ssh_dir / "known_hosts"
    shutil.copy(testbed.known_hosts, user_kh)
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(user_kh)], check=True,
                   capture_output=True)
    assert "127.0.0.1" not in user_kh.read_text()  # hashed names only
    s = HostSession(host_a, ssh_opts)
    s.ssh.client()
    assert s.ssh.accepted_keys == []
    s.close()
    user_kh.unlink()
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host 127.0.0.1\n  UserKnownHostsFile {testbed.known_hosts}\n")
    ssh_opts.ssh_config = cfg
    s = HostSession(host_a, ssh_opts)
    s.ssh.client()
    s.close()
    ssh_opts.system_known_hosts = False  # the OpenSSH files are off: unknown again
    with pytest.raises(UnknownHostKey):
        HostSession(host_a, ssh_opts).ssh.client()


# --------------------------------------------------------------------------- ProxyJump


def _jump_opts(ssh_opts: SSHOptions, testbed) -> SSHOptions:
    ssh_opts.ssh_config = testbed.ssh_config  # aliases hosta/hostb with their keys
    return ssh_opts


def test_proxyjump_reaches_b_through_a(ssh_opts, testbed, client_key, hostb):
    opts = _jump_opts(ssh_opts, testbed)
    h = make_host("b-via-a", "10.213.9.2", 22, client_key, jump="hosta")
    t = target_for(h, opts)
    assert t.jump is not None and (t.jump.hostname, t.jump.port) == ("127.0.0.1", 2222)
    b_log = Path(tb.SSHD_B.log)
    s = HostSession(h, opts)
    info = s.docker().info()
    assert info["DockerRootDir"] == "/var/lib/docker-b"
    # Our end of B's connection is a channel of A's transport, not a socket of ours.
    assert isinstance(s.ssh.transport().sock, paramiko.Channel)
    assert not any(peer == "10.213.9.2:22" and os.getpid() in pids
                   for _, peer, pids in ss_tcp(["dst", "10.213.9.2"]))
    # The proof that it went through A: A's sshd session that serves our jump connection
    # owns the TCP connection to B:22, and B's sshd saw that connection come in.
    jump_sock = s.ssh._jump.transport().sock
    our_port = jump_sock.getsockname()[1]
    a_side = [pids for local, peer, pids in ss_tcp(["sport", "=", ":2222"])
              if local == "127.0.0.1:2222" and peer == f"127.0.0.1:{our_port}"]
    assert a_side, "A's sshd does not hold our jump connection"
    a_pids = a_side[0]
    to_b = [(local, pids) for local, peer, pids in ss_tcp(["dst", "10.213.9.2"])
            if peer == "10.213.9.2:22" and pids & a_pids]
    assert to_b, "no connection from A's sshd session to B:22"
    a_port = to_b[0][0].rsplit(":", 1)[1]
    deadline = time.monotonic() + 5
    while f"Connection from 10.213.9.1 port {a_port} " not in b_log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"B's sshd log has no connection from port {a_port}"
        time.sleep(0.1)
    a_parent = {int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
                for p in a_pids}
    assert hostb.sshd_pid not in a_pids
    assert a_parent & ({tb._read_pid(tb.SSHD_A.pidfile)} | a_pids)
    s.close()


def test_proxyjump_chain_and_proxycommand(ssh_opts, testbed, client_key, tmp_path):
    opts = _jump_opts(ssh_opts, testbed)
    # A chain: our connection -> A -> A again -> B (each hop a channel of the previous one).
    h = make_host("b-via-a-a", "10.213.9.2", 22, client_key, jump="hosta,root@127.0.0.1:2222")
    t = target_for(h, opts)
    assert [(x.hostname, x.port) for x in t.hops()] == [
        ("127.0.0.1", 2222), ("127.0.0.1", 2222), ("10.213.9.2", 22)]
    s = HostSession(h, opts)
    assert s.docker().info()["DockerRootDir"] == "/var/lib/docker-b"
    hop2 = s.ssh._jump
    assert isinstance(hop2.transport().sock, paramiko.Channel)
    assert isinstance(hop2._jump.transport().sock, socket.socket)
    s.close()
    # ProxyJump from ssh_config, and ProxyCommand (OpenSSH's own ssh -W through A).
    cfg = tmp_path / "ssh_config"
    cfg.write_text(testbed.ssh_config.read_text() + f"""
Host b-jumped
    HostName 10.213.9.2
    User root
    IdentityFile {client_key}
    IdentitiesOnly yes
    ProxyJump hosta

Host b-proxied
    HostName 10.213.9.2
    User root
    IdentityFile {client_key}
    IdentitiesOnly yes
    ProxyCommand ssh -F {testbed.ssh_config} -W %h:%p hosta
""")
    opts.ssh_config = cfg
    for alias in ("b-jumped", "b-proxied"):
        h = Host(name=alias, address=alias, ssh_alias=alias)
        t = target_for(h, opts)
        assert (t.hostname, t.username, t.key_filenames) == ("10.213.9.2", "root", [client_key])
        s = HostSession(h, opts)
        assert s.docker().info()["DockerRootDir"] == "/var/lib/docker-b", alias
        rc, out, _ = s.run(["cat", "/proc/sys/kernel/hostname"])
        assert rc == 0
        s.close()


def test_unknown_jump_host_key_is_asked_for_that_hop(ssh_opts, testbed, client_key):
    """Neither A (the jump host) nor B is known: each hop's key is asked for under its own
    name; saving it (the dialog's "accept") lets the next attempt go one hop further."""
    opts = _jump_opts(ssh_opts, testbed)
    opts.known_hosts.write_text("")
    h = make_host("b-via-a", "10.213.9.2", 22, client_key, jump="hosta")
    names = []
    for _ in range(3):
        try:
            s = HostSession(h, opts)
            s.ssh.client()
            break
        except UnknownHostKey as exc:
            names.append(exc.hostname)
            exc.save_to(opts.known_hosts)
    assert names == ["[127.0.0.1]:2222", "10.213.9.2"]
    assert s.docker().info()["DockerRootDir"] == "/var/lib/docker-b"
    s.close()
    # --trust-on-first-use accepts every hop at once.
    opts.known_hosts.write_text("")
    session, _, _, accepted = connect_and_verify(h, opts, trust_on_first_use=True)
    assert accepted and [n for n, _, _ in session.ssh.all_accepted_keys()] == [
        "[127.0.0.1]:2222", "10.213.9.2"]
    session.close()


def test_jump_host_cannot_reach_target_fails_in_time(ssh_opts, testbed, client_key, hostc):
    opts = _jump_opts(ssh_opts, testbed)
    h = make_host("nowhere", hostc["refused"], 22, client_key, jump="hosta")
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable) as info:
        HostSession(h, opts).ssh.client()
    assert time.monotonic() - t0 < 3
    assert "jump host" in str(info.value) and "cannot reach" in str(info.value)
    h = make_host("blackhole", hostc["blackhole"], 22, client_key, jump="hosta")
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable) as info:
        HostSession(h, opts).ssh.client()
    elapsed = time.monotonic() - t0
    assert elapsed < opts.connect_timeout + 2, elapsed
    assert "jump host" in str(info.value)


# --------------------------------------------------------------------------- keys


@pytest.fixture
def encrypted_key(tmp_path):
    """An encrypted ed25519 key, authorized on hosta and hostb for the test."""
    key = keygen(tmp_path / "id_enc", passphrase="correct horse")
    with tb.authorized_key(key.with_suffix(".pub").read_text()):
        yield key


def _spy_connects(monkeypatch) -> list:
    calls: list = []
    real = socket.create_connection

    def spy(addr, *a, **kw):
        calls.append(addr)
        return real(addr, *a, **kw)

    monkeypatch.setattr("havsh_tui.remote.ssh.socket.create_connection", spy)
    return calls


def test_encrypted_key_right_and_wrong_passphrase(ssh_opts, host_a, host_b, encrypted_key,
                                                  monkeypatch):
    calls = _spy_connects(monkeypatch)
    for h in (host_a, host_b):
        h.identity_file = str(encrypted_key)
        with pytest.raises(PassphraseRequired) as info:
            HostSession(h, ssh_opts).ssh.client()
        assert type(info.value) is PassphraseRequired
        assert info.value.key_path == str(encrypted_key)
        assert "passphrase" in str(info.value)
        with pytest.raises(WrongPassphrase) as info:
            HostSession(h, ssh_opts, passphrase="wrong").ssh.client()
        assert isinstance(info.value, PassphraseRequired)  # the TUI just asks again
        assert "wrong passphrase" in str(info.value)
        assert calls == []  # neither cost a connection
        s = HostSession(h, ssh_opts, passphrase="correct horse")
        assert s.docker().ping()
        s.close()
        calls.clear()


def test_encrypted_key_of_a_jump_host(ssh_opts, testbed, client_key, encrypted_key, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host jumpa\n  HostName 127.0.0.1\n  Port 2222\n  User root\n"
                   f"  IdentityFile {encrypted_key}\n  IdentitiesOnly yes\n")
    ssh_opts.ssh_config = cfg
    h = make_host("b-via-enc", "10.213.9.2", 22, client_key, jump="jumpa")
    with pytest.raises(PassphraseRequired) as info:
        HostSession(h, ssh_opts).ssh.client()
    assert info.value.key_path == str(encrypted_key)
    s = HostSession(h, ssh_opts, passphrase="correct horse")
    assert s.docker().info()["DockerRootDir"] == "/var/lib/docker-b"
    s.close()


def test_passphrase_callback_and_pool(ssh_opts, host_a, encrypted_key):
    host_a.identity_file = str(encrypted_key)
    asked: list[tuple[str, bool]] = []
    answers = iter(["nope", "correct horse"])

    def ask(path, wrong_before):
        asked.append((path, wrong_before))
        return next(answers)

    ssh_opts.passphrase_callback = ask
    s = HostSession(host_a, ssh_opts)
    s.ssh.client()
    assert asked == [(str(encrypted_key), False), (str(encrypted_key), True)]
    # A reconnect reuses the passphrase: not asked again.
    s.ssh.transport().close()
    s.ssh.client()
    assert len(asked) == 2 and s.ssh.connects == 2
    s.close()
    # The TUI's way: PassphraseRequired, then the pool's session with passphrase=.
    ssh_opts.passphrase_callback = None
    pool = HostPool(ssh_opts)
    with pytest.raises(PassphraseRequired):
        pool.session(host_a).docker()
    assert pool.session(host_a, passphrase="correct horse").docker().ping()
    assert pool.session(host_a).docker().ping()  # kept for this host
    pool.close()
    # And a passphrase file.
    pf = encrypted_key.parent / "pass"
    pf.write_text("correct horse\n")
    ssh_opts.passphrase_file = pf
    s = HostSession(host_a, ssh_opts)
    assert s.docker().ping()
    s.close()


@pytest.fixture
def agent(tmp_path):
    """An ssh-agent of this test (stopped by PID at the end)."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not sock.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    def add(key: Path, passphrase: str = "") -> None:
        askpass = tmp_path / "askpass.sh"
        askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' '{passphrase}'\n")
        askpass.chmod(0o700)
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock), SSH_ASKPASS=str(askpass),
                   SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        subprocess.run(["ssh-add", str(key)], env=env, check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)

    yield sock, add
    proc.send_signal(signal.SIGTERM)
    proc.wait(5)


def test_agent_keys(ssh_opts, host_a, client_key, encrypted_key, agent, monkeypatch,
                    tmp_path):
    sock, add = agent
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    add(Path(client_key))
    # No identity file at all: the agent's key logs in.
    h = Host(name="agent", address=host_a.address, port=host_a.port, user="root")
    s = HostSession(h, ssh_opts)
    assert s.docker().ping()
    s.close()
    # IdentitiesOnly (ssh_config) turns the agent off for other keys...
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host {host_a.address}\n  IdentitiesOnly yes\n")
    ssh_opts.ssh_config = cfg
    with pytest.raises(AuthenticationFailed) as info:
        HostSession(h, ssh_opts).ssh.client()
    assert "permission denied" in str(info.value)
    # ...as does IdentityAgent none.
    cfg.write_text(f"Host {host_a.address}\n  IdentityAgent none\n")
    with pytest.raises(AuthenticationFailed):
        HostSession(h, ssh_opts).ssh.client()
    # An encrypted identity file that the agent holds needs no passphrase (as in OpenSSH).
    cfg.write_text(f"Host {host_a.address}\n  IdentityAgent {sock}\n")
    monkeypatch.delenv("SSH_AUTH_SOCK")
    add(encrypted_key, "correct horse")
    host_a.identity_file = str(encrypted_key)
    s = HostSession(host_a, ssh_opts)
    assert s.docker().ping()
    s.close()


# --------------------------------------------------------------------------- unreachable


def test_refused_and_blackholed_hosts_fail_fast(ssh_opts, client_key, hostc):
    timings = {}
    for what, addr in (("refused", hostc["refused"]), ("timeout", hostc["blackhole"])):
        h = make_host(what, addr, 22, client_key)
        t0 = time.monotonic()
        with pytest.raises(HostUnreachable) as info:
            HostSession(h, ssh_opts).docker()
        timings[what] = time.monotonic() - t0
        msg = str(info.value)
        assert ("refused" if what == "refused" else "timed out") in msg, msg
        assert addr in msg
        # The poll of the same host reports it, within the same time.
        t0 = time.monotonic()
        health = check_host(HostSession(h, ssh_opts))
        assert time.monotonic() - t0 < 10
        assert not health.reachable and health.error_kind == "host_unreachable"
    print(f"\nunreachable: refused in {timings['refused']:.3f} s, "
          f"blackholed in {timings['timeout']:.2f} s (connect timeout "
          f"{ssh_opts.connect_timeout:.0f} s)")
    assert timings["refused"] < 2
    assert timings["timeout"] < 10


def test_no_ssh_banner_is_a_clear_error(ssh_opts, client_key):
    """A port that accepts TCP but never speaks SSH: bounded by the connect timeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    ssh_opts.connect_timeout = 2
    try:
        t0 = time.monotonic()
        with pytest.raises(HostUnreachable) as info:
            HostSession(make_host("mute", "127.0.0.1", port, client_key), ssh_opts).ssh.client()
        assert time.monotonic() - t0 < 5
        assert "banner" in str(info.value) or "timed out" in str(info.value)
    finally:
        srv.close()


# --------------------------------------------------------------------------- dropped connections


def _side_session(side, ssh_opts, client_key, **target) -> HostSession:
    with ssh_opts.known_hosts.open("a") as fh:
        fh.write(side.known_hosts_line())
    h = make_host("dropper", side.address, side.port, client_key)
    s = HostSession(h, ssh_opts)
    for k, v in target.items():
        setattr(s.ssh.target, k, v)
    return s


def _wait_until(pred, what: str, timeout: float = 15.0) -> None:
    """Wait (at least a second, as a user would) until ``pred()``: a fixed sleep raced a
    loaded machine, where the call had not started yet when the connection was cut."""
    t0 = time.monotonic()
    time.sleep(1.0)
    while not pred():
        assert time.monotonic() - t0 < timeout, f"{what}: not seen in {timeout:.0f} s"
        time.sleep(0.05)


def _running_under(side, argv: list[str]) -> bool:
    """Whether a process with this argv runs under the side sshd's connections."""
    want = ("\0".join(argv) + "\0").encode()
    for pid in side.sessions():
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == want:
                return True
        except OSError:
            continue
    return False


def _in_thread(fn):
    box: dict = {}

    def run():
        t0 = time.monotonic()
        box["started"] = t0
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc
        box["seconds"] = time.monotonic() - t0

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, box


def test_killed_session_fails_the_call_in_flight_then_reconnects(ssh_opts, client_key, sides):
    side = start_side("kill", sides)
    s = _side_session(side, ssh_opts, client_key)
    assert s.docker().info()["DockerRootDir"] == "/var/lib/docker-b"
    th, box = _in_thread(lambda: s.run(["sleep", "30"], timeout=60))
    _wait_until(lambda: _running_under(side, ["sleep", "30"]), "sleep 30 on the host")
    killed = side.kill_sessions()
    assert killed
    th.join(10)
    assert not th.is_alive()
    assert isinstance(box.get("error"), HostUnreachable), box
    assert "dropped" in str(box["error"]) and box["seconds"] < 5
    # The next calls reconnect by themselves.
    assert s.run(["true"])[0] == 0
    assert s.docker().ping()
    assert s.ssh.connects == 2

    # A Docker call in flight: the engine holds /events open until `until`.
    until = int(time.time()) + 30
    th, box = _in_thread(lambda: s.docker().api.get(
        s.docker().api._url("/events"), params={"since": until - 30, "until": until},
        timeout=60))
    _wait_until(lambda: "started" in box, "the /events call's thread")
    time.sleep(1.0)  # the request goes out on a pooled channel: nothing to see it by
    side.kill_sessions()
    th.join(10)
    assert isinstance(box.get("error"), HostUnreachable), box
    assert "Docker API call" in str(box["error"])
    assert s.docker().containers.list(all=True) is not None
    assert s.ssh.connects == 3

    # The sshd itself stops (by PID): calls fail clearly; once it is back, they work again.
    side.stop()
    with pytest.raises(HostUnreachable) as info:
        s.docker().ping()
    assert "refused" in str(info.value)
    side.start()
    assert s.docker().ping()
    s.close()


def test_silently_dropped_path_is_noticed_then_reconnects(ssh_opts, client_key, sides):
    side = start_side("drop", sides)
    s = _side_session(side, ssh_opts, client_key, keepalive=1, keepalive_count_max=2)
    assert s.docker().ping()
    th, box = _in_thread(lambda: s.run(["sleep", "30"], timeout=60))
    time.sleep(0.5)
    with tb.drop_tcp_port(side.netns, side.port):
        th.join(15)
        assert not th.is_alive()
        assert isinstance(box.get("error"), HostUnreachable), box
        assert "keepalive" in str(box["error"])
        in_flight = box["seconds"]
        # While the path is down: a clear timeout, within the connect timeout.
        t0 = time.monotonic()
        with pytest.raises(HostUnreachable):
            s.docker().ping()
        down_call = time.monotonic() - t0
    assert s.docker().ping()
    assert s.ssh.connects == 2
    print(f"\nsilent drop: call in flight failed after {in_flight:.1f} s (keepalive 1 s x 2), "
          f"a call while down failed in {down_call:.1f} s")
    assert down_call < ssh_opts.connect_timeout + 1

    # An idle connection whose path died while idle (its keepalives unanswered, but not yet
    # given up on) is probed before it is used: the call fails in seconds, not after the
    # command timeout; once the path is back, the next call reconnects.
    s.close()
    s = _side_session(side, ssh_opts, client_key, keepalive=2, keepalive_count_max=30)
    assert s.docker().ping()
    with tb.drop_tcp_port(side.netns, side.port):
        time.sleep(5)  # keepalives go out, nothing comes back
        t0 = time.monotonic()
        with pytest.raises(HostUnreachable):
            s.docker().ping()
        probed_call = time.monotonic() - t0
    assert "no answer" in (s.ssh.last_drop or "")
    assert s.docker().ping()
    assert s.ssh.connects == 2
    print(f"idle dead path: the next call failed in {probed_call:.1f} s (probe + connect)")
    assert probed_call < 10
    s.close()


# --------------------------------------------------------------------------- docker missing


def test_docker_not_running_or_not_permitted(ssh_opts, client_key, sides, hostc):
    nodocker = start_side("nodocker", sides, netns="hostc", address=hostc["refused"],
                          docker="none")
    s = _side_session(nodocker, ssh_opts, client_key)
    with pytest.raises(DockerUnavailable) as info:
        s.docker()
    assert info.value.reason == "not_running"
    assert "the Docker engine is not running: there is no /var/run/docker.sock" \
        in str(info.value)
    health = check_host(s)
    assert not health.reachable and health.error_kind == "docker_unavailable"
    assert health.error_extra["reason"] == "not_running"
    s.close()

    user = start_side("nouser", sides, with_user=True)
    with ssh_opts.known_hosts.open("a") as fh:
        fh.write(user.known_hosts_line())
    h = make_host("forbidden", user.address, user.port, client_key, user=tb.SIDE_USER)
    s = HostSession(h, ssh_opts)
    with pytest.raises(DockerUnavailable) as info:
        s.docker()
    assert info.value.reason == "permission_denied"
    msg = str(info.value)
    assert f"{tb.SIDE_USER} may not use Docker" in msg and "docker group" in msg
    s.close()


# --------------------------------------------------------------------------- bootstrap, images


@pytest.mark.slow
def test_bootstrap_twice_changes_nothing(pool, host_a, host_b, secret_store):
    from havsh_tui.ops.bootstrap import bootstrap_host
    from havsh_tui.ops.reporter import RecordingReporter

    for h in (host_a, host_b):
        first = bootstrap_host(pool.session(h), secret_store, RecordingReporter())
        second = bootstrap_host(pool.session(h), secret_store, RecordingReporter())
        assert second.noop, second
        assert second.created == [] and second.changed == []
        assert second.ids == first.ids and {"network", "postgres"} <= set(second.ids)


@pytest.fixture
def pushme(testbed):
    """A tiny image (a static binary) on engine A only, removed from both at the end."""
    import io
    import tarfile

    ref = f"havsh-test/pushme-{uuid.uuid4().hex[:8]}:1"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add("/usr/bin/tini-static", arcname="tini")
    a = docker.DockerClient(base_url=testbed.hosts["hosta"].docker_host, version="1.41")
    b = docker.DockerClient(base_url=testbed.hosts["hostb"].docker_host, version="1.41")
    repo, tag = ref.rsplit(":", 1)
    a.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag,
                                 changes=["LABEL sh.hav.test=1"])
    try:
        yield ref, a, b
    finally:
        for c in (a, b):
            for cont in c.containers.list(all=True, filters={"ancestor": ref}):
                cont.remove(force=True)
            with contextlib.suppress(docker.errors.ImageNotFound):
                c.images.remove(ref, force=True)
            c.close()


def test_push_image_from_a_to_b_then_run_it_on_b(pool, host_a, host_b, pushme):
    from havsh_tui.ops.images import ImageMissing, ensure_image, push_image
    from havsh_tui.ops.reporter import RecordingReporter

    ref, local_a, local_b = pushme
    src, dst = pool.session(host_a).docker(), pool.session(host_b).docker()
    with pytest.raises(ImageMissing):
        ensure_image(dst, "hostb", ref)  # B has no registry: the pull fails
    rep = RecordingReporter()
    result = push_image(src, dst, ref, rep)
    assert not result["skipped"] and result["bytes"] > 100_000
    assert local_b.images.get(ref).id == local_a.images.get(ref).id
    out = dst.containers.run(ref, ["/tini", "--version"], remove=True,
                             labels={"sh.hav.test": "1"})
    assert b"tini version" in out
    again = push_image(src, dst, ref)
    assert again["skipped"]


# --------------------------------------------------------------------------- health


def test_health_of_both_hosts(pool, host_a, host_b):
    a = check_host(pool.session(host_a))
    b = check_host(pool.session(host_b))
    for h in (a, b):
        assert h.reachable, h.error
        assert h.error is None
        assert h.docker_version and h.api_version and h.cpus >= 1
        assert h.load1 is not None and h.mem_total and 0 < h.mem_available <= h.mem_total
        assert h.disk_free and h.disk_total and h.disk_free <= h.disk_total
        assert h.managed_containers >= 0 and h.rtt_ms > 0 and h.ssh_rtt_ms > 0
    assert (a.docker_root, b.docker_root) == ("/var/lib/docker", "/var/lib/docker-b")
    # A second poll reuses the connection.
    again = check_host(pool.session(host_a))
    assert again.reachable and pool.session(host_a).ssh.connects == 1


def test_reconnects_counted_and_keepalive_ping(pool, host_b):
    s = pool.session(host_b)
    s.ssh.client()
    assert s.ssh.ping() < 1.0
    s.ssh.transport().close()  # as if the server had gone away
    assert s.docker().ping()
    assert s.ssh.connects == 2


def test_connection_object_reopens_after_close(ssh_opts, host_a):
    conn = SSHConnection(target_for(host_a, ssh_opts))
    assert conn.run(["true"])[0] == 0
    conn.close()
    assert not conn.is_connected
    assert conn.run(["true"])[0] == 0
    conn.close()


def test_image_sources_then_push_to_a_host(inventory, pool, host_a, pushme):
    """What the TUI's push dialog asks (ops.images.find_image_sources) and what it runs
    (push_image_to), on the real engines: A has the image, B lacks it, a dead host is said
    as such without holding up the others."""
    from havsh_tui.ops.images import find_image_sources, push_image_to

    ref, _a, b = pushme
    inventory.add_host(Host(name="deadhost", address="127.0.0.1", port=2299, user="root",
                            identity_file=host_a.identity_file))
    found = {s.name: s for s in find_image_sources(inventory, pool, "hostb", ref)}
    assert set(found) == {"local", "hosta", "deadhost"}, "the target itself is no source"
    assert found["hosta"].has is True and found["hosta"].size
    assert found["local"].has is True  # the testbed's local engine is engine A
    assert found["deadhost"].has is None and "refused" in found["deadhost"].detail
    result = push_image_to(inventory, pool, "hostb", ref, "hosta")
    assert result["bytes"] > 100_000 and result["host"] == "hostb"
    assert b.images.get(ref)
    back = {s.name: s for s in find_image_sources(inventory, pool, "hosta", ref)}
    assert back["hostb"].has is True
