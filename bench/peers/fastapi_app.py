"""FastAPI peer: the asyncio stack, served by uvicorn with uvloop and httptools and two worker
processes (as the service's WORKERS). SQLAlchemy 2 asyncio on asyncpg with the default pool (5 per
worker), JSON access logs and multiprocess Prometheus metrics (common.py) in an HTTP middleware.
"""

import os
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import create_async_engine

import common

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
engine = create_async_engine(os.environ["DATABASE_URL"].replace("postgres://", "postgresql+asyncpg://", 1))
log = common.json_logger("fastapi-peer")


@app.middleware("http")
async def access_log(request: Request, call_next):
    started = time.perf_counter()
    rid = common.request_id(request.headers.get("x-request-id"))
    response = await call_next(request)
    route = request.scope.get("route")
    client = request.client.host if request.client else None
    common.access(log, rid, request.method, route.path if route else "unmatched", request.url.path,
                  response.status_code, time.perf_counter() - started, request.headers.get("user-agent"),
                  client)
    response.headers["X-Request-ID"] = rid
    return response


@app.get("/health")
async def health():
    return {"status": "ok", "version": common.VERSION}


@app.get("/api/users")
async def list_users(limit: str | None = None, cursor: str | None = None):
    page = common.parse_page(limit, cursor)
    if page is None:
        return JSONResponse({"title": "Bad Request", "status": 400}, status_code=400)
    limit, cursor = page
    async with engine.connect() as conn:
        rows = (await conn.execute(common.page_query(limit, cursor))).all()
    return common.page_body(rows, limit)


@app.get("/metrics")
async def metrics():
    return Response(common.metrics_text(), media_type="text/plain; version=0.0.4")
