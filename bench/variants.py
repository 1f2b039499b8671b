"""Named changes the bench can measure without editing the files they would touch.

`python -m bench --variant NAME[,NAME...]` sets BENCH_VARIANT; the server then runs with
bench.settings_variant (settings changes) and bench.wsgi (code changes), and the query counts
are taken with the same changes. Without --variant the bench serves config.settings and
config.wsgi untouched.

Names:
  drf-json          the renderer without orjson (DRF's JSONRenderer), the state before issue 7
  cached-token      courseprogress.authentication.CachedTokenAuthentication in REST_FRAMEWORK
                    (now the default in config/settings.py, so this changes nothing there)
  no-health-checks  CONN_HEALTH_CHECKS off (no `SELECT 1` before each request's first query)
  framework-before  the per-request framework levers of issue 17 undone (DRF's negotiation for
                    every request, Django's eager message storage, the token's user rebuilt by
                    from_db): see bench/framework.py's LEVERS and bench/notes.md (issue 17)
"""

import os

SETTINGS_VARIANTS = {"cached-token", "no-health-checks"}
CODE_VARIANTS = {"drf-json", "framework-before"}
_held: list = []  # the framework-before contexts, entered for the life of the process
KNOWN = SETTINGS_VARIANTS | CODE_VARIANTS


def names() -> set[str]:
    value = os.environ.get("BENCH_VARIANT", "")
    chosen = {name.strip() for name in value.split(",") if name.strip()}
    unknown = chosen - KNOWN
    if unknown:
        raise ValueError(f"unknown bench variants: {', '.join(sorted(unknown))}")
    return chosen


def settings_changes(current: dict) -> dict:
    chosen = names()
    changes = {}
    if "cached-token" in chosen:
        rest = dict(current["REST_FRAMEWORK"])
        rest["DEFAULT_AUTHENTICATION_CLASSES"] = [
            "courseprogress.authentication.CachedTokenAuthentication"
            if name == "rest_framework.authentication.TokenAuthentication"
            else name
            for name in rest["DEFAULT_AUTHENTICATION_CLASSES"]
        ]
        changes["REST_FRAMEWORK"] = rest
    if "no-health-checks" in chosen:
        databases = {alias: dict(conf) for alias, conf in current["DATABASES"].items()}
        databases["default"]["CONN_HEALTH_CHECKS"] = False
        changes["DATABASES"] = databases
    return changes


def apply_code_changes() -> None:
    chosen = names()
    if "drf-json" in chosen:
        from courseprogress import renderers

        renderers.orjson = None
    if "framework-before" in chosen:
        from bench.framework import LEVERS

        for name in ("negotiation", "messages", "token-rebuild"):
            context = LEVERS[name]()
            context.__enter__()
            _held.append(context)
