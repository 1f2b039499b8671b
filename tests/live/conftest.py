"""A live gunicorn on a free port, on production settings, for the checks of `make check-live`.

These tests never touch the test process's own database connection or cache: everything goes
through HTTP to servers started here, and through short-lived subprocesses (migrate, seeding)
run with the server's environment. They need DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.redis_tools import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_cache():
    """Overrides the suite-wide fixture: the live checks never use the test process's cache."""
    return


def redis_url_on_db(url: str, db: int) -> str:
    """The same Redis server, another logical database: redis://host:port/N."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("the live checks need DATABASE_URL pointing at PostgreSQL")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url.startswith("redis://"):
        pytest.skip("the live checks need REDIS_URL")
    return url


def server_env(database_url: str, redis_url: str, **extra: str) -> dict:
    """Production settings: DEBUG off, PostgreSQL, Redis, logs on stdout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GUNICORN_", "THROTTLE_RATE_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "live-checks-secret-key",
        DEBUG="false",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(env: dict, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def migrated(database_url) -> str:
    """The DATABASE_URL database, migrated (`manage.py migrate`) once per session."""
    env = server_env(database_url, "")
    manage(env, "manage.py", "migrate", "--no-input")
    return database_url


@contextlib.contextmanager
def personas(env: dict, *, contents: int = 3, load_learners: int = 0):
    """Seed the roles (see tests/live/personas.py) under a unique prefix; remove them after."""
    prefix = f"live{uuid.uuid4().hex[:10]}"
    out = manage(
        env, "-m", "tests.live.personas", "seed", prefix, str(contents), str(load_learners)
    )
    try:
        yield json.loads(out.strip().splitlines()[-1])
    finally:
        with contextlib.suppress(Exception):
            manage(env, "-m", "tests.live.personas", "delete", prefix)


class Gunicorn:
    """gunicorn with config/gunicorn.conf.py on a free port, in its own process group."""

    def __init__(self, env: dict, log_path: Path, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_ACCESSLOG": "-",
        }
        self.log_path = log_path
        self.process = None

    def start(self, timeout: float = 30) -> "Gunicorn":
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            # No control socket: by default every gunicorn on the machine shares one path
            # ($HOME/.gunicorn/gunicorn.ctl), and a test server must not take another's.
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "config/gunicorn.conf.py",
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not become healthy:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """The master's children, read from /proc."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    pids.append(int(stat.parent.name))
        return sorted(pids)

    def log_tail(self, lines: int = 80) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        # Whatever is left of the group (a worker that outlived its master): gone too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.log.close()


@contextlib.contextmanager
def running_gunicorn(env: dict, log_path: Path, workers: int = 2):
    server = Gunicorn(env, log_path, workers)
    try:
        yield server.start()
    finally:
        server.stop()
