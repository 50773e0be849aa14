"""A service's status as a coloured badge: the label and colour class for table cells, and
a small widget.

The colours live in the .tcss as component classes (``status-badge--running`` ...), so themes
restyle them; nothing here names a colour.
"""

from __future__ import annotations

from textual.widgets import Static

from havsh_tui.core.model import ServiceStatus, ServiceType

#: Statuses that share a look: busy states, gone states, broken states.
STATUS_CLASS: dict[ServiceStatus, str] = {
    ServiceStatus.RUNNING: "running",
    ServiceStatus.STOPPED: "stopped",
    ServiceStatus.CREATING: "busy",
    ServiceStatus.UPDATING: "busy",
    ServiceStatus.DESTROYING: "busy",
    ServiceStatus.DESTROYED: "gone",
    ServiceStatus.FAILED: "failed",
    ServiceStatus.MISSING: "failed",
    ServiceStatus.UNKNOWN: "unknown",
}

#: Every badge is padded to the widest label, so a status change never changes the width
#: of the Status column (a DataTable re-measures a whole column when a cell shrinks).
BADGE_WIDTH = max(
    len(status.display(service_type))
    for status in ServiceStatus
    for service_type in (None, ServiceType.PREVIEW)
)

#: The look of a status its host could not confirm: the last known status, dimmed, behind a
#: "?" (the host stopped answering; the inventory still holds what it said last).
UNCONFIRMED_CLASS = "unreachable"

BADGE_COMPONENT_CLASSES: set[str] = {
    f"status-badge--{name}" for name in (*STATUS_CLASS.values(), UNCONFIRMED_CLASS)
}


def status_class(status: ServiceStatus) -> str:
    return STATUS_CLASS.get(status, "unknown")


def badge_label(status: ServiceStatus, service_type: ServiceType | None = None) -> str:
    """The label padded to the badge width, with a space each side so the colour reads as a
    badge rather than as coloured text."""
    return f" {status.display(service_type):<{BADGE_WIDTH}} "


def badge_component(status: ServiceStatus) -> str:
    """The component class (in the .tcss) that colours this status's badge."""
    return f"status-badge--{status_class(status)}"


def unconfirmed_label(status: ServiceStatus, service_type: ServiceType | None = None) -> str:
    """The last known status of a service whose host is not answering: "? Running", as wide
    as :func:`badge_label` (the "?" takes the place of the leading and one trailing space),
    so marking a host unreachable never widens the Status column."""
    return f"? {status.display(service_type)}".ljust(BADGE_WIDTH + 2)


#: The component class of an unconfirmed badge (see :func:`unconfirmed_label`).
UNCONFIRMED_COMPONENT = f"status-badge--{UNCONFIRMED_CLASS}"


class StatusBadge(Static):
    """A one-line badge widget for screens that show a single service (the detail screen).

    Its state class (``-running``, ``-failed`` ...) picks the colours in the .tcss.
    """

    DEFAULT_CSS = """
    StatusBadge { width: auto; height: 1; padding: 0 1; }
    """

    def __init__(
        self,
        status: ServiceStatus = ServiceStatus.UNKNOWN,
        service_type: ServiceType | None = None,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._service_type = service_type
        #: Why the status is unconfirmed (its host does not answer), or None.
        self.unconfirmed: str | None = None
        self.set_status(status)

    def set_status(self, status: ServiceStatus) -> None:
        self.status = status
        for name in set(STATUS_CLASS.values()):
            self.set_class(name == status_class(status), f"-{name}")
        self._show()

    def set_unconfirmed(self, reason: str | None) -> None:
        """Mark the status as the last known one ("? Running") while the service's host
        does not answer (``reason``: why, as a tooltip); None shows it as it is again."""
        self.unconfirmed = reason
        self._show()

    def _show(self) -> None:
        reason = self.unconfirmed
        self.set_class(reason is not None, "-unconfirmed")
        text = self.status.display(self._service_type)
        self.update(f"? {text}" if reason is not None else text)
        self.tooltip = (f"Last known status; unconfirmed: {reason}" if reason is not None
                        else None)
