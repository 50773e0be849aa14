"""Pure-Python checks of the Odoo stand-in (tests/infra/images/odoo): passwords, options,
manifests, module marking, the entrypoint's argument building. No PostgreSQL needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).resolve().parents[1] / "infra" / "images" / "odoo"
sys.path.insert(0, str(STANDIN_DIR))

from standin import config, crypt, modules, release, web  # noqa: E402

# Made with passlib 1.7.4: CryptContext(['pbkdf2_sha512', 'plaintext']).hash('s3cret pass')
PASSLIB_HASH = (
    "$pbkdf2-sha512$1000$jTFmrJXyXsvZm/M.BwCAUA$UVBsrU7EwAKDiFhGErGcN00/MHTMLjpOyQ.eGMHm6HGpin"
    "QmBj9NOOaSkrBiXsAVxfTDTm.4SzIE69sOvNjUSA"
)


# -- passwords ---------------------------------------------------------------------------


def test_passlib_hash_verifies():
    assert crypt.verify_and_update("s3cret pass", PASSLIB_HASH) == (True, None)
    assert crypt.verify_and_update("s3cret pas", PASSLIB_HASH) == (False, None)


def test_plaintext_is_accepted_and_rehashed():
    valid, replacement = crypt.verify_and_update("admin", "admin")
    assert valid
    assert replacement and replacement.startswith("$pbkdf2-sha512$600000$")
    assert crypt.verify_and_update("admin", replacement) == (True, None)
    assert crypt.verify_and_update("Admin", "admin") == (False, None)


@pytest.mark.parametrize("stored", ["", None, "$pbkdf2-sha512$x$y$z", "$pbkdf2-sha512$10$@@$@@"])
def test_bad_or_empty_hash_never_matches(stored):
    assert crypt.verify_and_update("whatever", stored)[0] is False


def test_empty_password_never_matches():
    assert crypt.verify_and_update("", "")[0] is False


def test_hash_format_is_passlibs():
    h = crypt.hash_password("pw", rounds=1000, salt=b"\xfb" * 16)
    prefix, rounds, salt, check = h.split("$")[1:]
    assert (prefix, rounds) == ("pbkdf2-sha512", "1000")
    assert "+" not in salt + check and "=" not in salt + check
    assert crypt.ab64_decode(salt) == b"\xfb" * 16
    assert len(crypt.ab64_decode(check)) == 64


# -- versions and manifests --------------------------------------------------------------------


def test_adapt_version():
    assert modules.adapt_version("1.0", "17.0") == "17.0.1.0"
    assert modules.adapt_version("17.0.1.2", "17.0") == "17.0.1.2"
    assert modules.adapt_version("1.2.3", "19.0") == "19.0.1.2.3"
    with pytest.raises(ValueError):
        modules.adapt_version("one", "17.0")


def _module(root: Path, name: str, manifest: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "__init__.py").write_text("")
    (d / "__manifest__.py").write_text(manifest)
    return d


def test_manifest_defaults(tmp_path):
    d = _module(tmp_path, "good", "{'name': 'Good', 'license': 'LGPL-3'}")
    m = modules.load_manifest("good", str(d))
    assert m["depends"] == ["base"]
    assert m["version"] == "1.0"
    assert m["installable"] is True


@pytest.mark.parametrize("text", ["{'name': 'x',", "['not', 'a', 'dict']", "{'a': open('x')}"])
def test_broken_manifest_raises(tmp_path, text):
    d = _module(tmp_path, "bad", text)
    with pytest.raises(modules.ManifestError):
        modules.load_manifest("bad", str(d))


def _loader(tmp_path: Path) -> modules.Loader:
    _module(tmp_path, "a", "{'depends': ['mail'], 'license': 'LGPL-3'}")
    _module(tmp_path, "b", "{'depends': ['a', 'missing'], 'license': 'LGPL-3'}")
    _module(tmp_path, "glue", "{'depends': ['a', 'contacts'], 'auto_install': True}")
    _module(tmp_path, "broken", "{'depends': [")
    loader = modules.Loader(
        {"data_dir": str(tmp_path)}, "db", [modules.BUILTIN_ADDONS, str(tmp_path)]
    )
    loader.read_manifests(report=False)
    loader.states = {name: "uninstalled" for name in loader.manifests}
    loader.states["base"] = "installed"
    return loader


def test_install_marks_dependencies_and_auto_install(tmp_path):
    loader = _loader(tmp_path)
    loader.mark_install("a")
    loader.mark_install("contacts")
    loader.auto_install()
    todo = [n for n, s in loader.states.items() if s == "to install"]
    assert set(todo) >= {"a", "mail", "web", "bus", "base_setup", "contacts", "glue"}
    order = loader.order(todo)
    assert order.index("web") < order.index("mail") < order.index("a") < order.index("glue")


def test_missing_dependency_and_broken_manifest_fail(tmp_path):
    loader = _loader(tmp_path)
    with pytest.raises(modules.UserError, match="not available"):
        loader.mark_install("b")
    assert "broken" in loader.broken
    with pytest.raises(modules.ManifestError):
        loader.mark_install("broken")


# -- options -----------------------------------------------------------------------------------


@pytest.fixture
def rc(tmp_path, monkeypatch):
    path = tmp_path / "odoo.conf"
    path.write_text(
        "[options]\naddons_path = /mnt/extra-addons\ndata_dir = /var/lib/odoo\n"
        "db_host = filehost\nworkers = 2\nproxy_mode = True\nmy_extra_key = 42\n"
    )
    monkeypatch.setenv("ODOO_RC", str(path))
    return path


def test_config_file_then_command_line(rc):
    cfg = config.parse(["-d", "D", "--db_host", "clihost", "--http-port=9000"])
    assert cfg["db_host"] == "clihost"
    assert cfg["workers"] == 2 and cfg["proxy_mode"] is True
    assert cfg["my_extra_key"] == "42"
    assert cfg["http_port"] == 9000 and cfg["gevent_port"] == 8072
    assert cfg.db_names == ["D"]
    assert cfg["config"] == str(rc)


def test_unknown_option_exits_2(rc):
    with pytest.raises(SystemExit) as info:
        config.parse(["--no-such-option"])
    assert info.value.code == 2


def test_odoo_options_are_accepted(rc):
    cfg = config.parse(
        [
            "--proxy-mode",
            "--db-filter=^%d$",
            "--workers=0",
            "--limit-memory-hard",
            "2684354560",
            "--max-cron-threads=1",
            "--load-language=fr_FR",
            "--log-level=warn",
            "--longpolling-port=8073",
            "-c",
            str(rc),
        ]
    )
    assert cfg["gevent_port"] == 8073 and cfg["workers"] == 0
    assert cfg.comma("load_language") == ["fr_FR"]


@pytest.mark.parametrize(
    "args,demo",
    [
        ([], True),
        (["--without-demo=all"], False),
        (["--without-demo", "True"], False),
        (["--without-demo="], True),
    ],
)
def test_demo_flag_up_to_18(rc, monkeypatch, args, demo):
    monkeypatch.setattr(release, "major", 17)
    assert config.parse(["-d", "D", "-i", "base", *args]).with_demo is demo


def test_with_demo_is_not_an_option_before_19(rc, monkeypatch):
    monkeypatch.setattr(release, "major", 18)
    with pytest.raises(SystemExit):
        config.parse(["-d", "D", "--with-demo"])


@pytest.mark.parametrize(
    "args,demo,warns",
    [
        ([], False, False),
        (["--with-demo"], True, False),
        (["--without-demo"], False, False),
        (["--without-demo", "--stop-after-init"], False, False),
        (["--without-demo=all"], False, True),
        (["--without-demo=False"], True, False),
    ],
)
def test_demo_flag_19(rc, monkeypatch, args, demo, warns):
    monkeypatch.setattr(release, "major", 19)
    cfg = config.parse(["-d", "D", "-i", "base", *args])
    assert cfg.with_demo is demo
    assert bool(cfg.get("_warnings")) is warns


def test_db_filter():
    dbs = ["acme", "acme_test", "other"]
    assert web.db_filter({"dbfilter": "^%d$"}, dbs, "acme.example.com:8069") == ["acme"]
    assert web.db_filter({"dbfilter": "^%d"}, dbs, "www.acme.example.com") == ["acme", "acme_test"]
    assert web.db_filter({"db_name": "other,gone"}, dbs) == ["other"]
    assert web.db_filter({}, dbs) == dbs


def test_websocket_frames_roundtrip():
    frame = web._frame(0x1, b"hello")
    masked = (
        bytes([frame[0], frame[1] | 0x80])
        + b"\x01\x02\x03\x04"
        + bytes(b ^ (1, 2, 3, 4)[i % 4] for i, b in enumerate(b"hello"))
    )
    assert web._parse_frame(masked) == (0x1, b"hello", len(masked))
    assert web._parse_frame(masked[:-1]) is None


# -- the image's entrypoint ----------------------------------------------------------------------


def _run_entrypoint(tmp_path: Path, conf: str, env: dict[str, str], *args: str) -> list[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("odoo", "wait-for-psql.py"):
        stub = bindir / name
        stub.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "{name}:$a"; done\n')
        stub.chmod(0o755)
    rcfile = tmp_path / "odoo.conf"
    rcfile.write_text(conf)
    full_env = {"PATH": f"{bindir}:/usr/bin:/bin", "ODOO_RC": str(rcfile), **env}
    out = subprocess.run(
        ["bash", str(STANDIN_DIR / "entrypoint.sh"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_entrypoint_passes_db_args(tmp_path):
    lines = _run_entrypoint(
        tmp_path,
        "[options]\naddons_path = /mnt/extra-addons\n",
        {"HOST": "pg", "USER": "svc", "PASSWORD": "p w"},
        "odoo",
        "-d",
        "D",
        "--stop-after-init",
    )
    odoo = [line[5:] for line in lines if line.startswith("odoo:")]
    assert odoo == [
        "-d",
        "D",
        "--stop-after-init",
        "--db_host",
        "pg",
        "--db_port",
        "5432",
        "--db_user",
        "svc",
        "--db_password",
        "p w",
    ]
    assert "wait-for-psql.py:--timeout=30" in lines


def test_entrypoint_defaults_and_config_wins(tmp_path):
    lines = _run_entrypoint(
        tmp_path,
        "[options]\ndb_host = confhost\n",
        {"POSTGRES_USER": "pguser"},
        "--",
        "neutralize",
        "-d",
        "D",
    )
    odoo = [line[5:] for line in lines if line.startswith("odoo:")]
    assert odoo == [
        "neutralize",
        "-d",
        "D",
        "--db_host",
        "confhost",
        "--db_port",
        "5432",
        "--db_user",
        "pguser",
        "--db_password",
        "odoo",
    ]


def test_entrypoint_password_file_and_other_commands(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file")
    lines = _run_entrypoint(
        tmp_path, "[options]\n", {"PASSWORD_FILE": str(secret)}, "odoo", "neutralize", "-d", "D"
    )
    assert lines[-1] == "odoo:from-file"
    out = subprocess.run(
        ["bash", str(STANDIN_DIR / "entrypoint.sh"), "echo", "plain"],
        env={"PATH": "/usr/bin:/bin", "ODOO_RC": str(tmp_path / "odoo.conf")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "plain\n"


def test_launcher_version():
    env = dict(os.environ, ODOO_VERSION="18.0")
    out = subprocess.run(
        [sys.executable, str(STANDIN_DIR / "odoo"), "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "Odoo Server 18.0"
