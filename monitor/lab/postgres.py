"""A throwaway PostgreSQL server for the tests and benchmarks: Debian's binaries, a data folder of its own,
listening on a Unix socket in that folder and on loopback only; stopped (by its PID file) and removed after.

Never the machine's own cluster: ``initdb`` makes a new one wherever the caller says, owned by an
unprivileged user (``postgres`` when run as root: PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitor.errors import LabError

_START_TIMEOUT_S = 60


def binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (newest version), or None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(base: Path | None = None) -> Iterator[str]:
    """Start a new PostgreSQL cluster; yield the SQLAlchemy URL of its ``postgres`` database (user ``tslcd``,
    trust on its own socket and on 127.0.0.1 only). LabError when it cannot start."""
    bin_dir = binaries()
    if bin_dir is None:
        raise LabError("PostgreSQL is not installed (apt-get install postgresql)")
    home = Path(tempfile.mkdtemp(prefix="tslcd-pg-", dir=base))
    data, sock = home / "data", home / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: as its own system user
        user = pwd.getpwnam("postgres")
        for path in (home, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        home.chmod(0o755)
        as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    port = _free_port()
    log = home / "server.log"
    try:
        _run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "tslcd", "--auth=trust", "-E", "UTF8",
              "--locale=C.UTF-8", "--no-sync"])
        options = f"-k {sock} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        _run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
              "-t", str(_START_TIMEOUT_S), "start"])
    except LabError as e:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(home, ignore_errors=True)
        raise LabError(f"{e}\n{tail}") from None
    try:
        yield f"postgresql+psycopg://tslcd@/postgres?host={sock}&port={port}"
    finally:
        try:
            _run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(home, ignore_errors=True)


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=_START_TIMEOUT_S + 30)
    except subprocess.CalledProcessError as e:
        raise LabError(f"`{' '.join(argv)}` failed (exit {e.returncode}): {e.stderr.strip()[-1500:]}") from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"`{' '.join(argv)}` could not run: {e}") from None


def database(server_url: str, name: str) -> str:
    """Create a new, empty database ``name`` on the server; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    with psycopg.connect(host=str(url.query["host"]), port=int(str(url.query["port"])), user=url.username,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name: from the test, [a-z0-9_] only
    return url.set(database=name).render_as_string(hide_password=False)
