"""Flask peer: the classic Python production stack, served by gunicorn (see gunicorn_conf.py).

SQLAlchemy 2 Core on psycopg 3 with the engine's default pool (5 per worker process, 10 in all as
the service's DB_MAX_CONNECTIONS), JSON access logs and multiprocess Prometheus metrics (common.py).
"""

import os
import time

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import create_engine

import common

app = Flask(__name__)
engine = create_engine(os.environ["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1))
log = common.json_logger("flask-peer")


@app.before_request
def start():
    g.started = time.perf_counter()
    g.request_id = common.request_id(request.headers.get("X-Request-ID"))


@app.after_request
def finish(response):
    route = request.url_rule.rule if request.url_rule else "unmatched"
    common.access(log, g.request_id, request.method, route, request.path, response.status_code,
                  time.perf_counter() - g.started, request.user_agent.string, request.remote_addr)
    response.headers["X-Request-ID"] = g.request_id
    return response


@app.get("/health")
def health():
    return jsonify(status="ok", version=common.VERSION)


@app.get("/api/users")
def list_users():
    page = common.parse_page(request.args.get("limit"), request.args.get("cursor"))
    if page is None:
        return jsonify(title="Bad Request", status=400), 400
    limit, cursor = page
    with engine.connect() as conn:
        rows = conn.execute(common.page_query(limit, cursor)).all()
    return jsonify(common.page_body(rows, limit))


@app.get("/metrics")
def metrics():
    return Response(common.metrics_text(), mimetype="text/plain; version=0.0.4")
