"""The service's signing secret when DISPATCH_SECRET_KEY is not given: generated once, kept.

No signing secret is written in the source: a default there would be public, and anyone
could mint an admin token with it. Without DISPATCH_SECRET_KEY, the first start writes 48
random bytes (64 URL-safe characters) to a file readable by the service's user only
(mode 0600, created atomically: written under a temporary name, then hard-linked into
place, so a second process starting at the same moment reads the same key, never half of
one), and every later start reads it back. Keeping it matters beyond sessions: webhook
signing secrets are sealed with a key derived from it, and a new key would make them
unreadable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

MIN_LENGTH = 32
FILE_NAME = "secret_key"
DEFAULT_DIRECTORY = Path("var")

# SHA-256 of values that were ever published as a key (the old built-in development
# default): refused as DISPATCH_SECRET_KEY even though nothing here uses them any more.
_PUBLISHED = frozenset({"ebaae059a4e2648fb6e9dd8edbae666026546343061a23335317bb0ca77918b9"})


class SecretKeyError(ValueError):
    """The configured or kept secret cannot be used (a message for the operator)."""


def is_published(secret: str) -> bool:
    return hashlib.sha256(secret.encode()).hexdigest() in _PUBLISHED


def default_path(database_url: str) -> Path:
    """Next to an SQLite database file (./var/secret_key for the default database), so a
    database and the key its webhook secrets are sealed with stay together; ./var/secret_key
    for PostgreSQL or an in-memory database."""
    if database_url.startswith("sqlite"):
        database = make_url(database_url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database).parent / FILE_NAME
    return DEFAULT_DIRECTORY / FILE_NAME


def read(path: Path) -> str:
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < MIN_LENGTH:
        raise SecretKeyError(f"the secret key in {path} is shorter than {MIN_LENGTH} characters")
    if is_published(secret):
        raise SecretKeyError(f"the secret key in {path} is a published value; replace it")
    return secret


def load_or_create(path: Path) -> str:
    """The secret kept at `path`, generating it (mode 0600) when there is none yet."""
    with contextlib.suppress(FileNotFoundError):
        return read(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    content = secrets.token_urlsafe(48) + "\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _write_new(temporary, content)
    try:
        os.link(temporary, path)  # atomic, and never replaces a key another start kept
    except FileExistsError:
        pass  # another process got there first: use its key
    except OSError:  # a file system without hard links: exclusive create, no rename
        with contextlib.suppress(FileExistsError):
            _write_new(path, content)
    finally:
        os.unlink(temporary)
    _sync_directory(path.parent)
    return read(path)


def _write_new(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        file.write(content)
        file.flush()
        os.fsync(file.fileno())


def _sync_directory(directory: Path) -> None:
    """Make the new name durable (a power cut must not lose the key after tokens exist)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
