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
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
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
