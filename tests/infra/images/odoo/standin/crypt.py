"""Passwords the way Odoo stores them: passlib's pbkdf2_sha512, or legacy plaintext.

A hash looks like `$pbkdf2-sha512$<rounds>$<salt>$<checksum>`, salt and checksum in passlib's
"adapted base64" (standard base64 with `.` for `+`, no padding). hashlib computes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ROUNDS = 600_000
PREFIX = "$pbkdf2-sha512$"


def ab64_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("+", ".")


def ab64_decode(text: str) -> bytes:
    text = text.replace(".", "+")
    text += "=" * (-len(text) % 4)
    return base64.b64decode(text.encode("ascii"), validate=True)


def hash_password(password: str, rounds: int = ROUNDS, salt: bytes | None = None) -> str:
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, rounds, 64)
    return f"{PREFIX}{rounds}${ab64_encode(salt)}${ab64_encode(digest)}"


def verify_pbkdf2(password: str, stored: str) -> bool:
    """Check a password against a pbkdf2_sha512 hash; a malformed hash never matches."""
    try:
        rounds_s, salt_s, check_s = stored[len(PREFIX):].split("$")
        rounds = int(rounds_s)
        salt = ab64_decode(salt_s)
        check = ab64_decode(check_s)
    except ValueError:
        return False
    if rounds < 1 or not check:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, rounds, len(check))
    return hmac.compare_digest(digest, check)


def verify_and_update(password: str, stored: str | None) -> tuple[bool, str | None]:
    """Like passlib's CryptContext.verify_and_update for ['pbkdf2_sha512', 'plaintext'].

    Returns (valid, replacement): a valid plaintext password (deprecated scheme) comes back
    with a fresh hash to store instead.
    """
    stored = stored or ""
    if not password:
        return False, None
    if stored.startswith(PREFIX):
        return verify_pbkdf2(password, stored), None
    if hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8")):
        return True, hash_password(password)
    return False, None
