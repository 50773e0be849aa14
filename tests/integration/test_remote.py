"""The product's own SSH + docker transport against the two real test hosts."""

from __future__ import annotations

import pytest

from havsh_tui.remote.hosts import HostSession
from havsh_tui.remote.ssh import (
    AuthenticationFailed,
    ChangedHostKey,
    HostUnreachable,
    UnknownHostKey,
)


def test_both_hosts_are_different_engines(pool, host_a, host_b):
    a = pool.session(host_a).docker()
    b = pool.session(host_b).docker()
    ia, ib = a.info(), b.info()
    assert ia["DockerRootDir"] == "/var/lib/docker"
    assert ib["DockerRootDir"] == "/var/lib/docker-b"
    assert ia["ID"] != ib["ID"]
    # Each lists its own containers, through its own SSH connection.
    assert isinstance(a.containers.list(all=True), list)
    assert isinstance(b.containers.list(all=True), list)
    assert pool.session(host_a).ssh is not pool.session(host_b).ssh


def test_connection_is_reused(pool, host_a):
    s = pool.session(host_a)
    s.docker().ping()
    transport = s.ssh.transport()
    for _ in range(5):
        s.docker().containers.list()
    assert s.ssh.transport() is transport
    assert s.docker().api._custom_adapter._mode == "streamlocal"


def test_run_quotes_arguments(pool, host_a):
    s = pool.session(host_a)
    rc, out, _ = s.run(["printf", "%s|", "a b", "$(id)", "'; rm -rf /tmp/x"])
    assert rc == 0
    assert out.decode() == "a b|$(id)|'; rm -rf /tmp/x|"


def test_unknown_host_key_is_refused(ssh_opts, host_a):
    ssh_opts.known_hosts.write_text("")
    s = HostSession(host_a, ssh_opts)
    with pytest.raises(UnknownHostKey) as info:
        s.ssh.client()
    assert info.value.fingerprint.startswith("SHA256:")
    assert "can't be established" in str(info.value)


def test_pinned_fingerprint_is_saved(ssh_opts, host_a):
    good = HostSession(host_a, ssh_opts).ssh
    fp = __import__("havsh_tui.remote.ssh", fromlist=["fingerprint"]).fingerprint(good.host_key())
    good.close()
    ssh_opts.known_hosts.write_text("")
    s = HostSession(host_a, ssh_opts, accept_fingerprint=fp)
    s.ssh.client()
    s.close()
    assert fp and "127.0.0.1" in ssh_opts.known_hosts.read_text()
    # Now known: a plain session connects without any pin.
    HostSession(host_a, ssh_opts).ssh.client()


def test_changed_host_key_is_refused(ssh_opts, host_a):
    # Claim the host has another key of the type it offers: that is a changed key.
    name = "[127.0.0.1]:2222"
    lines = ssh_opts.known_hosts.read_text().splitlines()
    key_type = next(ln.split()[1] for ln in lines if ln.startswith(name + " "))
    kept = [ln for ln in lines if not ln.startswith(name + " ")]
    kept.append(f"{name} {key_type} {_other_key_b64(key_type)}")
    ssh_opts.known_hosts.write_text("\n".join(kept) + "\n")
    s = HostSession(host_a, ssh_opts)
    with pytest.raises(ChangedHostKey) as info:
        s.ssh.client()
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in str(info.value)
    assert not s.ssh.is_connected


def _other_key_b64(key_type: str) -> str:
    import subprocess
    import tempfile
    from pathlib import Path

    kind = {"ssh-ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa", "ssh-rsa": "rsa"}[key_type]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "k"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(p)], check=True)
        return p.with_suffix(".pub").read_text().split()[1]


def test_wrong_key_is_refused(ssh_opts, host_a, tmp_path):
    import subprocess

    key = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host_a.identity_file = str(key)
    with pytest.raises(AuthenticationFailed):
        HostSession(host_a, ssh_opts).ssh.client()


def test_refused_port_is_a_clear_error(ssh_opts, host_a):
    host_a.port = 2299  # nothing listens there
    with pytest.raises(HostUnreachable) as info:
        HostSession(host_a, ssh_opts).ssh.client()
    assert "refused" in str(info.value)
