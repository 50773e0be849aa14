"""Backups and restores of services: Odoo-format zips, destinations, schedules, retention.

* ``model``: destinations (``host``, ``host:PATH``, ``local:PATH``, ``HOST:PATH``), policies,
  backup records, cron expressions.
* ``scripts/``: the POSIX sh that runs on the hosts, in containers of the host's own
  PostgreSQL image: the zip writer and reader (``lib.sh``), one backup (``backup.sh``), the
  steps of a restore (``restore.sh``), directories of backups (``store.sh``), and the
  scheduler loop (``scheduler.sh``).
* ``jobs``: those containers, from havsh's side (they outlive an SSH drop).
* ``destinations``: where zips live, behind one interface (an S3 store would implement it).
* ``schedule``: policies in the inventory and the scheduler container ``havsh-backups``.
* ``ops``: backup now, list, find, delete, download; ``restore``: restore into a service
  (safety backup first) or into a new Copy, from a backup or a local zip.
"""

from __future__ import annotations

from havsh_tui.ops.backup.destinations import (
    BackupWriter,
    Destination,
    DestinationFull,
    HostDirectory,
    LocalDirectory,
    open_destination,
)
from havsh_tui.ops.backup.model import (
    DEFAULT_HOST_ROOT,
    DEFAULT_KEEP,
    FREQUENCIES,
    KINDS,
    BackupError,
    BackupPolicy,
    BackupRecord,
    DestinationConfig,
    DestinationSpec,
    cron_for,
    cron_matches,
    normalize_cron,
    parse_backup_id,
)
from havsh_tui.ops.backup.ops import (
    copy_backup,
    create_backup,
    delete_backup,
    download_backup,
    find_backup,
    list_backups,
    resolve_destination,
)
from havsh_tui.ops.backup.restore import RestoreFailed, RestoreResult, RestoreSpec, restore_backup
from havsh_tui.ops.backup.schedule import (
    SCHEDULER_CONTAINER,
    add_destination,
    configure_scheduler,
    enable_default_backups,
    forget_backups,
    get_policy,
    remove_destination,
    scheduler_status,
    set_primary,
    set_schedule,
)


def backup_offer(inventory, secret_store, pool, *, dest: str | None = None, reporter=None,
                 audit=None):
    """The ``backup_offer`` hook of ``services.delete_service``: a safety backup of the
    service (to its primary destination, or ``dest``) before anything is removed. If it
    fails, the delete does not happen."""

    def offer(service):
        return create_backup(inventory, secret_store, pool, service, dest=dest, kind="safety",
                             reporter=reporter, audit=audit)

    return offer


__all__ = [
    "DEFAULT_HOST_ROOT",
    "DEFAULT_KEEP",
    "FREQUENCIES",
    "KINDS",
    "SCHEDULER_CONTAINER",
    "BackupError",
    "BackupPolicy",
    "BackupRecord",
    "BackupWriter",
    "Destination",
    "DestinationConfig",
    "DestinationFull",
    "DestinationSpec",
    "HostDirectory",
    "LocalDirectory",
    "RestoreFailed",
    "RestoreResult",
    "RestoreSpec",
    "add_destination",
    "backup_offer",
    "configure_scheduler",
    "copy_backup",
    "create_backup",
    "cron_for",
    "cron_matches",
    "delete_backup",
    "download_backup",
    "enable_default_backups",
    "find_backup",
    "forget_backups",
    "get_policy",
    "list_backups",
    "normalize_cron",
    "open_destination",
    "parse_backup_id",
    "remove_destination",
    "resolve_destination",
    "restore_backup",
    "scheduler_status",
    "set_primary",
    "set_schedule",
]
