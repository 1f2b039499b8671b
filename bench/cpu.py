"""Where a wrk run's CPU went: CPU per request of each group of processes (issue 17).

On the bench's machine every process of a run shares the same cores, so at 100 connections a
row's requests/s is bound by the CPU that all of them spend per request: the gunicorn workers
(the app's Python), PostgreSQL's backends, Redis, and wrk itself. Reading each group's CPU time
just before and just after a wrk run, divided by the requests answered, says where that time
goes, and how many times the bare view's a row costs.

The method (robust to processes that come and go during a run):
- A process's CPU is utime + stime from /proc/PID/stat, keyed by (pid, start time) so that a
  reused pid is a new process. Its share of the run is its reading after minus its reading
  before (0 before when it started during the run).
- A process that ends during the run is seen through its parent: a parent's cutime + cstime
  (fields 16-17) grow by the whole CPU of every child it reaps, so a group whose parent is read
  too (the gunicorn master, the postmaster) loses nothing; only a child that ends between the
  two readings of the same snapshot can be missed or counted twice (one reading apart).
- PostgreSQL: the server is shared with other work (other databases, other engineers' tests).
  Its processes are split by their process title (`postgres: ... USER DATABASE ...`): the
  bench database's backends and the server's own processes (postmaster, WAL writer,
  checkpointer, background writer, autovacuum: part of them is the run's, e.g. WAL written for
  its writes) are counted as the row's ("postgres"); other databases' backends and the backends
  the postmaster reaped during the run (the bench's gunicorn keeps its connections, so those
  are other work) are reported apart as "postgres, other", not in the total.
- Redis: the redis-server process(es); the server is shared, so other work on it is counted.
- wrk: getrusage(RUSAGE_CHILDREN) of this process around the wrk subprocess (it is the only
  child reaped in between).
- The machine: busy jiffies of /proc/stat; "other" is what the machine spent beyond the
  groups above (other engineers' work, the kernel's interrupts), a measure of the noise.
"""

import contextlib
import os
import re
import resource
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
# The groups of the table, in order; TOTAL_GROUPS add up to the row's own CPU.
GROUPS = ("worker", "postgres", "redis", "wrk")
TOTAL_GROUPS = GROUPS
APART = ("postgres_other", "other")
# Part of "worker": its user-space time alone (the app's Python and the C code it calls;
# the rest of "worker" is the kernel's work on its sockets). Not added to the total again.
WORKER_USER = "worker_user"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    start: int  # jiffies after boot: with the pid, a process's identity
    ticks: int  # utime + stime
    child_ticks: int  # cutime + cstime: the reaped children's CPU
    user_ticks: int = 0  # utime
    child_user_ticks: int = 0  # cutime


def read_proc(pid: int) -> Proc | None:
    """One process's /proc/PID/stat, or None when it is gone or unreadable."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
        head, _, rest = text.rpartition(")")
        comm = head.split("(", 1)[1]
        fields = rest.split()
        # fields[0] is the state (field 3 of stat(5)): field n is fields[n - 3]
        return Proc(
            pid=pid,
            ppid=int(fields[1]),
            comm=comm,
            start=int(fields[19]),
            ticks=int(fields[11]) + int(fields[12]),
            child_ticks=int(fields[13]) + int(fields[14]),
            user_ticks=int(fields[11]),
            child_user_ticks=int(fields[13]),
        )
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (
            (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    return ""


def all_procs() -> list[Proc]:
    procs = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                procs.append(proc)
    return procs


def machine_busy_ticks() -> int:
    """Busy jiffies of all CPUs since boot (/proc/stat: all but idle and iowait)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = (PROC / "stat").read_text().splitlines()[0].split()
        values = [int(v) for v in first[1:]]
        # user nice system idle iowait irq softirq steal (guest is inside user)
        return sum(values[:8]) - values[3] - values[4]
    return 0


@dataclass
class Snapshot:
    """The CPU time of every process of every group at one moment, in clock ticks."""

    per_process: dict[str, dict[tuple[int, int], int]] = field(default_factory=dict)
    reaped: dict[str, int] = field(default_factory=dict)  # parents' cutime + cstime, per group
    wrk: int = 0
    machine: int = 0


def _is_postgres(proc: Proc) -> bool:
    return proc.comm == "postgres" or proc.comm.startswith("postgres:")


_CLIENT = re.compile(r"^(\[local\]|\S+\(\d+\))$")  # a backend's client: host(port) or [local]


def _postgres_is_ours(pid: int, postmaster: int, database: str) -> bool:
    """A client backend's title is `postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE`: one
    of another database is someone else's; the server's own processes count for everyone."""
    if pid == postmaster:
        return True
    title = cmdline(pid).split()
    if any(_CLIENT.match(token) for token in title):
        return database in title
    return True  # checkpointer, WAL writer, background writer, autovacuum, ...


def snapshot(*, gunicorn_master: int | None, database: str) -> Snapshot:
    """Read every group once, in one pass over /proc, which lists processes by increasing pid:
    a parent (the postmaster, the gunicorn master: started first) is read before its children,
    so a child that ends in between is missed rather than counted twice."""
    procs = all_procs()
    snap = Snapshot(machine=machine_busy_ticks())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    snap.wrk = round((children.ru_utime + children.ru_stime) * TICKS)
    groups: dict[str, dict[tuple[int, int], int]] = {
        name: {} for name in (*GROUPS, "postgres_other", WORKER_USER) if name != "wrk"
    }
    postgres = [p for p in procs if _is_postgres(p)]
    pids = {p.pid for p in postgres}
    postmasters = [p for p in postgres if p.ppid not in pids]
    postmaster = postmasters[0].pid if postmasters else -1
    snap.reaped["postgres_other"] = sum(p.child_ticks for p in postmasters)
    for proc in postgres:
        ours = _postgres_is_ours(proc.pid, postmaster, database)
        groups["postgres" if ours else "postgres_other"][(proc.pid, proc.start)] = proc.ticks
    if gunicorn_master is not None:
        master = next((p for p in procs if p.pid == gunicorn_master), None)
        if master is not None:
            snap.reaped["worker"] = master.child_ticks
            snap.reaped[WORKER_USER] = master.child_user_ticks
            for proc in procs:
                if proc.pid == gunicorn_master or proc.ppid == gunicorn_master:
                    groups["worker"][(proc.pid, proc.start)] = proc.ticks
                    groups[WORKER_USER][(proc.pid, proc.start)] = proc.user_ticks
    for proc in procs:
        if proc.comm == "redis-server" or proc.comm.startswith("redis-server"):
            groups["redis"][(proc.pid, proc.start)] = proc.ticks
    snap.per_process = groups
    return snap


def group_ticks(before: Snapshot, after: Snapshot, group: str) -> int:
    """The group's CPU between the two snapshots: each process's growth (its whole reading when
    it started in between), plus what its parents reaped in between."""
    old = before.per_process.get(group, {})
    total = 0
    for key, ticks in after.per_process.get(group, {}).items():
        total += max(0, ticks - old.get(key, 0))
    total += max(0, after.reaped.get(group, 0) - before.reaped.get(group, 0))
    return total


def split(before: Snapshot, after: Snapshot, requests: int) -> dict:
    """Milliseconds of CPU per request by group (GROUPS add up to "total"; "postgres_other"
    and "other" are apart), and the raw seconds, for a run that answered `requests`."""
    seconds = {group: group_ticks(before, after, group) / TICKS for group in GROUPS[:-1]}
    seconds["wrk"] = max(0, after.wrk - before.wrk) / TICKS
    seconds["postgres_other"] = group_ticks(before, after, "postgres_other") / TICKS
    seconds[WORKER_USER] = group_ticks(before, after, WORKER_USER) / TICKS
    machine = max(0, after.machine - before.machine) / TICKS
    seconds["machine"] = machine
    seconds["other"] = max(0.0, machine - sum(seconds[g] for g in (*GROUPS, "postgres_other")))
    return per_request(seconds, requests)


def per_request(seconds: dict, requests: int) -> dict:
    """{"seconds": ..., "ms": ms per request of each group and of the total} (ms None when no
    request was answered)."""
    seconds = {k: round(v, 3) for k, v in seconds.items()}
    total = sum(seconds.get(g, 0.0) for g in TOTAL_GROUPS)
    ms = None
    if requests:
        ms = {g: 1000 * seconds.get(g, 0.0) / requests for g in (*GROUPS, *APART, WORKER_USER)}
        ms["total"] = 1000 * total / requests
    return {"requests": requests, "seconds": {**seconds, "total": round(total, 3)}, "ms": ms}
