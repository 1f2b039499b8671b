"""Where things live: every module imports on its own, so no two modules need each other first.

Each module of courseprogress, progress and config is imported alone, as the first project
import after django.setup(), in a fresh process (forked from one that has imported only Django,
so the check stays quick). A cycle shows as an ImportError naming a partly initialised module.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER = r"""
import importlib, os, sys

import django

# Django and the libraries first (never a project module): each child then pays only for the
# project's own imports and django.setup().
for library in ("django.db.models", "django.contrib.admin", "django.test", "rest_framework.views",
                "rest_framework.serializers", "django_filters", "drf_spectacular.utils"):
    try:
        importlib.import_module(library)
    except Exception:
        pass
early = [m for m in sys.modules if m.split(".")[0] in ("courseprogress", "progress") and "." in m]
assert not early, early

running, failed = set(), False


def reap():
    global failed
    pid, status = os.wait()
    running.discard(pid)
    failed = failed or status != 0


for name in sys.argv[1:]:
    if len(running) >= 2:
        reap()
    pid = os.fork()
    if pid == 0:
        try:
            django.setup()
            importlib.import_module(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    running.add(pid)
while running:
    reap()
sys.exit(1 if failed else 0)
"""


def project_modules() -> list[str]:
    names = []
    for package in ("courseprogress", "progress", "config"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "gunicorn.conf.py":  # a config file gunicorn executes, not a module
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_each_module_imports_alone_in_a_fresh_interpreter():
    names = project_modules()
    assert "progress.read_cache" in names and "courseprogress.serializers" in names
    result = subprocess.run(
        [sys.executable, "-c", SERVER, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_seed_dataset_explains_itself_and_every_option():
    from django.core.management import load_command_class

    command = load_command_class("progress", "seed_dataset")
    parser = command.create_parser("manage.py", "seed_dataset")
    assert [action.dest for action in parser._actions if not action.help] == []
    assert len(command.help) > 300
