"""The README's API examples work, copied as they are, right after `make run`; Docker's release
step and health probe do what the README says (issue 14, items 2 and 5).

The setting is `make run`'s own: a fresh SQLite file, the local-memory cache, DEBUG off,
gunicorn with config/gunicorn.conf.py. The demo set is loaded by the command docker-compose.yml
runs as its release step, so that step is checked too. Nothing here touches the test database.
"""

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.redis_tools import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples.sh"


@pytest.fixture(autouse=True)
def _clean_cache():
    """Overrides the suite-wide fixture: these servers have their own caches."""
    return


def release_step_command() -> str:
    """The shell command of docker-compose.yml's `migrate` service, as compose hands it to sh."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["migrate"]["command"]
    assert command[:2] == ["sh", "-c"]
    return command[2].replace("$$", "$")  # compose's escape for a literal $


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """`make run`'s environment on a fresh SQLite file, after the release step ran."""
    home = tmp_path_factory.mktemp("demo")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # the image's `python`: this interpreter, with its packages
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GUNICORN_", "THROTTLE_RATE_", "PYTEST_", "DJANGO_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "ALLOWED_HOSTS"}
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        SECRET_KEY=secrets.token_urlsafe(40),
        SQLITE_PATH=str(home / "db.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    result = subprocess.run(
        ["sh", "-c", release_step_command()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Demo set loaded" in result.stdout
    assert re.search(r"demo_instructor +password \w+ +token \w+", result.stdout)
    return env


@contextlib.contextmanager
def gunicorn(env: dict, log: Path, **extra: str):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--no-control-socket"],
        cwd=ROOT,
        env={
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "4",
            **extra,
        },
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(requests.RequestException):
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def test_the_readme_shows_the_examples_file_verbatim():
    readme = (ROOT / "README.md").read_text()
    assert f"```sh\n{EXAMPLES.read_text()}```\n" in readme


def test_every_readme_example_works_as_written(demo_env, tmp_path):
    script = EXAMPLES.read_text()
    assert script.count("\nAPI=${API:-http://127.0.0.1:8000}") == 1
    with gunicorn(demo_env, tmp_path / "gunicorn.log") as port:
        # The server's port comes in as the README says (`export API=...`). Every curl fails
        # on an HTTP error and ends its body with a newline, so each answer is one line.
        prelude = (
            "set -euo pipefail\ncurl() { command curl -sS --fail-with-body -w '\\n' \"$@\"; }\n"
        )
        run = subprocess.run(
            ["bash", "-c", prelude + script],
            cwd=ROOT,
            env={**demo_env, "API": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    log = (tmp_path / "gunicorn.log").read_text()
    assert run.returncode == 0, run.stdout + run.stderr + log
    answers = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    curls = len(re.findall(r"^curl ", script, flags=re.MULTILINE))
    assert len(answers) == curls
    *api, health = answers
    assert all(answer["success"] is True for answer in api), api
    assert health == {"status": "ok", "database": "ok", "cache": "ok"}
    by_message = {answer["message"]: answer["results"] for answer in api}
    assert by_message["User progress retrieved successfully"]["enrollments"]["userId"] == 6
    assert by_message["All users progress retrieved successfully"]  # not an empty page
    assert by_message["Activity logs retrieved successfully"]  # the window covers today
    assert by_message["Re-enrolled successfully"]["userId"] == 9
    certified = by_message["Enrollment updated successfully"]
    assert (certified["enrollmentId"], certified["enrollmentStatus"]) == (3, "CERTIFIED")
    assert by_message["Course analytics retrieved successfully"]["totalEnrollments"] == 5


def test_the_container_health_probe_passes_with_production_hosts(demo_env, tmp_path):
    """Dockerfile's HEALTHCHECK asks 127.0.0.1 over plain HTTP: it passes when ALLOWED_HOSTS
    names only the real domain and HTTPS is enforced, while the API still refuses that Host."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "config/healthcheck.py"]' in dockerfile
    production = {"ALLOWED_HOSTS": "progress.example.com", "SECURE_SSL_REDIRECT": "true"}
    with gunicorn({**demo_env, **production}, tmp_path / "gunicorn.log") as port:
        probe = subprocess.run(
            [sys.executable, "config/healthcheck.py"],
            cwd=ROOT,
            env={**demo_env, "GUNICORN_BIND": f"0.0.0.0:{port}"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        api = requests.get(f"http://127.0.0.1:{port}/user-progress/1/6", timeout=5)
        health = requests.get(
            f"http://127.0.0.1:{port}/healthz", headers={"Host": "10.1.2.3:8000"}, timeout=5
        )
    assert probe.returncode == 0, probe.stderr
    assert api.status_code == 400
    assert (health.status_code, health.json()["database"]) == (200, "ok")
