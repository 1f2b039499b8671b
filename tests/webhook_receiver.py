"""A real HTTP receiver for the webhook tests: http.server in a thread on a free port of
127.0.0.1. It records every request and answers each one as its plan says."""

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = "hang"  # read the request, then answer nothing until the test ends
ENDLESS = "endless"  # 200, then a body that never ends (until the client goes away)


@dataclass
class Received:
    path: str
    headers: dict
    body: str

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self):
        self.requests: list[Received] = []
        self.plan: list = []  # one answer per request, in order; then 200
        self.released = threading.Event()
        self.got_request = threading.Condition()
        self.endless_outcome = None
        self.endless_bytes = 0
        self.endless_done = threading.Event()
        self.delay = 0.0  # seconds before each answer
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                with receiver.got_request:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    answer = receiver.plan.pop(0) if receiver.plan else 200
                    receiver.got_request.notify_all()
                if receiver.delay:
                    time.sleep(receiver.delay)
                if answer == HANG:
                    receiver.released.wait(60)
                    self.close_connection = True
                    return
                if answer == ENDLESS:
                    self._endless()
                    return
                payload = b"ok" if answer < 300 else b"no thanks"
                self.send_response(answer)
                if 300 <= answer < 400:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/redirected")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _endless(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    while receiver.endless_bytes < 50 * 1024 * 1024:
                        self.wfile.write(chunk)
                        receiver.endless_bytes += len(chunk)
                    receiver.endless_outcome = "sent it all"
                except OSError:
                    receiver.endless_outcome = "client went away"
                finally:
                    receiver.endless_done.set()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default) per test.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?src=courseprogress"

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        with self.got_request:
            return self.got_request.wait_for(lambda: len(self.requests) >= count, timeout)

    def ids(self) -> list[str]:
        return [request.headers["webhook-id"] for request in self.requests]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def running_receiver():
    with Receiver() as receiver:
        yield receiver
