"""Secrets (database and admin passwords, GitHub tokens): a 0600 JSON file beside the inventory.

Never in the inventory, never logged; show them with :func:`mask`.

The file is ``{"version": 1, "secrets": {key: value}}``, written the same way as the
inventory: atomically (temp file, fsync, rename) under an inter-process lock, re-read on
every call. A file that does not parse is *not* set aside and replaced, unlike the
inventory: the passwords in it are the only copy, so every call raises
:class:`SecretStoreError` until a human looks at it.

System keyring: not implemented. :class:`SecretBackend` is the interface a keyring store
would implement (``get``/``set``/``delete``/``keys``), so callers that take a
``SecretBackend`` need no change when one is added.
"""

from __future__ import annotations

import json
import secrets as _random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

import filelock

from .paths import AppPaths
from .serde import atomic_write_json, tighten_mode

FILE_VERSION = 1
DEFAULT_LOCK_TIMEOUT = 15.0


class SecretStoreError(Exception):
    """The secrets file cannot be read or written; the message names it (never a value)."""


@runtime_checkable
class SecretBackend(Protocol):
    """What code that needs secrets depends on; a system-keyring store would implement it."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self) -> list[str]: ...


# -- keys ------------------------------------------------------------------------------------


def postgres_superuser_key(host: str) -> str:
    """The password of the ``postgres`` superuser of the shared PostgreSQL on ``host``."""
    return f"host/{host}/postgres-superuser"


def service_prefix(host: str, service: str) -> str:
    """The prefix of every key of one service (for :meth:`SecretStore.delete_prefix`)."""
    return f"service/{host}/{service}/"


def service_db_password_key(host: str, service: str) -> str:
    """The password of the service's own PostgreSQL role."""
    return service_prefix(host, service) + "db-password"


def service_admin_password_key(host: str, service: str) -> str:
    """Odoo's master (database manager) password of the service."""
    return service_prefix(host, service) + "admin-password"


def github_token_key(name: str = "default") -> str:
    """A GitHub token, by connection name."""
    return f"github/{name}/token"


_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def generate_password(length: int = 32) -> str:
    """A new random password of letters and digits only.

    No '-' or '_': a value that starts with '-' is taken for an option by argparse-based
    tools such as the Odoo image's wait-for-psql.py (``--db_password -x...`` fails), and
    letters and digits need no quoting in env vars, odoo.conf or connection URLs.
    32 characters of 62 symbols is about 190 bits.
    """
    return "".join(_random.choice(_ALPHABET) for _ in range(length))


def password_usable(password: str) -> bool:
    """Whether the image's entrypoint can pass this database password on.

    The official entrypoint hands it to wait-for-psql.py as ``--db_password VALUE``, unquoted:
    a value that begins with '-' is taken for an option (argparse exits 2 and the container
    restarts for ever), and whitespace splits it. Copies and restores of earlier builds drew
    such passwords one time in 64; an update gives them a new one.
    """
    return bool(password) and not password.startswith("-") and not any(
        c.isspace() for c in password)


def mask(secret: str | None) -> str:
    """A secret for display: always eight ``*``, so not even its length shows.

    Secrets of 16 characters or more also show their last four, so the user can tell two
    tokens apart (as GitHub does) while at most a quarter is revealed.
    """
    if not secret:
        return ""
    if len(secret) >= 16:
        return "********" + secret[-4:]
    return "********"


# -- the store -------------------------------------------------------------------------------


class SecretStore:
    """The secrets file at ``path``. Safe across threads and processes; nothing is cached."""

    def __init__(
        self,
        path: Path,
        *,
        lock_path: Path | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.lock_path = Path(lock_path) if lock_path else self.path.with_suffix(".lock")
        self.lock_timeout = lock_timeout
        self._thread_lock = threading.Lock()
        self._file_lock = filelock.FileLock(
            str(self.lock_path), timeout=lock_timeout, mode=0o600, poll_interval=0.005
        )

    def __repr__(self) -> str:
        # Never the values, and not the keys either: they name hosts and services.
        return f"SecretStore({str(self.path)!r})"

    def _load(self) -> dict[str, str]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretStoreError(
                f"cannot read the secrets file {self.path}: {exc.strerror}"
            ) from None
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            # Deliberately without the parser's message: it can quote the file's content.
            raise SecretStoreError(
                f"the secrets file {self.path} is not valid JSON; it was left as it is. "
                "Repair or move it by hand (it may hold the only copy of passwords)."
            ) from None
        values = data.get("secrets") if isinstance(data, dict) else None
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise SecretStoreError(
                f"the secrets file {self.path} does not hold a 'secrets' object of strings; "
                "it was left as it is"
            )
        version = data.get("version", FILE_VERSION)
        if version != FILE_VERSION:
            raise SecretStoreError(
                f"the secrets file {self.path} has version {version!r}; this havsh reads "
                f"version {FILE_VERSION}. It was left as it is."
            )
        return values

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        """Lock, load afresh, let the caller change the dict, write it back atomically."""
        with self._thread_lock:
            try:
                self._file_lock.acquire()
            except filelock.Timeout:
                raise SecretStoreError(
                    f"another havsh process has held {self.lock_path} for more than "
                    f"{self.lock_timeout:g} s"
                ) from None
            try:
                values = self._load()
                before = dict(values)
                yield values
                if values != before:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_json(
                        self.path, {"version": FILE_VERSION, "secrets": values}, indent=1
                    )
                tighten_mode(self.path)
            finally:
                self._file_lock.release()

    def get(self, key: str) -> str | None:
        """The secret stored under ``key``, or None."""
        return self._load().get(key)

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        if not isinstance(value, str):
            raise TypeError(f"secret values are strings, not {type(value).__name__}")
        with self._locked() as values:
            values[key] = value

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error if it is not there)."""
        with self._locked() as values:
            values.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix`` (a destroyed service's); returns how many."""
        with self._locked() as values:
            doomed = [k for k in values if k.startswith(prefix)]
            for k in doomed:
                del values[k]
        return len(doomed)

    def keys(self) -> list[str]:
        """All keys, sorted."""
        return sorted(self._load())

    def get_or_create(self, key: str) -> str:
        """The secret under ``key``, generating and storing a password first if there is none.

        Atomic across processes: two processes asking at once get the same password.
        """
        with self._locked() as values:
            if key not in values:
                values[key] = generate_password()
            return values[key]


def open_secrets(paths: AppPaths) -> SecretStore:
    """The secret store of ``paths`` (creating its directory)."""
    paths.ensure()
    return SecretStore(paths.secrets, lock_path=paths.secrets_lock)


__all__ = [
    "SecretBackend",
    "SecretStore",
    "SecretStoreError",
    "generate_password",
    "password_usable",
    "github_token_key",
    "mask",
    "open_secrets",
    "postgres_superuser_key",
    "service_admin_password_key",
    "service_db_password_key",
    "service_prefix",
]
