"""Load generators: wrk for throughput at N connections, a plain HTTP loop for cold latency."""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua" / "bench.lua"


@dataclass
class Run:
    """One wrk run (or one sequential sampling) of one endpoint."""

    endpoint: str
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    seconds: float
    connections: int
    extra: dict = field(default_factory=dict)


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: `apt-get install -y wrk` (Debian), then run the bench again."
        )
    return path


def wrk_version() -> str:
    done = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].strip()


def _wrk_command(*, url, duration, connections, threads) -> list[str]:
    return [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
    ]


def _wrk_env(*, mode, data_file, pick, keys, seed, threads, out_file=None, path=None) -> dict:
    env = {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_DATA": data_file,
        "BENCH_PICK": pick,
        "BENCH_KEYS": str(keys),
        "BENCH_SEED": str(seed),
        "BENCH_THREADS": str(threads),
    }
    if out_file:
        env["BENCH_OUT"] = out_file
    if path:  # a ceiling row: the mode's requests, sent to this bench-only path
        env["BENCH_PATH"] = path
    return env


def warm(*, url, mode, data_file, connections, threads, keys, seed, ready, limit) -> float:
    """Walk the key set with wrk until ready() says the cache holds it (or `limit` seconds),
    then stop wrk. wrk cannot end a run early by itself, so it is stopped from here."""
    command = _wrk_command(url=url, duration=limit, connections=connections, threads=threads)
    env = _wrk_env(
        mode=mode, data_file=data_file, pick="walk", keys=keys, seed=seed, threads=threads
    )
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while process.poll() is None and time.monotonic() - started < limit + 5:
            if ready():
                break
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait()
    return time.monotonic() - started


def run_wrk(
    *,
    endpoint: str,
    url: str,
    mode: str,
    data_file: str,
    duration: float,
    connections: int,
    threads: int,
    pick: str = "random",
    keys: int = 0,
    seed: int = 1,
    out_file: str | None = None,
    path: str | None = None,
) -> Run:
    env = _wrk_env(
        path=path,
        mode=mode,
        data_file=data_file,
        pick=pick,
        keys=keys,
        seed=seed,
        threads=threads,
        out_file=out_file,
    )
    command = _wrk_command(url=url, duration=duration, connections=connections, threads=threads)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    line = next(
        (line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")), None
    )
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    result = json.loads(line.split(" ", 1)[1])
    errors = result["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    if pick == "walk" or mode in ("update", "write_then_read"):
        # wrk's own duration is the whole -d even when a walk ended early: use the window
        # between the first request and the last response, measured in the script.
        answered = result["answered"]
        seconds = result["window_us"] / 1e6 or result["duration_us"] / 1e6
        rps = answered / seconds if seconds else 0.0
        requests = answered
        non2xx = result["non2xx_lua"]
    else:
        seconds = result["duration_us"] / 1e6
        requests = result["requests"]
        rps = requests / seconds if seconds else 0.0
        non2xx = errors["status"]
    latency = result["latency_us"]
    extra = {
        "bytes": result["bytes"],
        "conflicts": result["conflicts"],
        "unparsed": result["unparsed"],
        "triples": result["triples"],
        "sent": result["sent"],
    }
    pair = result.get("pair_latency_us") or {}
    if mode == "write_then_read":
        # a pair's latency (POST sent -> its read answered) is what the row's client waits for;
        # wrk's own figures mix the POSTs and the reads
        extra["request_latency_ms"] = {"p50": latency["p50"] / 1000, "p99": latency["p99"] / 1000}
        extra["pairs_timed"] = pair.get("count", 0)
        if pair.get("count"):
            latency = pair
    return Run(
        endpoint=endpoint,
        rps=rps,
        requests=requests,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        non2xx=non2xx,
        errors=socket_errors,
        seconds=seconds,
        connections=connections,
        extra=extra,
    )


def sample_cold(
    *, endpoint: str, host: str, port: int, paths: list[str], token: str, before_each
) -> Run:
    """Requests one at a time on one keep-alive connection, calling before_each(path) first
    (to drop the cached entry): the latency of a cold read with nothing else running."""
    connection = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    latencies, non2xx = [], 0
    started = time.perf_counter()
    try:
        for path in paths:
            before_each(path)
            t0 = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - t0)
            if not 200 <= response.status < 300:
                non2xx += 1
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Run(
        endpoint=endpoint,
        rps=len(latencies) / sum(latencies) if latencies else 0.0,
        requests=len(latencies),
        p50_ms=1000 * statistics.median(latencies),
        p99_ms=1000 * latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        non2xx=non2xx,
        errors=0,
        seconds=elapsed,
        connections=1,
    )
