"""The server under test: gunicorn with config/gunicorn.conf.py, production settings."""

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, *, env: dict, port: int, log_path: Path, workers: int = 1):
        self.env = env
        self.workers = workers
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        if _port_open(self.port):
            raise SystemExit(f"port {self.port} is in use: choose another with --port")
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        # --no-control-socket: gunicorn 27's control socket has one default path per user,
        # which a second server (a developer's `make run`) would otherwise fight over.
        command = [str(gunicorn), "-c", "config/gunicorn.conf.py", "--no-control-socket"]
        if self.env.get("BENCH_WSGI"):  # --variant: the app with the variant's code changes
            command.append(self.env["BENCH_WSGI"])
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"gunicorn exited with {self.process.returncode}; see {self.log_path}"
                )
            # Every worker up, not just the first one to answer.
            if _get_ok(self.port, "/bench/bare") and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn did not answer on port {self.port}; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        with contextlib.suppress(OSError):
            return [int(p) for p in children.read_text().split()]
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    pids.append(int(stat.parent.name))
        return pids

    def worker_rss_mb(self) -> list[float]:
        """Resident set size of each worker, from /proc/PID/status (VmRSS)."""
        sizes = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def cpu_seconds(self) -> float:
        """CPU time the workers have used so far (utime + stime from /proc/PID/stat)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.worker_pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / ticks

    def settle(self, *, idle: float = 0.05, window: float = 0.5, limit: float = 90.0) -> float:
        """Wait until the workers are idle: requests that wrk abandoned when it stopped are
        still queued in the workers, and would otherwise run during the next measurement.
        Returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = self.cpu_seconds()
            time.sleep(window)
            if self.cpu_seconds() - before < idle * window * 2:
                break
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the master stops its workers gracefully
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        self.log.close()


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get_ok(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path)
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False
