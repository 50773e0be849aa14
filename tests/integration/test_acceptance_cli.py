"""Acceptance: the CLI names and JSON shapes the issues promise, run as a user's script runs
them (the real `havsh` in a subprocess, HAVSH_HOME set) against the testbed's host A.

Service names start with "acc-cli-" and are registered with `cleanup`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HAVSH = str(Path(sys.executable).with_name("havsh"))


class CLI:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if k != "HAVSH_SSH_CONFIG"}
        self.env["HAVSH_HOME"] = str(home)
        self.host_add: tuple[str, ...] = ()

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([HAVSH, *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env, stdin=subprocess.DEVNULL)

    def json(self, *args: str, timeout: float = 240):
        """`havsh --json ARGS`: (exit code, last JSON line of stdout, error of stderr)."""
        p = self.run("--json", *args, timeout=timeout)
        out = [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]
        errs = [json.loads(ln)["error"] for ln in p.stderr.splitlines()
                if ln.startswith('{"error"')]
        return p.returncode, (out[-1] if out else None), (errs[-1] if errs else None)


@pytest.fixture
def cli(havsh_paths, host_a, hosta) -> CLI:
    c = CLI(havsh_paths.home)
    c.host_add = (
        "host", "add", "hosta", "--ssh", f"{host_a.user}@{host_a.address}:{host_a.port}",
        "--identity", host_a.identity_file, "--postgres-image", host_a.postgres_image,
        "--odoo-image", host_a.odoo_image, "--proxy-image", host_a.proxy_image,
        "--proxy-bind", host_a.proxy_bind, "--tls", "internal")
    rc, out, err = c.json(*c.host_add)
    assert rc == 0, err
    assert out["host"]["name"] == "hosta" and out["docker_version"]
    return c


def test_host_commands_json(cli):
    """Issue 3: host ls / check as JSON, rm of an unknown host is a JSON error."""
    rc, hosts, _ = cli.json("host", "ls")
    assert rc == 0 and [h["name"] for h in hosts] == ["hosta"]
    rc, health, err = cli.json("host", "check", "hosta")
    assert rc == 0, err
    for field in ("docker_version", "cpus", "load1", "mem_total", "mem_available", "disk_free",
                  "managed_containers", "rtt_ms"):
        assert health[field] is not None, field
    assert health["reachable"] is True and health["cpus"] >= 1
    rc, out, err = cli.json("host", "rm", "acc-cli-nohost")
    assert rc != 0 and out is None and "acc-cli-nohost" in err["message"]
    # The flag after the command works the same as before it.
    p = cli.run("host", "ls", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)[0]["name"] == "hosta"


LS_FIELDS = ("name", "type", "host", "status", "odoo_version", "image", "url", "database",
             "source", "pr", "created_at")


@pytest.mark.slow
def test_service_lifecycle_json(cli, cleanup):
    """Issue 4 (+6, 9): create, ls fields, show, stop/start/restart, logs --json, rescan
    from labels, host rm refusal, rm needing --yes, then rm; `service open`'s tunnel."""
    name = "acc-cli-t1"
    cleanup.add(name)
    rc, out, err = cli.json("service", "create", name, "--type", "test", "--host", "hosta",
                            "--odoo", "17.0", "--config", "workers=0")
    assert rc == 0, err
    assert out["service"]["status"] == "running" and out["admin_password"]

    rc, listed, _ = cli.json("service", "ls")
    assert rc == 0
    (row,) = [s for s in listed if s["name"] == name]
    assert all(f in row for f in LS_FIELDS), set(LS_FIELDS) - set(row)
    assert (row["type"], row["host"], row["odoo_version"], row["database"]) == (
        "test", "hosta", "17.0", "acc_cli_t1")
    assert row["source"] is None and row["pr"] is None
    assert row["config"].get("workers") == "0"

    rc, shown, _ = cli.json("service", "show", name)
    assert rc == 0 and shown["name"] == name

    for action, status in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        rc, out, err = cli.json("service", action, name)
        assert rc == 0, (action, err)
        assert out["status"] == status, action

    deadline = time.monotonic() + 30
    lines: list[dict] = []
    while time.monotonic() < deadline and not lines:
        p = cli.run("--json", "logs", name, "--tail", "20", timeout=60)
        assert p.returncode == 0, p.stderr
        lines = [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]
        if not lines:
            time.sleep(1)
    assert lines and all({"text", "level", "message"} <= set(ln) for ln in lines)
    p = cli.run("logs", name, "--tail", "all", "--level", "WARNING", timeout=60)
    assert p.returncode == 0, p.stderr

    # service open: a local port forwarded over SSH; the URL answers /web/health.
    proc = subprocess.Popen([HAVSH, "--json", "service", "open", name, "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli.env, stdin=subprocess.DEVNULL)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "listening" and first["url"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(first["url"].rstrip("/") + "/web/health", timeout=10) as r:
            assert json.loads(r.read())["status"] == "pass"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
    assert json.loads(proc.stdout.readlines()[-1])["event"] == "closed"

    # A lost inventory: rescan adopts the service again from its labels.
    (cli.home / "inventory.json").unlink()
    (cli.home / "inventory.lock").unlink(missing_ok=True)
    rc, _, err = cli.json(*cli.host_add)
    assert rc == 0, err
    rc, scan, err = cli.json("rescan", "--host", "hosta")
    assert rc == 0, err
    (hosta_scan,) = scan
    assert name in hosta_scan["adopted"]
    rc, listed, _ = cli.json("service", "ls")
    assert [s["type"] for s in listed if s["name"] == name] == ["test"]

    rc, _, err = cli.json("host", "rm", "hosta")
    assert rc != 0 and name in err["message"]

    rc, _, err = cli.json("service", "rm", name)
    assert rc != 0 and "--yes" in err["message"]
    rc, out, err = cli.json("service", "rm", name, "--yes")
    assert rc == 0, err
    assert out["removed"] == name
    rc, listed, _ = cli.json("service", "ls")
    assert name not in [s["name"] for s in listed]

