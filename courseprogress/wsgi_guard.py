"""What must be settled before Django builds a request: WSGI middleware in config.wsgi.

- A `charset` in Content-Type that Python knows but that is not a text encoding (rot13, zlib,
  base64, hex...) made Django raise LookupError while decoding the query string, before any
  middleware could answer: gunicorn's HTML 500. It is a 400 here: JSON, or HTML under /admin/.
  A charset Python does not know at all Django already ignores (it decodes as UTF-8).
- A chunked body (Transfer-Encoding: chunked, no Content-Length) was read by Django as empty.
  It is read here, at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes of it (more is a 413, as for a
  body with a length), and handed on with its length.
"""

import codecs
import html
import io

from django.conf import settings
from django.utils.http import parse_header_parameters

from courseprogress.exceptions import failure


def _json(status: int, message: str | None = None) -> tuple[str, bytes]:
    from courseprogress.renderers import dumps

    return "application/json", dumps(failure(status, message))


def _html(status: int, message: str) -> tuple[str, bytes]:
    title = {400: "Bad Request", 413: "Request Entity Too Large"}[status]
    body = f"<!doctype html>\n<title>{title} ({status})</title>\n<h1>{title} ({status})</h1>\n"
    return "text/html; charset=utf-8", (body + f"<p>{html.escape(message)}</p>\n").encode()


REASONS = {400: "400 Bad Request", 413: "413 Content Too Large"}


def charset_problem(environ) -> str | None:
    """Why the Content-Type's charset cannot decode text, or None when it can (or is absent)."""
    _, params = parse_header_parameters(environ.get("CONTENT_TYPE", ""))
    charset = params.get("charset")
    if charset is None:
        return None
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        return None  # unknown: Django ignores it and decodes as UTF-8
    if not getattr(codec, "_is_text_encoding", True):
        return f"The charset {charset!r} is not a text encoding."
    return None


def is_chunked(environ) -> bool:
    encoding = environ.get("HTTP_TRANSFER_ENCODING", "")
    return "chunked" in encoding.lower() and not environ.get("CONTENT_LENGTH")


class RequestGuard:
    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        problem = charset_problem(environ)
        if problem:
            return self.refuse(environ, start_response, 400, problem)
        if is_chunked(environ):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            body = environ["wsgi.input"].read() if limit is None else None
            if body is None:
                body = environ["wsgi.input"].read(limit + 1)
                if len(body) > limit:
                    return self.refuse(environ, start_response, 413, "Request body too large")
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        try:
            return self.application(environ, start_response)
        except LookupError:  # any other codec trouble while Django builds the request
            return self.refuse(environ, start_response, 400, "The request cannot be decoded.")

    @staticmethod
    def refuse(environ, start_response, status: int, message: str):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/admin/"):
            content_type, body = _html(status, message)
        else:
            content_type, body = _json(status, message)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if path.startswith(tuple(settings.API_PATH_PREFIXES)):
            headers.append(("Cache-Control", "private, no-store"))
        start_response(REASONS[status], headers)
        return [body]
