"""From a Host to an SSHTarget through ssh_config, OpenSSH's way; destinations; known_hosts
files; key loading. No network."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import paramiko
import pytest

from havsh_tui.core.model import Host
from havsh_tui.remote.hosts import (
    PassphraseCache,
    SSHOptions,
    is_ssh_config_alias,
    parse_destination,
    ssh_config_aliases,
    target_for,
)
from havsh_tui.remote.ssh import (
    AuthenticationFailed,
    ChangedHostKey,
    PassphraseRequired,
    SSHTarget,
    UnknownHostKey,
    WrongPassphrase,
    add_known_host,
    blob_fingerprint,
    fingerprint,
    known_hosts_name,
    load_private_key,
    lookup_known_hosts,
    remove_known_host,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("keys")
    out = {}
    for name, pw in (("plain", ""), ("enc", "pass phrase")):
        p = tmp_path / f"id_{name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", pw, "-f", str(p)],
                       check=True)
        out[name] = p
    rsa = tmp_path / "id_rsa_pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "rsa-pass",
                    "-f", str(rsa)], check=True)
    out["rsa_pem"] = rsa
    return out


@pytest.fixture
def cfg(tmp_path: Path, keys) -> SSHOptions:
    config = tmp_path / "ssh_config"
    config.write_text(f"""
Host web
    HostName 192.0.2.10
    User deploy
    Port 2200
    IdentityFile {keys['plain']}
    IdentityFile {tmp_path}/does-not-exist
    IdentitiesOnly yes
    ServerAliveInterval 7
    ServerAliveCountMax 5
    ConnectTimeout 4

Host db
    HostName 192.0.2.20
    ProxyJump bastion

Host inner
    HostName 10.0.0.5
    ProxyJump bastion,deploy@web:2201

Host bastion
    HostName 198.51.100.1
    User jump
    IdentityAgent none

Host piped
    HostName 192.0.2.30
    ProxyCommand ssh -W %h:%p bastion

Host aliased
    HostName 192.0.2.40
    HostKeyAlias my-alias
    UserKnownHostsFile {tmp_path}/kh_user1 {tmp_path}/kh_user2
    GlobalKnownHostsFile none
    IdentityAgent {tmp_path}/agent.sock

Host loop1
    ProxyJump loop2
Host loop2
    ProxyJump loop1

Host *.example
    User wild
""")
    return SSHOptions(known_hosts=tmp_path / "known_hosts", ssh_config=config,
                      connect_timeout=10.0, system_known_hosts=True)


def H(address: str, **kw) -> Host:  # noqa: N802
    return Host(name="h", address=address, **kw)


# --------------------------------------------------------------------------- destinations


@pytest.mark.parametrize("dest, expected", [
    ("host", (None, "host", None)),
    ("root@host", ("root", "host", None)),
    ("root@host:2222", ("root", "host", 2222)),
    ("10.0.0.1:22", (None, "10.0.0.1", 22)),
    ("[::1]:2222", (None, "::1", 2222)),
    ("u@[fe80::1]", ("u", "fe80::1", None)),
    ("::1", (None, "::1", None)),
    ("ssh://me@box:2022", ("me", "box", 2022)),
    ("we@ird@host", ("we@ird", "host", None)),
])
def test_parse_destination(dest, expected):
    assert parse_destination(dest) == expected


@pytest.mark.parametrize("dest", ["", "root@", "host:0", "host:70000", "host:abc", "a b",
                                  "[::1]x"])
def test_parse_destination_rejects(dest):
    with pytest.raises(ValueError):
        parse_destination(dest)


# --------------------------------------------------------------------------- ssh_config


def test_alias_resolution(cfg, keys):
    t = target_for(H("web"), cfg)
    assert (t.hostname, t.port, t.username) == ("192.0.2.10", 2200, "deploy")
    assert t.key_filenames == [str(keys["plain"])]  # the missing one is skipped
    assert t.identities_only
    assert (t.keepalive, t.keepalive_count_max, t.connect_timeout) == (7, 5, 4.0)
    assert t.jump is None and t.proxy_command is None
    assert t.known_hosts == cfg.known_hosts
    assert t.known_hosts_name == "[192.0.2.10]:2200"


def test_explicit_fields_win(cfg, tmp_path):
    t = target_for(H("web", port=2300, user="admin", identity_file="~/k"), cfg)
    assert (t.port, t.username) == (2300, "admin")
    assert t.key_filenames == [str(Path.home() / "k")]
    assert t.identities_only  # a named key is the key
    # Port 22 means "not given": the config's port stays.
    assert target_for(H("web", port=22), cfg).port == 2200


def test_unknown_host_gets_defaults_and_wildcards(cfg):
    t = target_for(H("192.0.2.99"), cfg)
    assert (t.hostname, t.port, t.username, t.key_filenames) == ("192.0.2.99", 22, None, [])
    assert not t.identities_only and t.use_agent and t.agent_socket is None
    assert t.known_hosts_files is None
    assert target_for(H("a.example"), cfg).username == "wild"


def test_proxyjump_from_config_and_chains(cfg):
    t = target_for(H("db"), cfg)
    assert t.proxy_command is None
    assert t.jump is not None
    assert (t.jump.hostname, t.jump.username, t.jump.use_agent) == ("198.51.100.1", "jump",
                                                                     False)
    assert [(x.hostname, x.port) for x in t.hops()] == [("198.51.100.1", 22),
                                                        ("192.0.2.20", 22)]
    chain = target_for(H("inner"), cfg)
    hops = chain.hops()
    assert [(x.hostname, x.port, x.username) for x in hops] == [
        ("198.51.100.1", 22, "jump"), ("192.0.2.10", 2201, "deploy"), ("10.0.0.5", 22, None)]
    # A hop of a chain takes its own settings from the config, not the target's.
    assert hops[1].identities_only and hops[1].keepalive == 7
    # --jump on the Host overrides the config's ProxyJump, and may be a chain itself.
    t = target_for(H("db", jump="root@192.0.2.1:2222,web"), cfg)
    assert [(x.hostname, x.port) for x in t.hops()] == [
        ("192.0.2.1", 2222), ("192.0.2.10", 2200), ("192.0.2.20", 22)]
    assert target_for(H("db", jump="none"), cfg).jump is None


def test_jump_hops_inherit_tofu_but_not_the_pin(cfg):
    t = target_for(H("db"), cfg, accept_fingerprint="SHA256:x", trust_on_first_use=True,
                   passphrase="pw")
    assert t.accept_fingerprint == "SHA256:x" and t.trust_on_first_use
    assert t.jump.accept_fingerprint is None
    assert t.jump.trust_on_first_use and t.jump.passphrase == "pw"


def test_proxyjump_loop_is_refused(cfg):
    with pytest.raises(ValueError, match="jump hosts"):
        target_for(H("loop1"), cfg)


def test_proxycommand(cfg):
    t = target_for(H("piped"), cfg)
    assert t.proxy_command == "ssh -W 192.0.2.30:22 bastion"
    assert t.jump is None
    # A jump host wins over ProxyCommand (as in OpenSSH, whichever comes first... we take
    # the explicit --jump).
    assert target_for(H("piped", jump="bastion"), cfg).proxy_command is None


def test_known_hosts_files_alias_and_agent(cfg, tmp_path):
    t = target_for(H("aliased"), cfg)
    assert t.host_key_alias == "my-alias" and t.known_hosts_name == "my-alias"
    assert t.known_hosts_files == [f"{tmp_path}/kh_user1", f"{tmp_path}/kh_user2"]
    assert t.all_known_hosts_files() == [f"{tmp_path}/kh_user1", f"{tmp_path}/kh_user2",
                                         str(cfg.known_hosts)]
    assert t.agent_socket == f"{tmp_path}/agent.sock" and t.use_agent
    cfg.system_known_hosts = False
    assert target_for(H("aliased"), cfg).all_known_hosts_files() == [str(cfg.known_hosts)]


def test_default_known_hosts_files(cfg):
    t = target_for(H("192.0.2.99"), cfg)
    files = t.all_known_hosts_files()
    assert files[:2] == ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
    assert "/etc/ssh/ssh_known_hosts" in files and files[-1] == str(cfg.known_hosts)


def test_aliases_for_the_dialog(cfg):
    aliases = ssh_config_aliases(cfg)
    assert aliases == sorted(["web", "db", "inner", "bastion", "piped", "aliased", "loop1",
                              "loop2"])
    assert is_ssh_config_alias("web", cfg) and not is_ssh_config_alias("x.example", cfg)
    assert ssh_config_aliases(SSHOptions(known_hosts=cfg.known_hosts)) == []


def test_no_config_file(tmp_path):
    opts = SSHOptions(known_hosts=tmp_path / "kh", ssh_config=tmp_path / "missing")
    t = target_for(H("box", user="u", port=2022), opts)
    assert (t.hostname, t.port, t.username) == ("box", 2022, "u")


def test_default_options_read_env(tmp_path, monkeypatch):
    cfgfile = tmp_path / "c"
    cfgfile.write_text("Host x\n  HostName 192.0.2.1\n")
    pf = tmp_path / "pass"
    pf.write_text("my phrase\nignored\n")
    monkeypatch.setenv("HAVSH_SSH_CONFIG", str(cfgfile))
    monkeypatch.setenv("HAVSH_SSH_PASSPHRASE_FILE", str(pf))
    opts = SSHOptions.default(tmp_path / "kh")
    assert opts.ssh_config == cfgfile and opts.passphrase_file == pf
    assert target_for(H("x"), opts).passphrase == "my phrase"
    assert target_for(H("x"), opts, passphrase="given").passphrase == "given"
    pf.unlink()
    with pytest.raises(AuthenticationFailed, match="passphrase file"):
        target_for(H("x"), opts)


def test_passphrase_cache_asks_once_per_key():
    asked = []

    def prompt(path, wrong):
        asked.append((path, wrong))
        return "pw"

    cache = PassphraseCache(prompt)
    assert cache("/k", False) == "pw" and cache("/k", False) == "pw"
    assert cache("/k", True) == "pw"  # a wrong cached one is asked again
    assert cache("/other", False) == "pw"
    assert asked == [("/k", False), ("/k", True), ("/other", False)]


# --------------------------------------------------------------------------- keys


def test_load_keys(keys):
    k = load_private_key(str(keys["plain"]), None)
    assert k.get_name() == "ssh-ed25519"
    pub = keys["plain"].with_suffix(".pub").read_text().split()[1]
    assert k.get_base64() == pub
    with pytest.raises(PassphraseRequired) as info:
        load_private_key(str(keys["enc"]), None)
    assert type(info.value) is PassphraseRequired and info.value.key_path == str(keys["enc"])
    with pytest.raises(WrongPassphrase):
        load_private_key(str(keys["enc"]), "wrong")
    assert load_private_key(str(keys["enc"]), "pass phrase").get_name() == "ssh-ed25519"
    # Legacy PEM RSA too.
    with pytest.raises(PassphraseRequired):
        load_private_key(str(keys["rsa_pem"]), None)
    with pytest.raises(WrongPassphrase):
        load_private_key(str(keys["rsa_pem"]), "nope")
    assert load_private_key(str(keys["rsa_pem"]), "rsa-pass").get_name() == "ssh-rsa"
    # A passphrase given for a plain key is not an error.
    assert load_private_key(str(keys["plain"]), "unneeded").get_name() == "ssh-ed25519"
    with pytest.raises(AuthenticationFailed, match="cannot read"):
        load_private_key(str(keys["plain"]) + ".missing", None)
    with pytest.raises(AuthenticationFailed):
        load_private_key(str(keys["plain"].with_suffix(".pub")), None)


def test_errors_carry_kind_and_details(keys):
    k = load_private_key(str(keys["plain"]), None)
    e = UnknownHostKey("[h]:2222", k)
    assert e.kind == "unknown_host_key"
    assert e.extra == {"host": "[h]:2222", "key_type": "ssh-ed25519",
                       "fingerprint": fingerprint(k)}
    other = load_private_key(str(keys["enc"]), "pass phrase")
    c = ChangedHostKey("h", k, other, where="/kh:3")
    assert c.kind == "changed_host_key" and c.expected_fingerprint == fingerprint(other)
    assert "Offending ED25519 key in /kh:3" in str(c)
    assert WrongPassphrase("/k").kind == "wrong_passphrase"


# --------------------------------------------------------------------------- known_hosts


def _pub(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def test_known_hosts_lookup_plain_hashed_patterns(tmp_path, keys):
    k = load_private_key(str(keys["plain"]), None)
    other = load_private_key(str(keys["enc"]), "pass phrase")
    kh = tmp_path / "kh"
    kh.write_text("\n".join([
        "# a comment",
        "",
        f"alpha,[beta]:2222 {_pub(k)}",
        f"*.wild,!no.wild {_pub(other)}",
        f"@revoked gamma {_pub(other)}",
        f"@cert-authority *.corp {_pub(other)}",
        "broken line",
        "delta ssh-ed25519 !!notbase64!!",
    ]) + "\n")
    hashed = tmp_path / "kh_hashed"
    hashed.write_text(f"epsilon {_pub(k)}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True,
                   capture_output=True)
    assert "epsilon" not in hashed.read_text()
    files = [kh, hashed, tmp_path / "absent"]
    found = lookup_known_hosts(files, "alpha")
    assert [(f.line, f.key_type, f.fingerprint) for f in found] == [
        (3, "ssh-ed25519", fingerprint(k))]
    assert lookup_known_hosts(files, "[beta]:2222")[0].blob == k.asbytes()
    assert lookup_known_hosts(files, "beta") == []
    assert lookup_known_hosts(files, "x.wild")[0].fingerprint == fingerprint(other)
    assert lookup_known_hosts(files, "no.wild") == []
    assert lookup_known_hosts(files, "gamma")[0].marker == "@revoked"
    assert lookup_known_hosts(files, "a.corp") == []
    assert lookup_known_hosts(files, "delta") == []
    assert lookup_known_hosts(files, "epsilon")[0].path == str(hashed)
    assert blob_fingerprint(k.asbytes()) == fingerprint(k)


def test_add_and_remove_known_host(tmp_path, keys):
    k = load_private_key(str(keys["plain"]), None)
    kh = tmp_path / "sub" / "kh"
    add_known_host(kh, "[h]:2222", k)
    add_known_host(kh, "other", k)
    assert kh.stat().st_mode & 0o777 == 0o600
    with kh.open("a") as fh:
        fh.write(f"h2,[h]:2222,h3 {_pub(k)}\n")
        fh.write(f"@revoked [h]:2222 {_pub(k)}\n")
    hashed = tmp_path / "hashed"
    hashed.write_text(f"[h]:2222 {_pub(k)}\nkeep {_pub(k)}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True,
                   capture_output=True)
    assert remove_known_host(kh, "[h]:2222") == 3
    text = kh.read_text()
    assert text.splitlines() == [f"other {_pub(k)}", f"h2,h3 {_pub(k)}"]
    assert remove_known_host(hashed, "[h]:2222") == 1
    assert lookup_known_hosts([hashed], "keep") and not lookup_known_hosts([hashed], "[h]:2222")
    assert remove_known_host(tmp_path / "none", "x") == 0


def test_known_hosts_name():
    assert known_hosts_name("h", 22) == "h"
    assert known_hosts_name("h", 2222) == "[h]:2222"
    t = SSHTarget(hostname="h", port=2222, host_key_alias="al")
    assert t.known_hosts_name == "al"
    assert SSHTarget(hostname="h", port=2222, username="u").label == "u@h:2222"


def test_base64_roundtrip_of_fingerprint(keys):
    k = load_private_key(str(keys["plain"]), None)
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                          str(keys["plain"].with_suffix(".pub"))],
                         capture_output=True, text=True, check=True).stdout
    assert fingerprint(k) == out.split()[1]  # the same as OpenSSH prints
    assert base64.b64decode(k.get_base64()) == k.asbytes()
