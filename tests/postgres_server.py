"""A real PostgreSQL (Debian's package) in a temp folder on a free port, for the broker test
that runs SAQ's Postgres queue.

``initdb`` refuses to run as root: as root the cluster belongs to the ``postgres`` user the
package creates, and its programs run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.redis_server import free_port

START_TIMEOUT_S = 30.0
USER = "reelbot"


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL programs, newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


def missing_postgres() -> str | None:
    """Why no PostgreSQL can run here, or None."""
    if postgres_bin() is None:
        return "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "as root, PostgreSQL runs as the postgres user through runuser: install util-linux"
    return None


class PostgresServer:
    """One throwaway cluster that trusts local connections, in a folder of its own under the
    system's temp folder (pytest's are closed to other users, postgres among them)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="reelbot-postgres-"))
        self.data = self.folder / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        binaries = postgres_bin()
        assert binaries is not None, missing_postgres()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run(binaries / "initdb", "-D", str(self.data), "-A", "trust", "-U", USER)
        self._run(
            binaries / "pg_ctl",
            "-D", str(self.data),
            "-l", str(self.folder / "postgres.log"),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
            "-w", "-t", str(int(START_TIMEOUT_S)),
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        binaries = postgres_bin()
        try:
            if binaries is not None and (self.data / "postmaster.pid").exists():
                self._run(binaries / "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: Path, *args: str) -> None:
        command = [str(program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode != 0:
            raise RuntimeError(f"{program.name} failed: {finished.stderr[-2000:]}")
