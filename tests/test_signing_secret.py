"""No public signing secret: without DISPATCH_SECRET_KEY one is generated once and kept."""

from __future__ import annotations

import ast
import datetime as dt
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.auth import keyfile
from app.auth.cache import authenticate_token
from app.auth.secrets import issue_access_token
from app.integrations.sealing import seal, unseal
from app.settings import Settings
from tests.harness import SECRET, start_harness
from tests.test_errors import assert_error

APP = Path(__file__).resolve().parent.parent / "app"
# The built-in development key of earlier versions: public, so it must never sign.
OLD_DEFAULT = "dev-insecure-secret-change-me-dev-insecure-secret"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def test_without_a_key_one_is_generated_beside_the_database_and_kept(tmp_path: Path) -> None:
    database = tmp_path / "not" / "yet" / "there" / "dispatch.db"
    first = settings(database_url=sqlite_url(database))
    path = database.parent / "secret_key"
    assert first.secret_key_file == path
    secret = first.secret_key.get_secret_value()
    assert len(secret) >= 64 and path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind

    restarted = settings(database_url=sqlite_url(database))
    assert restarted.secret_key.get_secret_value() == secret
    # Webhook signing secrets sealed before the restart can still be read after it.
    sealed = seal("whsec_abc", first.secret_key.get_secret_value())
    assert unseal(sealed, restarted.secret_key.get_secret_value()) == "whsec_abc"

    elsewhere = settings(database_url=sqlite_url(tmp_path / "other" / "dispatch.db"))
    assert elsewhere.secret_key.get_secret_value() != secret


def test_default_location_is_var_for_the_default_database_and_postgresql() -> None:
    assert keyfile.default_path("sqlite+aiosqlite:///./var/dispatch.db") == Path("var/secret_key")
    assert keyfile.default_path("postgresql+asyncpg://u@h/db") == Path("var/secret_key")
    assert keyfile.default_path("sqlite+aiosqlite:///:memory:") == Path("var/secret_key")


def test_a_named_key_file_is_used_and_created_with_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "dispatch.key"
    one = settings(secret_key_file=str(path), database_url=sqlite_url(tmp_path / "a.db"))
    two = settings(secret_key_file=str(path), database_url=sqlite_url(tmp_path / "b.db"))
    assert one.secret_key == two.secret_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "secret_key").exists()


def test_starts_at_the_same_moment_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret_key"
    found: list[str] = []
    start = threading.Barrier(8)

    def first_start() -> None:
        start.wait()
        found.append(keyfile.load_or_create(path))

    threads = [threading.Thread(target=first_start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret_key"]


def test_a_given_key_is_used_as_is_and_nothing_is_written(tmp_path: Path) -> None:
    given = settings(secret_key=SECRET, database_url=sqlite_url(tmp_path / "d.db"))
    assert given.secret_key.get_secret_value() == SECRET
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("where", ["environment", "file"])
def test_a_published_key_is_refused(tmp_path: Path, where: str) -> None:
    if where == "environment":
        values: dict[str, Any] = {"secret_key": OLD_DEFAULT}
    else:
        path = tmp_path / "secret_key"
        path.write_text(OLD_DEFAULT + "\n")
        values = {"secret_key_file": str(path)}
    with pytest.raises(ValidationError, match="published"):
        settings(database_url=sqlite_url(tmp_path / "d.db"), **values)


def test_short_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        settings(secret_key="x" * 31)
    path = tmp_path / "secret_key"
    path.write_text("short\n")
    with pytest.raises(ValidationError, match="shorter than 32"):
        settings(secret_key_file=str(path))


def test_production_names_its_key_and_never_generates_one(tmp_path: Path) -> None:
    database = sqlite_url(tmp_path / "d.db")
    with pytest.raises(ValidationError, match="must be set in production"):
        settings(env="production", database_url=database)
    missing = tmp_path / "absent" / "secret_key"
    with pytest.raises(ValidationError, match="secret key file"):
        settings(env="production", database_url=database, secret_key_file=str(missing))
    assert not missing.exists() and not (tmp_path / "secret_key").exists()

    kept = tmp_path / "kept"
    kept.write_text("k" * 48 + "\n")
    from_file = settings(env="production", database_url=database, secret_key_file=str(kept))
    assert from_file.secret_key.get_secret_value() == "k" * 48
    given = settings(env="production", database_url=database, secret_key=SECRET)
    assert given.secret_key.get_secret_value() == SECRET


def test_no_secret_key_value_is_written_in_the_source() -> None:
    for path in APP.rglob("*.py"):
        assert OLD_DEFAULT not in path.read_text(encoding="utf-8"), path


def _source_strings() -> set[str]:
    """Every string constant of the service's source long enough to be a key."""
    found = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if len(node.value) >= keyfile.MIN_LENGTH:
                    found.add(node.value)
    return found


@pytest.mark.usefixtures("backend")
async def test_tokens_signed_with_values_from_the_source_are_refused(
    own_database_url: str, tmp_path: Path
) -> None:
    """A server started without DISPATCH_SECRET_KEY signs with its generated key; a token
    forged with anything written in the code (old default, the tests' key, any string
    constant of the app) names a real admin and is refused."""
    key_file = tmp_path / "keys" / "secret_key"
    async with start_harness(own_database_url, secret_key="", secret_key_file=key_file) as h:
        assert h.ctx.settings.secret_key.get_secret_value() == key_file.read_text().strip()
        token = await h.token("admin")  # a real admin, signed with the generated key
        assert (await h.client.get("/api/v1/auth/me", headers=_bearer(token))).status_code == 200
        me = (await h.client.get("/api/v1/auth/me", headers=_bearer(token))).json()
        now = dt.datetime.now(dt.UTC)

        for published in (OLD_DEFAULT, SECRET):
            forged = issue_access_token(me["id"], "admin", published, 900, now)
            response = await h.client.get("/api/v1/auth/me", headers=_bearer(forged))
            assert_error(response, 401, "invalid_token")

        candidates = _source_strings()
        assert len(candidates) > 50  # the walk found the code's strings
        for value in candidates:
            forged = issue_access_token(me["id"], "admin", value, 900, now)
            assert await authenticate_token(h.ctx, forged) is None, value[:40]


@pytest.mark.usefixtures("backend")
async def test_a_restart_keeps_the_generated_key_so_tokens_stay_valid(
    own_database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "secret_key"
    async with start_harness(own_database_url, secret_key="", secret_key_file=key_file) as first:
        token = await first.token("operator")
        key = first.ctx.settings.secret_key.get_secret_value()
    async with start_harness(own_database_url, secret_key="", secret_key_file=key_file) as second:
        assert second.ctx.settings.secret_key.get_secret_value() == key
        response = await second.client.get("/api/v1/auth/me", headers=_bearer(token))
        assert response.status_code == 200, response.text


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "secret_key"
        keyfile.load_or_create(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
