"""What both peer stacks share, so they differ only in their framework and server.

Each is held to what devsecops-app does per request: one JSON access-log line on stdout (with a
request id, method, route, path, status, duration, user agent and client address), a request counter
and a latency histogram by route in Prometheus format, and the same keyset-paginated SELECT on the
same `users` table. Metrics use prometheus_client's multiprocess mode: each server runs two worker
processes (as many as the service's workers), and PROMETHEUS_MULTIPROC_DIR must be set.
"""

import logging
import sys
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, select

VERSION = "0.1.0"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String),
    Column("email", String),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
DURATION = Histogram("http_request_duration_seconds", "HTTP request duration", ["method", "endpoint"])


def json_logger(name):
    """A logger writing one JSON object per line to stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter("{asctime}{levelname}{message}", style="{",
                                       rename_fields={"asctime": "timestamp", "levelname": "level"}))
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def request_id(header):
    """The client's X-Request-ID when it is plain and short, else a new one (as the service does)."""
    if header and len(header) <= 128 and all(c.isalnum() or c in "._:-" for c in header):
        return header
    return uuid.uuid4().hex


def access(log, rid, method, route, path, status, seconds, user_agent, client):
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(method, route).observe(seconds)
    log.info("request completed", extra={
        "event": "access", "request_id": rid, "method": method, "route": route, "path": path[:256],
        "status": status, "duration_ms": seconds * 1000, "user_agent": user_agent, "client_address": client,
    })


def parse_page(limit, cursor):
    """(limit, cursor) from query strings, or None when either is invalid."""
    try:
        limit = DEFAULT_LIMIT if limit is None else int(limit)
        cursor = 0 if cursor is None else int(cursor)
    except ValueError:
        return None
    if not 1 <= limit <= MAX_LIMIT or cursor < 0:
        return None
    return limit, cursor


def page_query(limit, cursor):
    return select(users).where(users.c.id > cursor).order_by(users.c.id).limit(limit + 1)


def page_body(rows, limit):
    items = [{"id": r.id, "name": r.name, "email": r.email, "created_at": r.created_at.isoformat(),
              "updated_at": r.updated_at.isoformat()} for r in rows[:limit]]
    body = {"items": items, "limit": limit}
    if len(rows) > limit:
        body["next_cursor"] = items[-1]["id"]
    return body


def metrics_text():
    from prometheus_client import generate_latest
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)
