"""The benchmark's requests for Django's test client (query counts, profiles).

They mirror what bench/lua/bench.lua sends: the same users with their own tokens, the owner of
the seeded courses for course-wide reads, learners posting to the bench POST course.
"""

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import django

# The cache entries each endpoint reads (the kinds of progress/read_cache.py's key builders).
CACHE_KINDS = {
    "learner": ("learner",),
    "activities": ("activities",),
    "course_page": ("coursepage",),
    "analytics": ("analytics",),
}
SORTS = ("enrollmentDate", "progress", "completionDate")
ORDERS = ("asc", "desc")


@dataclass
class BenchData:
    owner: str = ""
    courses: list[int] = field(default_factory=list)
    learners: list[tuple[int, str]] = field(default_factory=list)  # (user id, token)
    post_course: int = 0
    post_contents: list[int] = field(default_factory=list)
    pages: int = 1

    @classmethod
    def read(cls, path: str) -> "BenchData":
        data = cls()
        with open(path) as lines:
            for line in lines:
                kind, *values = line.split()
                if kind == "owner":
                    data.owner = values[0]
                elif kind == "course":
                    data.courses.append(int(values[0]))
                elif kind == "learner":
                    data.learners.append((int(values[0]), values[1]))
                elif kind == "post_course":
                    data.post_course = int(values[0])
                elif kind == "post_content":
                    data.post_contents.append(int(values[0]))
                elif kind == "pages":
                    data.pages = int(values[0])
        return data


def _auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {token}", "HTTP_ACCEPT": "application/json"}


def make_requests(data: BenchData, endpoint: str, rng: random.Random, n: int):
    """A test client and `n` callables, each sending one request of `endpoint`."""
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    return client, [one_request(data, endpoint, rng, i) for i in range(n)]


def one_request(data: BenchData, endpoint: str, rng: random.Random, i: int = 0) -> Callable:
    course = rng.choice(data.courses)
    user_id, token = rng.choice(data.learners)
    if endpoint == "bare":
        return lambda c: c.get("/bench/bare")
    if endpoint == "learner":
        return lambda c: c.get(f"/user-progress/{course}/{user_id}", **_auth(token))
    if endpoint == "activities":
        return lambda c: c.get(f"/user-progress/{course}/{user_id}/activities", **_auth(token))
    if endpoint == "course_page":
        query = (
            f"page={rng.randint(1, data.pages)}&sortBy={rng.choice(SORTS)}"
            f"&order={rng.choice(ORDERS)}"
        )
        return lambda c: c.get(f"/user-progress/course/{course}/all?{query}", **_auth(data.owner))
    if endpoint == "analytics":
        return lambda c: c.get(f"/user-progress/course/{course}/analytics", **_auth(data.owner))
    if endpoint == "update":
        body = {
            "courseId": data.post_course,
            "courseContentId": rng.choice(data.post_contents),
            "progressStatus": rng.choice(["IN_PROGRESS", "COMPLETED"]),
            "progressPercent": rng.randint(1, 99),
            "activityDuration": rng.randint(1, 30),
        }
        return lambda c: c.post(
            "/user-progress/update",
            json.dumps(body),
            content_type="application/json",
            **_auth(token),
        )
    if endpoint == "bulk":
        start = rng.randrange(len(data.learners))
        ids = [data.learners[(start + k) % len(data.learners)][0] for k in range(20)]
        body = json.dumps({"courseId": course, "userIds": ids})
        return lambda c: c.post(
            "/user-progress/bulk", body, content_type="application/json", **_auth(data.owner)
        )
    raise ValueError(f"unknown endpoint {endpoint}")


def setup_django() -> None:
    """Django as the bench's server runs it: its settings and URLs, with the --variant changes."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("ROOT_URLCONF", "bench.urls")
    django.setup()
    from bench.variants import apply_code_changes

    apply_code_changes()


def drop_cached_reads(cache, endpoints=tuple(CACHE_KINDS)) -> None:
    """The cached reads of these endpoints, not the rest of the cache (tokens, permissions)."""
    kinds = [kind for endpoint in endpoints for kind in CACHE_KINDS.get(endpoint, ())]
    if kinds and not hasattr(cache, "delete_pattern"):  # not Redis: a per-process cache
        cache.clear()
        return
    for kind in kinds:
        cache.delete_pattern(f"{kind}:*")
