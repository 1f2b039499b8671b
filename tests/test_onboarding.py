"""What a newcomer meets first: `make run`'s address, manage.py without a venv or a key, the demo
set's printout, resetting the demo (issue 14, items 1, 4, 5 and 13)."""

import io
import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from courseprogress.models import Course
from progress import services
from progress.management.demo import demo_password
from progress.models import Enrollment, EnrollmentStatus
from tests.helpers import ROOT, manage_py

User = get_user_model()


def make_dry_run(*args, **env):
    """What `make run` would execute (make -n runs nothing), with this environment."""
    base = {k: v for k, v in os.environ.items() if k not in {"GUNICORN_BIND", "PORT", "HOST"}}
    result = subprocess.run(
        ["make", "-n", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize(
    ("args", "env", "bind", "url"),
    [
        ((), {}, "127.0.0.1:8000", "http://127.0.0.1:8000"),
        (("PORT=8123",), {}, "127.0.0.1:8123", "http://127.0.0.1:8123"),
        ((), {"PORT": "8124", "HOST": "0.0.0.0"}, "0.0.0.0:8124", "http://127.0.0.1:8124"),
        ((), {"GUNICORN_BIND": "0.0.0.0:9000"}, "0.0.0.0:9000", "http://127.0.0.1:9000"),
    ],
)
def test_make_run_listens_where_it_is_told(args, env, bind, url):
    commands = make_dry_run("run", *args, **env)
    gunicorn = next(line for line in commands.splitlines() if "gunicorn -c" in line)
    assert f'GUNICORN_BIND="{bind}"' in gunicorn
    assert f"seed_demo --base-url {url}" in commands


def test_manage_py_without_a_key_says_so_in_one_line(tmp_path):
    result = manage_py("seed_demo", "--help", SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "manage.py: SECRET_KEY must be set when DEBUG is off: export SECRET_KEY=..., or run "
        "`make run` once (it keeps a key in .secret_key, which manage.py reads)."
    ]


def test_manage_py_reads_the_key_make_run_keeps(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text("the-local-key\n")
    result = manage_py(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        SECRET_KEY_FILE=str(key_file),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the-local-key"
    help_text = manage_py("seed_demo", "--help", SECRET_KEY_FILE=str(key_file))
    assert help_text.returncode == 0
    assert "--reset" in help_text.stdout


def test_manage_py_without_django_points_to_the_venv():
    """`python3 manage.py help` with a Python that has no Django (no venv): one line."""
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import runpy; runpy.run_path('manage.py', run_name='__main__')",
        ],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "SECRET_KEY": "k"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Django is not installed" in result.stderr
    assert ".venv/bin/python manage.py" in result.stderr


def run(*args):
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def account_line(out: str, username: str) -> str:
    return next(line for line in out.splitlines() if line.split()[:1] == [username])


def test_seed_demo_describes_learners_as_they_are_now(db):
    out = run()
    assert "learner: IN_PROGRESS, 48 % done (enrollment" in account_line(out, "demo_active")
    assert "learner: DROPPED" in account_line(out, "demo_dropped")
    done = Enrollment.objects.get(user__username="demo_done")
    services.update_enrollment(
        done.pk, status=EnrollmentStatus.CERTIFIED, certificate_url="https://example.com/c/1"
    )
    services.enrol(user_id=User.objects.get(username="demo_dropped").pk, course_id=done.course_id)
    again = run()
    assert f"learner: CERTIFIED, 100 % done (enrollment {done.pk})" in account_line(
        again, "demo_done"
    )
    assert "learner: IN_PROGRESS" in account_line(again, "demo_dropped")


def test_seed_demo_prints_one_password_for_scripts(db):
    assert run("--password-of", "demo_active").strip() == demo_password("demo_active")
    assert not User.objects.exists()
    with pytest.raises(CommandError, match="invalid choice"):
        run("--password-of", "root")


@pytest.mark.django_db(transaction=True)  # flush truncates: not inside the test's transaction
def test_seed_demo_reset_brings_the_demo_back_as_new(django_user_model, monkeypatch):
    run()
    extra = Course.objects.create(title="Made while trying things")
    django_user_model.objects.create_user("someone")
    active = Enrollment.objects.get(user__username="demo_active")
    services.move_enrollment(active.pk, EnrollmentStatus.DROPPED)

    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="cancelled"):
        run("--reset")
    assert Course.objects.filter(pk=extra.pk).exists()

    out = run("--reset", "--no-input")

    assert not Course.objects.filter(pk=extra.pk).exists()
    assert not User.objects.filter(username="someone").exists()
    assert Enrollment.objects.get(user__username="demo_active").status == "IN_PROGRESS"
    assert "Demo set loaded" in out
    assert Course.objects.get().title == "Demo: Introduction to Python"
    # ids start from 1 again, so the README's examples fit a reset demo too
    assert Course.objects.get().pk == 1
    assert User.objects.get(username="demo_active").pk == 6
