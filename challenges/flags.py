"""Flags are stored as salted SHA-256 digests and compared in constant time.

A flag is a long random secret, so a fast salted digest is enough; the salt keeps
two challenges with the same flag from sharing a digest.
"""

import hashlib
import hmac
import secrets

ALGORITHM = "sha256"


def _digest(salt: str, flag: str) -> str:
    return hashlib.sha256(f"{salt}${flag.strip()}".encode()).hexdigest()


def make_flag_hash(flag: str, salt: str | None = None) -> str:
    """The stored form of `flag`; a fresh random salt unless one is given (seeding gives one)."""
    salt = salt or secrets.token_hex(8)
    return f"{ALGORITHM}${salt}${_digest(salt, flag)}"


def check_flag(flag: str, flag_hash: str) -> bool:
    try:
        algorithm, salt, expected = flag_hash.split("$", 2)
    except ValueError:
        return False
    if algorithm != ALGORITHM:
        return False
    return hmac.compare_digest(_digest(salt, flag), expected)
