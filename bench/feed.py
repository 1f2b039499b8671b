"""The change feed's time per page of 1,000 events, in-process through the full DRF stack.

Runs against the database DATABASE_URL names (the large bench set after `make bench`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench_large SECRET_KEY=x python -m bench.feed

15 pages at random cursors for each filter; prints the median, best and worst.
"""

import os
import random
import statistics
import time

PAGES = 15
FILTERS = [("all types", ""), ("one course", "&courseId=3"), ("one type", "&type=progress.changed")]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db import connection
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    admin, _ = get_user_model().objects.get_or_create(username="feed_bench_admin")
    admin.user_permissions.add(Permission.objects.get(codename="view_all_progress"))
    token, _ = Token.objects.get_or_create(user=admin)
    client = APIClient(SERVER_NAME="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), min(sequence), max(sequence) FROM progress_events")
        count, low, high = cursor.fetchone()
    print(f"events: {count:,} (sequence {low}..{high})")
    rng = random.Random(7)
    for label, extra in FILTERS:
        times = []
        for _ in range(PAGES):
            after = rng.randint(low, max(low, high - 5000))
            started = time.perf_counter()
            response = client.get(f"/user-progress/events?limit=1000&after={after}{extra}")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
        listed = len(response.json()["results"])
        print(
            f"{label}: {listed} events a page, median {statistics.median(times):.1f} ms,"
            f" best {min(times):.1f}, worst {max(times):.1f} ({PAGES} pages at random cursors)"
        )


if __name__ == "__main__":
    main()
