"""Where havsh keeps its files: ``$HAVSH_HOME`` when set, else the XDG dirs (platformdirs)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .serde import PRIVATE_DIR_MODE

APP_NAME = "havsh"
HOME_ENV = "HAVSH_HOME"


@dataclass(frozen=True)
class AppPaths:
    """The files of one havsh installation.

    ``AppPaths(home=some_dir)`` puts everything in ``some_dir`` (what tests and
    ``$HAVSH_HOME`` do). Without ``$HAVSH_HOME``, :meth:`from_env` splits them the XDG way:
    ``settings.toml`` in the config dir, everything else in the data dir.
    """

    home: Path
    #: Inventory, secrets, known_hosts, audit log, logs. Defaults to ``home``.
    data_dir: Path = None  # type: ignore[assignment]  # filled in __post_init__
    #: settings.toml. Defaults to ``home``.
    config_dir: Path = None  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        # Frozen, so the defaults go in through object.__setattr__.
        object.__setattr__(self, "home", Path(self.home))
        object.__setattr__(
            self, "data_dir", Path(self.data_dir) if self.data_dir is not None else self.home
        )
        object.__setattr__(
            self, "config_dir", Path(self.config_dir) if self.config_dir is not None else self.home
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppPaths:
        """``$HAVSH_HOME`` when it is set and not empty, else the platformdirs locations."""
        env = os.environ if environ is None else environ
        override = env.get(HOME_ENV, "").strip()
        if override:
            home = Path(override).expanduser().absolute()
            return cls(home=home)
        data = platformdirs.user_data_path(APP_NAME)
        config = platformdirs.user_config_path(APP_NAME)
        return cls(home=data, data_dir=data, config_dir=config)

    @property
    def inventory(self) -> Path:
        """The TinyDB inventory (hosts, services cache, operations history)."""
        return self.data_dir / "inventory.json"

    @property
    def lock(self) -> Path:
        """The inter-process lock held around every write of the inventory."""
        return self.data_dir / "inventory.lock"

    @property
    def settings(self) -> Path:
        """User settings, TOML."""
        return self.config_dir / "settings.toml"

    @property
    def secrets(self) -> Path:
        """Passwords and tokens, JSON, 0600. Never in the inventory."""
        return self.data_dir / "secrets.json"

    @property
    def secrets_lock(self) -> Path:
        """The lock held around every write of the secrets file."""
        return self.data_dir / "secrets.lock"

    @property
    def known_hosts(self) -> Path:
        """SSH host keys the user has accepted, OpenSSH format."""
        return self.data_dir / "known_hosts"

    @property
    def audit_log(self) -> Path:
        """One JSON line per action taken on a host."""
        return self.data_dir / "audit.log"

    @property
    def logs_dir(self) -> Path:
        """Per-operation logs (the step logs a failed service points to)."""
        return self.data_dir / "logs"

    @property
    def backups_dir(self) -> Path:
        """Local copies of service backups downloaded from the hosts."""
        return self.data_dir / "backups"

    def ensure(self) -> AppPaths:
        """Create the directories (mode 0700) and return ``self``.

        Only directories created here are chmodded: an existing directory the user chose
        (say ``HAVSH_HOME=~/work``) keeps its mode. The files inside are 0600 either way.
        """
        for directory in (self.data_dir, self.config_dir, self.logs_dir):
            _make_private_dir(directory)
        return self


def _make_private_dir(directory: Path) -> None:
    missing: list[Path] = []
    probe = directory
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    # mkdir's mode is masked by the umask (and parents get 0777 & ~umask), so set it outright
    # on every directory made here; the XDG spec asks 0700 of its base dirs too.
    for made in missing:
        os.chmod(made, PRIVATE_DIR_MODE)
