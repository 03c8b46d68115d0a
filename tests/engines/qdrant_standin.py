"""A TEST DOUBLE for the Qdrant server: the part of Qdrant's REST API that ``QdrantVectors.server``
calls, answered by qdrant-client's local mode in this one process.

Why a double: Qdrant's server cannot be built from the registries this project reaches (every
release needs git forks and a newer Rust; see /work/shared/ENGINES.md), yet the compose stack's api,
embedding worker and feature store all reach vectors at ``qdrant:6333``. This process lets the wired
stack run with the compose file's ``FEEDLAB_VECTOR_URL`` unchanged; it proves nothing about Qdrant
itself (the vector contract suite's server parameter stays skipped for that).

    python -m tests.engines.qdrant_standin --port 6333
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from qdrant_client import QdrantClient, models


def create_app() -> FastAPI:
    client = QdrantClient(":memory:")
    lock = threading.Lock()  # local mode is not made for concurrent callers
    app = FastAPI()

    def ok(result: Any) -> JSONResponse:
        if hasattr(result, "model_dump"):
            result = result.model_dump(mode="json")
        elif isinstance(result, list):
            result = [r.model_dump(mode="json") if hasattr(r, "model_dump") else r for r in result]
        return JSONResponse({"result": result, "status": "ok", "time": 0.0})

    def missing(name: str) -> JSONResponse:
        return JSONResponse({"status": {"error": f"Not found: Collection `{name}` doesn't exist!"}}, 404)

    done = models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)

    @app.get("/healthz")
    def healthz() -> str:
        return "healthz check passed"

    @app.get("/collections/{name}/exists")
    def exists(name: str) -> JSONResponse:
        with lock:
            return ok({"exists": client.collection_exists(name)})

    @app.put("/collections/{name}")
    async def create(name: str, request: Request) -> JSONResponse:
        body = models.CreateCollection.model_validate(await request.json())
        with lock:
            if client.collection_exists(name):
                return JSONResponse({"status": {"error": f"Collection `{name}` already exists!"}}, 409)
            client.create_collection(name, vectors_config=body.vectors)
        return ok(True)

    @app.put("/collections/{name}/index")
    def index(name: str) -> JSONResponse:
        with lock:  # local mode has no payload indexes: accepting the request is all it can do
            return ok(done) if client.collection_exists(name) else missing(name)

    @app.put("/collections/{name}/points")
    async def upsert(name: str, request: Request) -> JSONResponse:
        body = models.PointsList.model_validate(await request.json())
        with lock:
            if not client.collection_exists(name):
                return missing(name)
            client.upsert(name, body.points)
        return ok(done)

    @app.post("/collections/{name}/points/query")
    async def query(name: str, request: Request) -> JSONResponse:
        body = models.QueryRequest.model_validate(await request.json())
        with lock:
            if not client.collection_exists(name):
                return missing(name)
            result = client.query_points(
                name, query=body.query, query_filter=body.filter, limit=body.limit or 10,
                with_payload=body.with_payload if body.with_payload is not None else False,
            )  # fmt: skip
        return ok(result)

    @app.post("/collections/{name}/points")
    async def retrieve(name: str, request: Request) -> JSONResponse:
        body = models.PointRequest.model_validate(await request.json())
        with lock:
            if not client.collection_exists(name):
                return missing(name)
            records = client.retrieve(
                name, ids=body.ids, with_payload=body.with_payload if body.with_payload is not None else True,
                with_vectors=body.with_vector if body.with_vector is not None else False,
            )  # fmt: skip
        return ok(records)

    @app.post("/collections/{name}/points/count")
    async def count(name: str, request: Request) -> JSONResponse:
        body = models.CountRequest.model_validate(await request.json())
        with lock:
            if not client.collection_exists(name):
                return missing(name)
            return ok(client.count(name, count_filter=body.filter, exact=True))

    @app.post("/collections/{name}/points/scroll")
    async def scroll(name: str, request: Request) -> JSONResponse:
        body = models.ScrollRequest.model_validate(await request.json())
        with lock:
            if not client.collection_exists(name):
                return missing(name)
            points, next_offset = client.scroll(
                name, limit=body.limit or 10, offset=body.offset,
                with_payload=body.with_payload if body.with_payload is not None else True,
                with_vectors=body.with_vector if body.with_vector is not None else False,
            )  # fmt: skip
        return ok({"points": [p.model_dump(mode="json") for p in points], "next_page_offset": next_offset})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
