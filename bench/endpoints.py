"""The bench's one table of rows: what each row requests, in which cache state, at how many
connections, and the target it is held to (issue 17). bench.run drives the rows, bench.report
labels and judges them; both read this table and nothing else.

`mode`, `pick` and `keys` go to bench/lua/bench.lua (it builds the request paths; `path` here
says which path a row asks for, and is what the one-at-a-time sampler requests). `cache` names
the cache entries a row depends on (their keys are counted, to report how many requests were
served cold); `warm` fills them first, `flush` deletes them first. `connections` None means the
run's --connections. `queries` names the entries of bench.queries whose SQL counts make up one
request of the row (cold or warm), summed.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """Issue 17's targets, on the large data set (same-run ratio to the bare view, medians of the
    rounds); `sql_max`/`sql_exact` judge the statements one request runs (bench.queries)."""

    ratio: float | None = None
    sql_max: int | None = None
    sql_exact: int | None = None

    def describe(self) -> str:
        parts = []
        if self.ratio is not None:
            parts.append(f"ratio >= {self.ratio:g}")
        if self.sql_max is not None:
            parts.append(f"SQL <= {self.sql_max}")
        if self.sql_exact is not None:
            parts.append(f"SQL = {self.sql_exact}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Endpoint:
    name: str
    label: str
    mode: str
    path: str
    cache_state: str
    pick: str = "random"
    keys: int = 0
    cache: str | None = None
    warm: bool = False
    flush: bool = False
    connections: int | None = None
    queries: tuple[tuple[str, str], ...] = ()
    target: Target | None = None
    default: bool = False
    writes: bool = False  # posts to the bench POST course: rows checked after the run
    # Ceiling rows: the mode's requests (and its cache warm-up, on the real endpoint) sent to
    # this bench-only path instead ({course} and {learner} filled in as the mode draws them).
    request_path: str | None = None


ROWS: tuple[Endpoint, ...] = (
    Endpoint(
        name="bare",
        label="bare Django view (constant JSON)",
        mode="bare",
        path="/bench/bare",
        cache_state="-",
    ),
    Endpoint(
        name="drf_floor",
        label="floor: DRF view + token auth, no work",
        mode="drf",
        path="/bench/drf",
        cache_state="token entries warm",
        keys=500,
        default=True,
    ),
    Endpoint(
        name="learner_cached",
        label="3.1 GET one learner, cached",
        mode="learner",
        path="/user-progress/{course}/{learner}",
        cache_state="filled first",
        keys=500,
        cache="learner",
        warm=True,
        queries=(("learner", "warm"),),
        target=Target(ratio=0.35, sql_exact=1),
        default=True,
    ),
    Endpoint(
        name="learner_uncached",
        label="3.1 GET one learner, uncached",
        mode="learner",
        path="/user-progress/{course}/{learner}",
        cache_state="deleted first, each key once",
        pick="walk",
        cache="learner",
        flush=True,
        queries=(("learner", "cold"),),
        target=Target(ratio=0.15, sql_max=2),
        default=True,
    ),
    Endpoint(
        name="update",
        label="3.3 POST update",
        mode="update",
        path="/user-progress/update",
        cache_state="rows of the POST course deleted first",
        # an update of an existing row; "cold" creates one
        queries=(("update", "warm"),),
        target=Target(ratio=0.10, sql_max=4),
        default=True,
        writes=True,
    ),
    Endpoint(
        name="write_then_read",
        label="write-then-read: POST, then its 3.1 (pairs/s)",
        mode="write_then_read",
        path="/user-progress/update, then /user-progress/{postCourse}/{learner}",
        cache_state="the write invalidates the read",
        queries=(("update", "warm"), ("learner", "cold")),
        target=Target(ratio=0.06),
        default=True,
        writes=True,
    ),
    Endpoint(
        name="course_page",
        label="3.2 course page, uncached",
        mode="course_page",
        path="/user-progress/course/{course}/all?page=P&sortBy=S&order=O",
        cache_state="deleted first, each key once",
        pick="walk",
        cache="coursepage",
        flush=True,
        queries=(("course_page", "cold"),),
        target=Target(ratio=0.02),
        default=True,
    ),
    Endpoint(
        name="course_page_cached",
        label="3.2 course page, cached",
        mode="course_page",
        path="/user-progress/course/{course}/all?page=P&sortBy=S&order=O",
        cache_state="filled first",
        keys=20,
        cache="coursepage",
        warm=True,
        queries=(("course_page", "warm"),),
        default=True,
    ),
    Endpoint(
        name="analytics_cached",
        label="3.5 analytics, cached",
        mode="analytics",
        path="/user-progress/course/{course}/analytics",
        cache_state="filled first",
        cache="analytics",
        warm=True,
        queries=(("analytics", "warm"),),
        target=Target(ratio=0.35),
        default=True,
    ),
    Endpoint(
        name="analytics_uncached",
        label="3.5 analytics, uncached (1 conn.)",
        mode="analytics",
        path="/user-progress/course/{course}/analytics",
        cache_state="deleted before each request",
        connections=1,
        queries=(("analytics", "cold"),),
    ),
    Endpoint(
        name="activities_cached",
        label="3.4 activities, cached",
        mode="activities",
        path="/user-progress/{course}/{learner}/activities",
        cache_state="filled first",
        keys=500,
        cache="activities",
        warm=True,
        queries=(("activities", "warm"),),
    ),
    # Ceiling rows (bench/urls.py, never in the app's URLs): the least the unmet rows could cost
    # under the contract, measured in the same run. Not default rows: --endpoints names them.
    Endpoint(
        name="floor_stamp",
        label="ceiling of 3.1 cached: floor + stamp",
        mode="learner",
        path="/bench/floor-stamp/{course}/{learner}",
        request_path="/bench/floor-stamp/{course}/{learner}",
        cache_state="- (no cache read)",
        keys=500,
    ),
    Endpoint(
        name="floor_stamp_body",
        label="ceiling of 3.1 cached: floor + stamp + body",
        mode="learner",
        path="/bench/floor-stamp-body/{course}/{learner}",
        request_path="/bench/floor-stamp-body/{course}/{learner}",
        cache_state="filled first (by the real 3.1)",
        keys=500,
        cache="learner",
        warm=True,
    ),
    Endpoint(
        name="floor_course_stamp",
        label="ceiling of 3.5 cached: floor + course stamp",
        mode="analytics",
        path="/bench/floor-course-stamp/{course}",
        request_path="/bench/floor-course-stamp/{course}",
        cache_state="- (no cache read)",
    ),
    Endpoint(
        name="floor_throttle_call",
        label="ceiling of 3.3 POST: floor + throttle + call",
        mode="update",
        path="/bench/floor-throttle-call",
        request_path="/bench/floor-throttle-call",
        cache_state="rows of the POST course deleted first",
        writes=True,
    ),
    Endpoint(
        name="bulk",
        label="3.6 POST bulk (20 users)",
        mode="bulk",
        path="/user-progress/bulk",
        cache_state="-",
        queries=(("bulk", "warm"),),
    ),
)

BY_NAME: dict[str, Endpoint] = {row.name: row for row in ROWS}
BARE = "bare"
COLD_ANALYTICS = "analytics_uncached"  # sampled one request at a time (bench.load.sample_cold)
# The rows driven by wrk (everything but the reference and the one-at-a-time sampler).
WRK_ROWS = tuple(row.name for row in ROWS if row.name not in (BARE, COLD_ANALYTICS))
DEFAULT_ENDPOINTS = tuple(row.name for row in ROWS if row.default)
ORDER = tuple(row.name for row in ROWS)


def label(name: str) -> str:
    row = BY_NAME.get(name)
    return row.label if row else name
