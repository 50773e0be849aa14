"""Naming rules: service slugs and the Docker and PostgreSQL names derived from them."""

from __future__ import annotations

import hashlib
import re

SLUG_MIN = 2
SLUG_MAX = 40
# Used with fullmatch: "$" alone would also accept a trailing newline.
_SLUG_RE = re.compile(r"[a-z][a-z0-9-]*")
_HOST_RE = re.compile(r"[a-z0-9][a-z0-9.-]*")

# fmt: off
#: Names that would collide with platform hostnames or our own infrastructure containers.
RESERVED = frozenset(
    {
        "www", "api", "mail", "smtp", "imap", "pop", "ftp", "ns1", "ns2",
        "postgres", "postgresql", "db", "proxy", "caddy", "admin", "root",
        "havsh", "localhost", "docker", "network", "backup", "backups", "static",
        # database_name() would hand these PostgreSQL's own template databases.
        "template0", "template1",
    }
)
# fmt: on

#: Labels every Docker object we create carries (shared/DESIGN.md).
LABEL_MANAGED = "sh.hav.managed"
LABEL_SERVICE = "sh.hav.service"
LABEL_TYPE = "sh.hav.type"
LABEL_ODOO = "sh.hav.odoo"
LABEL_SOURCE = "sh.hav.source"
LABEL_PR = "sh.hav.pr"
LABEL_ROLE = "sh.hav.role"

NETWORK_NAME = "havsh"
POSTGRES_CONTAINER = "havsh-postgres"
POSTGRES_VOLUME = "havsh-postgres-data"
PROXY_CONTAINER = "havsh-proxy"


class InvalidName(ValueError):
    """A name that breaks the slug rules; the message says which rule."""


def validate_slug(name: str, *, what: str = "service name") -> str:
    """Return ``name`` if it is a valid slug, else raise InvalidName with the reason."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} is empty")
    if len(name) < SLUG_MIN:
        raise InvalidName(f"{what} {name!r} is too short (at least {SLUG_MIN} characters)")
    if len(name) > SLUG_MAX:
        raise InvalidName(f"{what} {name!r} is too long (at most {SLUG_MAX} characters)")
    if name != name.lower():
        raise InvalidName(f"{what} {name!r} must be lowercase")
    if not name[0].isalpha() or not name[0].isascii():
        raise InvalidName(f"{what} {name!r} must start with a letter a-z")
    if not _SLUG_RE.fullmatch(name):
        raise InvalidName(f"{what} {name!r} may only contain a-z, 0-9 and '-'")
    if name.endswith("-"):
        raise InvalidName(f"{what} {name!r} must not end with '-'")
    if "--" in name:
        raise InvalidName(f"{what} {name!r} must not contain '--'")
    if name in RESERVED:
        raise InvalidName(f"{what} {name!r} is reserved")
    return name


def is_valid_slug(name: str) -> bool:
    """True when ``name`` passes :func:`validate_slug`."""
    try:
        validate_slug(name)
    except InvalidName:
        return False
    return True


def validate_host_name(name: str) -> str:
    """Host names in the inventory follow the slug rules, but 'www' and friends are fine."""
    if not isinstance(name, str) or not (1 <= len(name) <= 63):
        raise InvalidName(f"host name {name!r} must be 1-63 characters")
    if not _HOST_RE.fullmatch(name) or name.endswith(("-", ".")):
        raise InvalidName(
            f"host name {name!r} may only contain a-z, 0-9, '.' and '-', "
            "and must start and end with a letter or digit"
        )
    return name


def container_name(slug: str) -> str:
    """The Odoo container of a service."""
    return f"havsh-{slug}"


def volume_name(slug: str) -> str:
    """The data volume (/var/lib/odoo: filestore and sessions) of a service."""
    return f"havsh-{slug}-data"


def addons_volume_name(slug: str) -> str:
    """The addons volume (/mnt/extra-addons) of a service."""
    return f"havsh-{slug}-addons"


def database_name(slug: str) -> str:
    """PostgreSQL identifiers: dashes become underscores, so no quoting is ever needed."""
    return slug.replace("-", "_")


def role_name(slug: str) -> str:
    """The PostgreSQL role that owns the service's database."""
    return "havsh_" + slug.replace("-", "_")


def preview_slug(parent: str, pr_number: int) -> str:
    """``<parent>-pr<n>``, shortened to fit the slug limit when the parent is long.

    Plain truncation would give two long parents that share a prefix the same preview name
    (and could even hit the untruncated preview of a third parent), so a shortened name
    carries four hex digits of a hash of the full parent: ``<head>-<hash>-pr<n>``.
    """
    if isinstance(pr_number, bool) or not isinstance(pr_number, int) or pr_number < 1:
        raise ValueError(f"pull request number must be a positive integer, got {pr_number!r}")
    suffix = f"-pr{pr_number}"
    if len(parent) + len(suffix) <= SLUG_MAX:
        return parent + suffix
    digest = hashlib.sha1(parent.encode(), usedforsecurity=False).hexdigest()[:4]
    tail = f"-{digest}{suffix}"
    head = parent[: SLUG_MAX - len(tail)].rstrip("-")
    return head + tail


def service_labels(
    slug: str,
    service_type: str,
    odoo_version: str,
    *,
    source: str | None = None,
    pr: str | None = None,
    role: str = "odoo",
) -> dict[str, str]:
    """The ``sh.hav.*`` labels for a Docker object that belongs to service ``slug``."""
    labels = {
        LABEL_MANAGED: "1",
        LABEL_SERVICE: slug,
        LABEL_TYPE: service_type,
        LABEL_ODOO: odoo_version,
        LABEL_ROLE: role,
    }
    if source:
        labels[LABEL_SOURCE] = source
    if pr:
        labels[LABEL_PR] = pr
    return labels
