"""Cache misses computed on PostgreSQL streaming replicas, never older than their stamp.

A cached read reads its stamp on the primary, and with it the primary's WAL position
(`pg_current_wal_lsn()`, in the same statement: progress/read_cache.py). Every write the stamp
reflects was committed, so its WAL is at or before that position. A replica that has replayed
the WAL up to there (`pg_last_wal_replay_lsn()`) therefore sees every such write: what it
computes is never older than the stamp it is stored under, and a read after a write, by
anyone, sees the write. A replica that is behind is waited for at most REPLICA_MAX_WAIT_MS,
then the primary computes. A replica that is down, paused or far behind only sends the reads
back to the primary; nothing fails.

One call opts a read in (the event feed, any selector):

    value = replicas.compute_at(position, lambda: compute())

where `position` is the WAL position read with the stamp (None: compute on the primary). The
computation runs unchanged: ReplicaRouter sends its ORM reads to the chosen replica for the
duration of the call, so selectors need no `.using()`. `database_at(position)` is the same as
a context manager, for code that prefers to pass the alias on itself.

Precondition (docs/scaling.md): writers commit with `synchronous_commit` on (PostgreSQL's
default) or `local`/`remote_*`; with `off` a commit may be visible before its WAL is written.
"""

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

logger = logging.getLogger("courseprogress.replicas")

T = TypeVar("T")

# The replica that ORM reads of the current computation go to (None: the router has no say).
_reading_on: ContextVar[str | None] = ContextVar("courseprogress_replica", default=None)

# Per process: replicas that failed are skipped until the time given; replicas that did not
# catch up in time are still asked, but not waited for, until the time given.
_down_until: dict[str, float] = {}
_slow_until: dict[str, float] = {}
_lock = threading.Lock()
_turn = itertools.count()

POSITION_SQL = "SELECT pg_last_wal_replay_lsn()::text"


class ReplicaRouter:
    """Reads inside compute_at()/database_at() go to the chosen replica; everything else, and
    every write, to the primary. Installed only when DATABASE_REPLICA_URLS is set."""

    def db_for_read(self, model, **hints):
        return _reading_on.get()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, seen through several servers

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS  # replicas get the schema from the primary's WAL


def enabled() -> bool:
    return bool(aliases())


def reading_on() -> str:
    """The database that ORM reads go to here and now."""
    return _reading_on.get() or DEFAULT_DB_ALIAS


def aliases() -> list[str]:
    return list(getattr(settings, "REPLICA_DATABASES", None) or [])


def lsn_value(lsn: str) -> int:
    """'16/B374D848' as a number, for comparisons."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def replay_position(alias: str) -> int | None:
    """How far the replica has replayed the primary's WAL; None when it is not replaying
    (promoted, or not a replica at all). Raises when it cannot be asked."""
    with connections[alias].cursor() as cursor:
        cursor.execute(POSITION_SQL)
        (position,) = cursor.fetchone()
    return lsn_value(position) if position else None


def _mark_down(alias: str, error: Exception | str) -> None:
    logger.warning("Replica %s is unavailable: %s", alias, error)
    with _lock:
        _down_until[alias] = time.monotonic() + settings.REPLICA_RETRY_SECONDS
    with contextlib.suppress(Exception):
        connections[alias].close()


def _candidates() -> list[str]:
    """The replicas not known to be down, starting with a different one each time."""
    now = time.monotonic()
    up = [alias for alias in aliases() if _down_until.get(alias, 0) <= now]
    if len(up) > 1:
        start = next(_turn) % len(up)
        up = up[start:] + up[:start]
    return up


def caught_up_replica(position: str, *, wait_ms: int | None = None) -> str | None:
    """A replica that has replayed the WAL up to `position`, waiting for one at most
    `wait_ms` (REPLICA_MAX_WAIT_MS); None when none did (the primary computes)."""
    target = lsn_value(position)
    aliases = _candidates()
    if wait_ms is None:
        wait_ms = settings.REPLICA_MAX_WAIT_MS
    now = time.monotonic()
    if all(_slow_until.get(alias, 0) > now for alias in aliases):
        wait_ms = 0  # each of them recently failed to catch up in time: ask once, do not wait
    deadline = now + wait_ms / 1000
    pause = 0.002
    while aliases:
        for alias in list(aliases):
            try:
                replayed = replay_position(alias)
            except Exception as error:  # whatever it is, a replica never fails a request
                _mark_down(alias, error)
                aliases.remove(alias)
                continue
            if replayed is None:  # promoted, or not a replica: it will never catch up
                _mark_down(alias, "it is not replaying WAL")
                aliases.remove(alias)
            elif replayed >= target:
                _slow_until.pop(alias, None)  # caught up again: worth waiting for next time
                return alias
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(pause, remaining))
        pause *= 2
    with _lock:
        for alias in aliases:
            _slow_until[alias] = time.monotonic() + settings.REPLICA_RETRY_SECONDS
    return None


@contextlib.contextmanager
def database_at(position: str | None) -> Iterator[str]:
    """The alias of a database that has every write up to `position` (a replica when one is
    caught up, else the primary); the ORM reads of the block go there."""
    # Inside a transaction on the primary, its own uncommitted writes are visible there only.
    in_transaction = connections[DEFAULT_DB_ALIAS].in_atomic_block
    alias = caught_up_replica(position) if position and enabled() and not in_transaction else None
    if alias is None:
        yield DEFAULT_DB_ALIAS
        return
    token = _reading_on.set(alias)
    try:
        yield alias
    finally:
        _reading_on.reset(token)


def primary_position() -> str:
    """The primary's WAL position now, for a read whose freshness bound was taken in an earlier
    statement (the event feed's horizon): every write committed before it is at or below it."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return cursor.fetchone()[0]


def compute_at(position: str | None, compute: Callable[[], T]) -> T:
    """compute()'s result, computed on a replica that has replayed the WAL up to `position`
    when there is one, else on the primary. A replica that fails mid-way (it went down, or
    cancelled the query in a conflict with recovery) is set aside and the primary computes."""
    with database_at(position) as alias:
        if alias == DEFAULT_DB_ALIAS:
            return compute()
        try:
            return compute()
        except (OperationalError, InterfaceError) as error:
            _mark_down(alias, error)
    return compute()  # outside the block: on the primary


def health() -> dict[str, str]:
    """Each replica's state for /healthz: "ok", or "lagging" (not caught up with the primary's
    current WAL position within REPLICA_MAX_WAIT_MS), "paused" (replay paused), "not_replaying"
    (not in recovery: promoted, or not a replica) or "unavailable"."""
    target = lsn_value(primary_position())
    states = {}
    for alias in aliases():
        try:
            states[alias] = _state(alias, target)
        except Exception as error:
            _mark_down(alias, error)
            states[alias] = "unavailable"
    return states


def _state(alias: str, target: int) -> str:
    deadline = time.monotonic() + settings.REPLICA_MAX_WAIT_MS / 1000
    with connections[alias].cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT pg_last_wal_replay_lsn()::text,"
                " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END"
            )
            replayed, paused = cursor.fetchone()
            if replayed is None:
                return "not_replaying"
            if lsn_value(replayed) >= target:
                with _lock:
                    _down_until.pop(alias, None)
                    _slow_until.pop(alias, None)
                return "ok"
            if paused:
                return "paused"
            if time.monotonic() >= deadline:
                return "lagging"
            time.sleep(0.005)
