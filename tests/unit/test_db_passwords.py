"""Database passwords must pass through the official entrypoint.

It hands the password to wait-for-psql.py as ``--db_password VALUE``, unquoted: a value that
begins with '-' is an option to argparse (exit 2, and the container restarts for ever). CI
caught a restored copy doing exactly that; every path that makes a service's role password
must draw it from core.secrets.generate_password.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from havsh_tui.core import secrets
from havsh_tui.ops import copy as copy_ops
from havsh_tui.ops import services as service_ops
from havsh_tui.ops import update as update_ops
from havsh_tui.ops.backup import restore as restore_ops

WAIT_FOR_PSQL = Path(__file__).parents[1] / "infra/images/odoo/wait-for-psql.py"


def _wait_for_psql(tmp_path: Path, password: str) -> subprocess.CompletedProcess:
    """The image's wait-for-psql.py as the entrypoint calls it, with a psycopg2 that connects."""
    (tmp_path / "psycopg2.py").write_text(
        "class OperationalError(Exception):\n    pass\n"
        "class _C:\n    def close(self):\n        pass\n"
        "def connect(**kw):\n    return _C()\n")
    argv = ["--db_host", "db", "--db_port", "5432", "--db_user", "u",
            "--db_password", password, "--timeout=5"]
    return subprocess.run([sys.executable, str(WAIT_FOR_PSQL), *argv], cwd=tmp_path,
                          env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
                          timeout=30)


def test_a_password_that_begins_with_a_dash_breaks_the_entrypoint(tmp_path):
    bad = _wait_for_psql(tmp_path, "-Fq3xyz")
    assert bad.returncode == 2 and "expected one argument" in bad.stderr
    assert not secrets.password_usable("-Fq3xyz")
    assert not secrets.password_usable("has space")
    assert not secrets.password_usable("")


def test_generated_passwords_pass(tmp_path):
    drawn = [secrets.generate_password() for _ in range(5000)]
    assert all(secrets.password_usable(p) for p in drawn)
    assert _wait_for_psql(tmp_path, drawn[0]).returncode == 0


@pytest.mark.parametrize("module", [copy_ops, restore_ops, service_ops, update_ops])
def test_every_role_password_comes_from_generate_password(module):
    assert module.generate_password is secrets.generate_password
    source = Path(module.__file__).read_text()
    assert "token_urlsafe" not in source
