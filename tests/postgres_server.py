"""A throw-away PostgreSQL server in a temporary folder, for the tests (tests/conftest.py) and bench/."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.web_support import free_port


@dataclass(frozen=True)
class PostgreSQLServer:
    """A throw-away PostgreSQL server, on 127.0.0.1 with trust authentication."""

    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def postgresql_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(os.path.realpath(initdb)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def _unprivileged_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise RuntimeError("running as root, the PostgreSQL test server needs the user 'nobody' to run as "
                           "(initdb and pg_ctl refuse root), and this system has none") from None


def _server_parent() -> str:
    """The temporary folder, if every folder above it lets others through (as root the server runs
    as nobody), else /tmp."""
    parent = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() != 0 or all(folder.stat().st_mode & 0o001 for folder in (parent, *parent.parents)):
        return str(parent)
    return "/tmp"


def _run_postgresql_tool(command: list[str], folder: Path) -> None:
    """Run initdb/pg_ctl; as root, as the user ``nobody`` (both refuse to run as root), who owns ``folder``."""
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        nobody = _unprivileged_user()
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "LC_ALL": "C.UTF-8"}
    result = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True,
                            timeout=120, check=False, **as_user)
    if result.returncode != 0:
        log_file = folder / "server.log"
        server_log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise RuntimeError(f"{' '.join(command[:2])} failed ({result.returncode}): {result.stderr.strip()}\n"
                           f"{server_log}")


@contextlib.contextmanager
def temporary_postgresql_server(binaries: Path, *, durable: bool = False) -> Iterator[PostgreSQLServer]:
    """A PostgreSQL server made with initdb and started with pg_ctl in a new temporary folder (unix
    socket there too, TCP on a free port of 127.0.0.1); stopped and removed after. Unless ``durable``
    (bench/), fsync and the like are off: the tests never crash the machine."""
    # Not under pytest's tmp_path: as root, the server runs as nobody, who must reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="ce-postgresql-", dir=_server_parent()))
    if os.geteuid() == 0:
        nobody = _unprivileged_user()
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    data = folder / "data"
    pg_ctl = str(binaries / "pg_ctl")
    try:
        _run_postgresql_tool([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                              "-E", "UTF8", "--locale=C.UTF-8"], folder)
        for attempt in itertools.count(1):
            port = free_port()
            options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=200"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            try:
                _run_postgresql_tool([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
                                      "-w", "-t", "60", "start"], folder)
                break
            except RuntimeError:
                if attempt == 3:  # the free port was taken before the server bound it, three times
                    raise
        yield PostgreSQLServer(port=port, folder=folder)
    finally:
        if (data / "postmaster.pid").exists():
            _run_postgresql_tool([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], folder)
        shutil.rmtree(folder, ignore_errors=True)
