"""gunicorn as commonly run in production for a database-backed Flask app: preforked workers (as
many as the service's WORKERS), threads for concurrent requests while one waits on the database,
keep-alive for the load balancer's connections, the app's own JSON access log instead of gunicorn's.
"""

import os

from prometheus_client import multiprocess

bind = f"127.0.0.1:{os.environ['PORT']}"
workers = int(os.environ.get("WORKERS", "2"))
worker_class = "gthread"
threads = 4
keepalive = 30
accesslog = None
preload_app = False


def child_exit(server, worker):
    # prometheus_client multiprocess mode: a dead worker's live gauges are dropped.
    multiprocess.mark_process_dead(worker.pid)
