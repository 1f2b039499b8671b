"""A PostgreSQL primary and streaming replicas of its own, for the replica checks.

Clusters are made with the server binaries (initdb, pg_basebackup -R, pg_ctl) as the
`postgres` OS user, in a temporary directory owned by it, on free ports with their unix
sockets in that directory; they are stopped and removed after. The machine's own PostgreSQL
is never touched. Each cluster loads pg_stat_statements, so a test can count which server ran
which statement.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.redis_tools import free_port

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "cp"

SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
port = {port}
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track_utility = off
max_connections = 100
shared_buffers = 32MB
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 8
hot_standby = on
hot_standby_feedback = on
logging_collector = off
"""


def available() -> str | None:
    """Why the harness cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root, to run the PostgreSQL binaries as the postgres OS user"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "needs a postgres OS user"
    if not all((BIN / name).exists() for name in ("initdb", "pg_ctl", "pg_basebackup")):
        return f"needs the PostgreSQL server binaries in {BIN}"
    return None


def as_postgres(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


class Cluster:
    def __init__(self, root: Path, name: str):
        self.root = root
        self.name = name
        self.data = root / name
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def connect(self, dbname: str = DATABASE) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def sql(self, statement: str, params=(), dbname: str = DATABASE):
        with self.connect(dbname) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def configure(self) -> None:
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(sockets=self.root, port=self.port))

    def start(self) -> "Cluster":
        log = self.root / f"{self.name}.log"
        as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    # --- on a replica ---

    def pause_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_pause()", dbname="postgres")

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()", dbname="postgres")

    def replayed(self) -> int:
        (position,) = self.sql(
            "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn", dbname="postgres"
        )[0]
        return int(position)

    # --- counted statements (pg_stat_statements) ---

    def statement_stats(self) -> dict[str, tuple[int, float]]:
        """(calls, total execution ms) of each statement run in the app's database here."""
        rows = self.sql(
            "SELECT query, calls, total_exec_time FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
            [DATABASE],
        )
        stats: dict[str, tuple[int, float]] = {}
        for query, calls, total_ms in rows:
            if "pg_stat_statements" in query:
                continue  # the harness's own counting
            old_calls, old_ms = stats.get(query, (0, 0.0))
            stats[query] = (old_calls + int(calls), old_ms + float(total_ms))
        return stats

    def statements(self) -> dict[str, int]:
        """Calls of each statement run in the app's database on this server, so far."""
        return {query: calls for query, (calls, _) in self.statement_stats().items()}


class PrimaryWithReplicas:
    """initdb a primary, pg_basebackup -R each replica, start them all; close() removes all."""

    def __init__(self, replicas: int = 2):
        self.root = Path(tempfile.mkdtemp(prefix="cp-replica-harness-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.primary = Cluster(self.root, "primary")
        self.replicas = [Cluster(self.root, f"replica{n}") for n in range(1, replicas + 1)]

    def start(self) -> "PrimaryWithReplicas":
        primary = self.primary
        as_postgres(
            str(BIN / "initdb"),
            "-D",
            str(primary.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        primary.configure()
        primary.start()
        primary.sql(f"CREATE DATABASE {DATABASE}", dbname="postgres")
        primary.sql("CREATE EXTENSION pg_stat_statements")
        for replica in self.replicas:
            as_postgres(
                str(BIN / "pg_basebackup"),
                "-h",
                str(self.root),
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(replica.data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            )
            replica.configure()  # its own port; primary_conninfo came from -R
            replica.start()
        self.wait_for_replay()
        return self

    def wait_for_replay(self, timeout: float = 30, only=None) -> None:
        """Until every running replica (or those in `only`) has replayed everything the
        primary has written so far."""
        (target,) = self.primary.sql(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn", dbname="postgres"
        )[0]
        deadline = time.monotonic() + timeout
        for replica in only or self.replicas:
            if not replica.running():
                continue
            while replica.replayed() < int(target):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{replica.name} did not catch up")
                time.sleep(0.02)

    def close(self) -> None:
        for cluster in [*self.replicas, self.primary]:
            if cluster.running():
                cluster.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
