"""Django's PostgreSQL backend with a cheaper per-request health check.

With CONN_HEALTH_CHECKS, Django checks a persistent connection before the first statement of
every request by sending `SELECT 1`: one more round trip per request, and server work, on every
cached read and every write. A connection that PostgreSQL closed (a restart, an administrator's
pg_terminate_backend, an idle timeout, a crashed backend) has already told the client so: the
server sends its FATAL message and closes the socket, so an idle connection's socket turns
readable. This check asks the socket instead of the server: an idle, healthy connection has
nothing to read. When anything arrived, or psycopg already knows the connection is gone, the
connection is closed and Django opens a new one, as before.

After an error in the request (`errors_occurred`), Django's own `SELECT 1` runs as before: the
connection's state after an arbitrary error is worth one round trip.

`server_bound_cursor()`: a cursor whose parameters PostgreSQL binds (below).
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    _server_binding = False

    def server_bound_cursor(self):
        """cursor(), but the parameters travel apart from the statement and PostgreSQL binds
        them (psycopg's Cursor), where Django's default ClientCursor quotes every value into the
        SQL text in Python for the server to parse back. For a hot statement with a fixed text,
        cp_record_progress's call: less CPU on both sides (bench/notes.md, issue 17, "the POST
        (third pass)"). The statement's SQL must cast its placeholders (`%s::integer`), since
        the server sees typed parameters, not literals. Not prepared: Django leaves
        prepare_threshold off, so connection poolers keep working."""
        self._server_binding = True
        try:
            return self.cursor()
        finally:
            self._server_binding = False

    def create_cursor(self, name=None):
        if name or not self._server_binding:
            return super().create_cursor(name)
        client_cursor = self.connection.cursor_factory
        self.connection.cursor_factory = base.ServerBindingCursor
        try:
            return super().create_cursor(name)
        finally:
            self.connection.cursor_factory = client_cursor

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if self.errors_occurred:
            return super().is_usable()
        pgconn = connection.pgconn
        if (
            pgconn.status != pq.ConnStatus.OK
            or pgconn.transaction_status != pq.TransactionStatus.IDLE
        ):
            return False
        try:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
