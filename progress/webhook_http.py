"""One webhook POST, made safely (contract section 6).

- Only http(s) URLs. The host name is resolved once; every address it resolves to must be a
  public one (no loopback, private, link-local, shared, reserved or multicast address) unless
  WEBHOOK_ALLOW_PRIVATE_NETWORKS is on, and the connection goes to the address that was checked:
  no second DNS lookup that a rebinding name could answer differently. TLS still verifies the
  certificate against the host name (SNI and hostname check use the name, not the address).
- No redirects (a 3xx is a failed attempt), no retries inside an attempt.
- WEBHOOK_TIMEOUT bounds the whole exchange up to the response's status (urllib3's `total`),
  and each read of its body; at most 64 KB of the body is read, the rest never.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 500


class Refused(Exception):
    """The URL, or an address its host resolves to, may not be called."""


@dataclass(frozen=True)
class Result:
    status: int | None  # None: no HTTP answer (refused, unreachable, timed out)
    error: str  # "" when a 2xx came back
    seconds: float
    body_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def address_problem(address: str) -> str | None:
    """Why an IP address may not be called ("loopback", ...), or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return name
    return None if ip.is_global else "not public"


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """What is wrong with a subscription URL, checked when it is made: the scheme, the host,
    and a literal address in a refused range. Names are resolved at each delivery."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "Enter a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Only http and https URLs are allowed."
    host = parts.hostname
    if not host:
        return "The URL has no host."
    if allow_private:
        return None
    try:
        problem = address_problem(host)
    except ValueError:  # a name, not an address
        return None
    if problem:
        return (
            f"The address {host} is {problem}; only public addresses are allowed "
            "(WEBHOOK_ALLOW_PRIVATE_NETWORKS=1 allows others)."
        )
    return None


def resolve(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to, after checking every address the name resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise Refused(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise Refused(f"{host} resolves to {address}, which is {problem}")
    return addresses[0]


def post(url: str, body: bytes, headers: dict, *, timeout: float, allow_private: bool) -> Result:
    """POST `body` to `url`; never raises for what the receiver or the network does."""
    started = time.monotonic()
    try:
        problem = url_problem(url, allow_private=allow_private)
        if problem:
            raise Refused(problem)
        parts = urlsplit(url)
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        address = resolve(parts.hostname, port, allow_private=allow_private)
        host_header = parts.netloc.rsplit("@", 1)[-1]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        pool_options = {"timeout": urllib3.Timeout(total=timeout), "retries": False, "maxsize": 1}
        if https:
            pool = urllib3.HTTPSConnectionPool(
                address,
                port,
                cert_reqs="CERT_REQUIRED",
                server_hostname=parts.hostname,
                assert_hostname=parts.hostname,
                **pool_options,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, **pool_options)
        try:
            response = pool.urlopen(
                "POST",
                path,
                body=body,
                headers={**headers, "Host": host_header},
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
            )
            excerpt = _read_capped(response, deadline=started + timeout)
            response.close()
        finally:
            pool.close()
    except Refused as exc:
        return Result(None, f"refused: {exc}", time.monotonic() - started)
    except (HTTPError, OSError) as exc:
        return Result(None, _describe(exc), time.monotonic() - started)
    seconds = time.monotonic() - started
    status = response.status
    if 200 <= status < 300:
        return Result(status, "", seconds, excerpt)
    reason = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return Result(status, reason, seconds, excerpt)


def _read_capped(response, *, deadline: float) -> str:
    """At most MAX_RESPONSE_BYTES of the body, and no longer than the deadline (the status
    has already arrived in time; the body only serves the admin's diagnostics)."""
    data = b""
    try:
        while len(data) < MAX_RESPONSE_BYTES and time.monotonic() < deadline:
            chunk = response.read(min(8192, MAX_RESPONSE_BYTES - len(data)))
            if not chunk:
                break
            data += chunk
    except (HTTPError, OSError):
        pass
    return data[:EXCERPT_CHARS].decode("utf-8", "replace")


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return f"timed out ({name})"
    text = str(exc).strip()
    return f"{name}: {text}"[:EXCERPT_CHARS] if text else name
