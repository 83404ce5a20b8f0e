"""The studio's HTTP API and web page (FastAPI; the OpenAPI document is at /openapi.json).

Endpoints (all JSON unless said otherwise; errors are ``{"error": "one line"}``):

=======  ===============================  ==================================================
GET      /                                the studio page (static HTML/CSS/JS, no CDN)
GET      /api/status                      version, queue state and upload limits
GET      /api/methods                     every registered method with its typed parameters
GET      /api/models                      installed style networks and their style names
POST     /api/jobs                        submit a job (multipart: images + JSON parameters)
GET      /api/jobs                        recent jobs, newest first
GET      /api/jobs/{id}                   one job (poll this, or use /events)
GET      /api/jobs/{id}/events            server-sent events: the job after every change
GET      /api/jobs/{id}/preview           the latest live preview (JPEG)
GET      /api/jobs/{id}/result            the full-resolution result (PNG)
GET      /api/jobs/{id}/thumbnail         a small JPEG of the result, preview or content
GET      /api/jobs/{id}/inputs/{name}     an input image as stored by the server
POST     /api/jobs/{id}/cancel            cancel a queued or running job
DELETE   /api/jobs/{id}                   remove a finished job and its files
=======  ===============================  ==================================================
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import RestyleError
from ..methods import get_method
from ..methods.network import default_model
from ..params import make
from . import catalog
from .jobs import JobManager, JobTooLarge, NotCancellable, QueueFull, job_estimate
from .store import (DONE, QUEUED, RUNNING, TERMINAL, Job, JobStore, new_id, valid_id,
                    write_bytes_atomic)
from .uploads import (BodyLimit, Limits, UploadError, label, parse_json, store_image,
                      store_mask)

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("restyle.studio")


@dataclass
class StudioConfig:
    """How a studio server runs; the CLI's ``restyle studio`` flags map onto it."""

    data_dir: Path
    workers: int = 1
    queue_size: int = 8
    limits: Limits = field(default_factory=Limits)
    #: seconds between live previews of an optimization
    preview_interval: float = 0.5
    #: accept file paths and URLs in path parameters (init image, weights, decoder, model):
    #: off by default (a client could read the server's images, probe its files and make
    #: it fetch URLs); ``restyle studio --allow-server-paths`` turns it on for trusted use
    allow_server_paths: bool = False
    #: finished jobs kept on disk (the oldest are removed first)
    keep_jobs: int = 500
    #: bytes the job folders may take in all (the oldest finished jobs are removed first)
    keep_bytes: int = 2 * 2**30
    #: memory the running jobs may take together, by their estimates (default: three
    #: quarters of the machine's RAM); a job whose estimate alone exceeds it is refused
    memory_budget: int | None = None
    #: answer only requests addressed to this machine by a loopback name (127.0.0.1,
    #: localhost, [::1]): a web page elsewhere cannot reach the studio by DNS rebinding
    loopback_only: bool = True


# ----------------------------------------------------------------------------- response models

class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong, in one line")


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    status: str = Field(description="queued, running, done, failed or cancelled")
    method: str
    task: str
    family: str
    params: dict[str, Any] = Field(description="the parameters the client set")
    style_weights: list[float] | None
    style_names: list[str] = Field(default_factory=list)
    labels: dict[str, Any] = Field(description="the uploaded files' names, for display")
    inputs: dict[str, Any] = Field(description="the stored input images (see links.inputs)")
    created: float
    started: float | None
    finished: float | None
    error: str | None
    interrupted: bool = Field(description="a server stop or crash cut the job off")
    partial: bool = Field(description="the result is the image at the moment of a cancel")
    cancel_requested: bool
    queue_position: int | None = Field(description="1 = next to run (queued jobs only)")
    version: int = Field(description="grows with every change (order answers that cross)")
    progress: dict[str, Any] | None = Field(
        description="optimization methods: step, steps, level, levels, loss, parts (the "
                    "weighted loss terms), elapsed seconds, size [w, h], preview_step")
    result: dict[str, Any] | None = Field(description="width, height and bytes of result.png")
    estimate: dict[str, Any] | None = Field(
        default=None, description="what the job was admitted with: output pixels and the "
                                  "memory estimate in bytes")
    links: dict[str, Any]


class JobList(BaseModel):
    jobs: list[JobOut]
    stats: dict[str, Any]


def _job_out(job: dict[str, Any], position: int | None, version: int = 0) -> dict[str, Any]:
    base = f"/api/jobs/{job['id']}"
    links: dict[str, Any] = {"self": base, "events": f"{base}/events",
                             "thumbnail": f"{base}/thumbnail"}
    if job["status"] in (QUEUED, RUNNING):
        links["cancel"] = f"{base}/cancel"
    if (job.get("progress") or {}).get("preview_step") is not None:
        links["preview"] = f"{base}/preview?step={job['progress']['preview_step']}"
    if job.get("result"):
        links["result"] = f"{base}/result"
        links["download"] = f"{base}/result?download=1"
    inputs = job["inputs"]
    files = ([inputs["content"]] if inputs.get("content") else []) + list(inputs.get("styles", []))
    for names in (inputs.get("masks") or {}).values():
        files += names
    links["inputs"] = {name: f"{base}/inputs/{name}" for name in files}
    return {**job, "style_names": list(inputs.get("style_names") or []),
            "queue_position": position, "version": version, "links": links}


# ----------------------------------------------------------------------------- the app

def create_app(config: StudioConfig) -> FastAPI:
    if "," in str(Path(config.data_dir).expanduser().resolve()):
        # mask parameters pass several files as one comma-separated list of paths
        raise RestyleError(f"the studio's data folder must not contain a comma: {config.data_dir}")
    store = JobStore(config.data_dir)
    manager = JobManager(store, workers=config.workers, queue_size=config.queue_size,
                         preview_interval=config.preview_interval, keep_jobs=config.keep_jobs,
                         keep_bytes=config.keep_bytes, memory_budget=config.memory_budget)
    limits = config.limits
    studio = _Studio(config, store, manager)

    @asynccontextmanager
    async def lifespan(app):
        manager.start()
        try:
            yield
        finally:
            await run_in_threadpool(manager.stop)

    app = FastAPI(
        title="restyle studio",
        version=__version__,
        summary="Neural style transfer over HTTP: every restyle method, a bounded job queue, "
                "live progress.",
        description="Submit a job with `POST /api/jobs` (multipart: images and JSON "
                    "parameters), follow it with server-sent events at "
                    "`/api/jobs/{id}/events` (or poll `/api/jobs/{id}`), and fetch the "
                    "PNG from `/api/jobs/{id}/result`. Errors are `{\"error\": \"...\"}` "
                    "with 413 (too large), 422 (unusable input), 429 (queue full, with "
                    "Retry-After), 404 or 409.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN; the studio works offline,
        # so it serves the OpenAPI document and its own reference page (/api-docs).
        docs_url=None, redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
    app.add_middleware(SameOrigin, loopback_only=config.loopback_only)
    app.state.manager = manager
    app.state.config = config

    _error_routes(app)
    _page_routes(app)
    _catalog_routes(app, studio)
    _submit_routes(app, studio)
    _job_routes(app, studio)
    return app


@dataclass
class _Studio:
    """What the route groups share: the configuration, the job store and the queue."""

    config: StudioConfig
    store: JobStore
    manager: JobManager
    #: uploads are decoded at most two at a time: concurrent large uploads cannot add up
    decoding: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))

    @property
    def limits(self) -> Limits:
        return self.config.limits

    def job_or_404(self, job_id: str) -> Job:
        if not valid_id(job_id):
            raise StarletteHTTPException(404, f"no job {job_id!r}")
        try:
            return self.manager.get(job_id)
        except KeyError:
            raise StarletteHTTPException(404, f"no job {job_id}") from None

    def view(self, job_id: str) -> dict[str, Any]:
        snapshot, version, position = self.manager.snapshot(job_id)
        return _job_out(snapshot, position, version)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _error_routes(app: FastAPI) -> None:
    """Every error as ``{"error": "one line"}`` with its status."""
    error = _error
    @app.exception_handler(RestyleError)
    async def _restyle_error(request, exc: RestyleError):
        return error(422, str(exc))

    @app.exception_handler(UploadError)
    async def _upload_error(request, exc: UploadError):
        return error(exc.status, exc.message)

    @app.exception_handler(QueueFull)
    async def _queue_full(request, exc: QueueFull):
        return error(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(JobTooLarge)
    async def _too_large(request, exc: JobTooLarge):
        return error(413, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid request')}" if where
                     else first.get("msg", "invalid request"))

    @app.exception_handler(Exception)
    async def _internal_error(request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error: {type(exc).__name__}: {exc}")



def _page_routes(app: FastAPI) -> None:
    """The studio's page, its API reference and static files."""
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api-docs", include_in_schema=False)
    async def api_docs():
        return FileResponse(STATIC / "api.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")



def _catalog_routes(app: FastAPI, studio: _Studio) -> None:
    """Status, the methods (from the registry's declarations) and the installed models."""
    manager, config, limits = studio.manager, studio.config, studio.limits
    @app.get("/api/status", tags=["studio"], summary="Version, queue and limits")
    async def status() -> dict[str, Any]:
        return {"version": __version__, "queue": manager.stats(),
                "limits": {**dataclasses.asdict(limits), "memory_budget": manager.memory_budget,
                           "keep_jobs": manager.keep_jobs, "keep_bytes": manager.keep_bytes},
                "allow_server_paths": config.allow_server_paths}

    @app.get("/api/methods", tags=["studio"], summary="Every registered method and its parameters")
    async def methods() -> dict[str, Any]:
        """One entry per method of the registry: name, family ("image-optimization"
        streams previews; "model-optimization" answers in one pass), task ("transfer",
        "texture", "dream", ...) with the images it takes (`inputs`), style_kind ("image", or "name" for styles inside a trained model),
        and its parameters (name, type, default, help, choices, min, max, metavar; `mask`
        marks a mask parameter, sent as a file part named after it)."""
        return {"methods": await run_in_threadpool(catalog.methods)}

    @app.get("/api/models", tags=["studio"], summary="Installed style networks")
    async def models() -> dict[str, Any]:
        """Style networks for methods whose styles are names (`style_kind == "name"`)."""
        return await run_in_threadpool(catalog.models)



def _submit_routes(app: FastAPI, studio: _Studio) -> None:
    """``POST /api/jobs``: check everything cheap, store the uploads, queue the job."""
    store, manager, config, limits = studio.store, studio.manager, studio.config, studio.limits
    job_or_404, view = studio.job_or_404, studio.view
    decoding = studio.decoding
    @app.post("/api/jobs", tags=["jobs"], status_code=202, response_model=JobOut,
              summary="Submit a job",
              responses={413: {"model": ErrorOut, "description": "an upload is too large"},
                         422: {"model": ErrorOut, "description": "bad image or parameters"},
                         429: {"model": ErrorOut, "description": "the queue is full; see "
                                                                 "Retry-After"}})
    async def submit(
        request: Request,
        method: Annotated[str, Form(description="a method name from /api/methods")],
        params: Annotated[str, Form(description="the method's parameters as a JSON object, "
                                                "e.g. {\"size\": 512, \"strength\": 0.6}")] = "{}",
        style_weights: Annotated[str, Form(description="blend weights, a JSON list with one "
                                                       "number per style")] = "",
        style_names: Annotated[str, Form(description="for methods with style_kind \"name\": "
                                                     "a JSON list of style names of the "
                                                     "model")] = "",
        content: Annotated[UploadFile | None, File(description="the content photo "
                                                               "(transfer methods)")] = None,
        style: Annotated[list[UploadFile] | None,
                         File(description="style image(s), or texture exemplar(s); repeat "
                                          "the part to blend several")] = None,
    ):
        """Multipart form. Mask parameters (see `mask` in /api/methods) are sent as
        file parts named after the parameter, e.g. `object_mask`. Answers 202 with the
        job; follow `links.events` or poll `links.self`."""
        m = get_method(method)
        info = catalog.method_info(type(m))
        if info["unavailable"]:
            raise UploadError(422, f"{m.name} cannot run in the studio: {info['unavailable']}")
        given = parse_json(params, "params", dict, {})
        styles = list(style or [])
        names = [str(n) for n in parse_json(style_names, "style_names", list, [])]
        weights = parse_json(style_weights, "style_weights", list, None)
        masks = await _mask_uploads(request, info)
        _check_params(info, given, config, masks)
        p = make(m.Params, **given)  # every range and choice, before anything is stored
        _check_inputs(m, info, content, styles, names, weights, given, limits)
        estimate = job_estimate(m.name, m.family, p)
        if estimate["pixels"] > limits.max_job_pixels:
            raise UploadError(413, f"the output would be {estimate['pixels'] / 1e6:.1f} "
                                   f"megapixels; the studio makes up to "
                                   f"{limits.max_job_pixels / 1e6:.1f} (lower the size)")
        manager.check_capacity(estimate["bytes"])

        job = Job(id=new_id(), method=m.name, task=m.task, family=m.family, params=given,
                  inputs={"content": None, "styles": [], "masks": {}},
                  style_weights=[float(w) for w in weights] if weights is not None else None,
                  estimate=estimate)
        store.create(job)
        try:
            await _store_uploads(job, content, styles, masks)
            if names:
                job.inputs["style_names"] = names
            manager.submit(job)
        except BaseException:
            store.delete(job.id)
            raise
        return JSONResponse(view(job.id), status_code=202,
                            headers={"Location": f"/api/jobs/{job.id}"})

    async def _mask_uploads(request: Request, info) -> dict[str, list[StarletteUpload]]:
        form = await request.form()
        masks: dict[str, list] = {}
        for key, value in form.multi_items():
            if not isinstance(value, StarletteUpload) or key in ("content", "style"):
                continue
            if key not in info["mask_fields"] + info["upload_fields"]:
                have = ", ".join(info["mask_fields"] + info["upload_fields"]) or "none"
                raise UploadError(422, f"unexpected file part {key!r}: method {info['name']} "
                                       f"takes content, style and mask parts (its masks and "
                                       f"images: {have})")
            if key in info["upload_fields"] and key in masks:
                raise UploadError(422, f"send one {key} image, not several")
            masks.setdefault(key, []).append(value)
        return masks

    async def _store_uploads(job: Job, content, styles, masks) -> None:
        inputs_dir = store.inputs_dir(job.id)

        async def stored(fn, upload, what: str, path) -> str:
            data = await upload.read(limits.max_file_bytes + 1)
            async with decoding:
                return (await run_in_threadpool(fn, data, what, path, limits))[0]

        if content is not None:
            what = f"content image {label(content.filename)!r}"
            job.inputs["content"] = await stored(store_image, content, what,
                                                 inputs_dir / "content.png")
            job.labels["content"] = label(content.filename)
        for i, upload in enumerate(styles):
            what = f"style image {label(upload.filename)!r}"
            job.inputs["styles"].append(await stored(store_image, upload, what,
                                                     inputs_dir / f"style-{i}.png"))
            job.labels.setdefault("styles", []).append(label(upload.filename))
        # mask parameters and uploaded image parameters (init): files passed by path
        for name, uploads in masks.items():
            image = name in catalog.method_info(type(get_method(job.method)))["upload_fields"]
            for i, upload in enumerate(uploads):
                what = f"{'image' if image else 'mask'} {name} {label(upload.filename)!r}"
                file = await stored(store_image if image else store_mask, upload, what,
                                    inputs_dir / f"{'param' if image else 'mask'}-{name}-{i}.png")
                job.inputs["masks"].setdefault(name, []).append(file)



def _job_routes(app: FastAPI, studio: _Studio) -> None:
    """Follow, fetch, cancel and delete jobs."""
    store, manager, config, limits = studio.store, studio.manager, studio.config, studio.limits
    job_or_404, view = studio.job_or_404, studio.view

    @app.get("/api/jobs", tags=["jobs"], response_model=JobList, summary="Recent jobs")
    async def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        return {"jobs": [view(i) for i in manager.list(limit)], "stats": manager.stats()}

    @app.get("/api/jobs/{job_id}", tags=["jobs"], response_model=JobOut, summary="One job",
             responses={404: {"model": ErrorOut}})
    async def get_job(job_id: str):
        job_or_404(job_id)
        return view(job_id)

    @app.get("/api/jobs/{job_id}/events", tags=["jobs"], summary="Follow a job (SSE)",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "`event: job` with the job as JSON after every "
                                             "change; the stream ends after a finished job"},
                        404: {"model": ErrorOut}})
    async def job_events(job_id: str, request: Request):
        """Server-sent events: the job (as `GET /api/jobs/{id}`) after every change,
        including each optimization step; the stream closes when the job has finished.
        Clients should close their EventSource on a finished job (it would reconnect)."""
        job_or_404(job_id)

        async def stream():
            yield "retry: 2000\n\n"
            last, quiet = -1, time.monotonic()
            while True:
                try:
                    version = manager.version(job_id)
                except KeyError:
                    yield "event: deleted\ndata: {}\n\n"
                    return
                if version != last:
                    last = version
                    try:
                        out = view(job_id)
                    except KeyError:
                        yield "event: deleted\ndata: {}\n\n"
                        return
                    yield f"event: job\nid: {version}\ndata: {json.dumps(out)}\n\n"
                    quiet = time.monotonic()
                    if out["status"] in TERMINAL:
                        return
                elif time.monotonic() - quiet > 15:
                    yield ": keep-alive\n\n"
                    quiet = time.monotonic()
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    @app.get("/api/jobs/{job_id}/preview", tags=["jobs"], summary="The latest preview (JPEG)",
             response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorOut}})
    async def job_preview(job_id: str):
        job_or_404(job_id)
        preview = manager.preview(job_id)
        if preview is None:
            raise StarletteHTTPException(404, "no preview yet (one-pass methods have none)")
        return Response(preview[1], media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Step": str(preview[0])})

    @app.get("/api/jobs/{job_id}/result", tags=["jobs"], summary="The result (PNG)",
             response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut},
                        409: {"model": ErrorOut, "description": "no result (yet)"}})
    async def job_result(job_id: str, download: bool = False):
        job = job_or_404(job_id)
        path = store.result_path(job_id)
        if not job.result or not path.is_file():
            if job.status in (QUEUED, RUNNING):
                raise StarletteHTTPException(409, f"job {job_id} is {job.status}; no result yet")
            reason = f": {job.error}" if job.error else ""
            raise StarletteHTTPException(409, f"job {job_id} is {job.status} without a "
                                              f"result{reason}")
        name = f"restyle-{job.method}-{job_id[:8]}{'-partial' if job.partial else ''}.png"
        return FileResponse(path, media_type="image/png",
                            filename=name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    @app.get("/api/jobs/{job_id}/thumbnail", tags=["jobs"], summary="A small JPEG of the job",
             response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorOut}})
    async def job_thumbnail(job_id: str, side: Annotated[int, Query(ge=32, le=1024)] = 320):
        """The result when there is one, else the latest preview, else the content image."""
        job = job_or_404(job_id)
        data = await run_in_threadpool(_thumbnail, store, manager, job, side)
        if data is None:
            raise StarletteHTTPException(404, "nothing to show yet")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @app.get("/api/jobs/{job_id}/inputs/{name}", tags=["jobs"], summary="A stored input image",
             response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut}})
    async def job_input(job_id: str, name: str):
        job = job_or_404(job_id)
        inputs = job.inputs
        known = ([inputs["content"]] if inputs.get("content") else []) + \
            list(inputs.get("styles", [])) + \
            [f for files in (inputs.get("masks") or {}).values() for f in files]
        if name not in known:
            raise StarletteHTTPException(404, f"job {job_id} has no input {name!r}")
        return FileResponse(store.input_path(job_id, name),
                            media_type="image/jpeg" if name.endswith(".jpg") else "image/png")

    @app.post("/api/jobs/{job_id}/cancel", tags=["jobs"], response_model=JobOut,
              summary="Cancel a job",
              responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
    async def cancel_job(job_id: str):
        """A queued job is cancelled at once. A running optimization stops at its next
        iteration and keeps the image so far as a partial result; a one-pass method stops
        at its next network layer or tile, without a result."""
        job_or_404(job_id)
        try:
            manager.cancel(job_id)
        except NotCancellable as e:
            raise StarletteHTTPException(409, str(e)) from None
        return view(job_id)

    @app.delete("/api/jobs/{job_id}", tags=["jobs"], status_code=204, summary="Delete a job",
                responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
    async def delete_job(job_id: str):
        job_or_404(job_id)
        try:
            await run_in_threadpool(manager.delete, job_id)
        except NotCancellable as e:
            raise StarletteHTTPException(409, str(e)) from None
        return Response(status_code=204)


# ----------------------------------------------------------------------------- middleware

class SameOrigin:
    """ASGI middleware against other web sites driving the studio through a visitor's
    browser: requests that change something (POST, DELETE) must come from the studio's own
    page when the browser says where they come from (Origin), and with ``loopback_only``
    the Host must be a loopback name (no DNS rebinding)."""

    LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")

    def __init__(self, app, loopback_only: bool = True):
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.loopback_only and hostname not in self.LOOPBACK:
            return await self._deny(send, f"host {host!r} is not this machine's loopback "
                                          "address; open the studio at 127.0.0.1")
        origin = headers.get("origin")
        if (scope["method"] not in ("GET", "HEAD", "OPTIONS") and origin is not None
                and origin.split("://", 1)[-1] != host):  # "null" (sandboxed pages) too
            return await self._deny(send, f"requests from {origin} may not change the "
                                          "studio's jobs")
        await self.app(scope, receive, send)

    @staticmethod
    async def _deny(send, message: str):
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------- checks

def _check_params(info: dict, given: dict, config: StudioConfig, files: dict) -> None:
    """Parameters that the JSON may not hold: images (masks; an uploaded init image) and,
    unless the server allows them, file paths and URLs on the server's machine."""
    by_name = {p["name"]: p for p in info["params"]}
    for name, value in given.items():
        p = by_name.get(name)
        if p is None:
            continue  # make() names the unknown parameters
        if p["mask"] and value not in p.get("keywords", ()):
            raise UploadError(422, f"{name} is an image: send it as a file part named "
                                   f"{name!r}, not as a parameter")
        if name in files:
            raise UploadError(422, f"{name} is both a parameter and an uploaded file; send "
                                   "one of them")
        if p["type"] == "str" and not isinstance(value, str):
            raise UploadError(422, f"--{name.replace('_', '-')} must be text, not {value!r}")
        if p["path"] and not config.allow_server_paths and value != p["default"]:
            choices = catalog.path_choices(p)
            if value not in choices:
                use = f"one of {', '.join(repr(c) for c in choices)}" if choices else \
                    "its default"
                upload = f", or upload the image as a file part named {name!r}" \
                    if p["upload"] else ""
                raise UploadError(422, f"{name}: files and URLs on the server are not accepted "
                                       f"(the studio runs without --allow-server-paths); use "
                                       f"{use}{upload}")


def _check_inputs(method, info: dict, content, styles: list, names: list[str], weights,
                  given: dict, limits: Limits) -> None:
    """The images (or style names) the method's task takes, and their weights."""
    def need(cond: bool, message: str):
        if not cond:
            raise UploadError(422, message)

    wants = info["inputs"]
    what = wants["styles"] or "style"
    if info["content_required"]:
        noun = "a content" if wants["content"] == "content" else "an input"
        need(content is not None, f"{method.name} needs {noun} image (a 'content' part)")
    elif not wants["content"]:
        need(content is None, f"{method.name} takes no content image; send {what} images as "
                              "'style' parts")
    count = 0
    if not wants["styles"]:
        need(not styles and not names, f"{method.name} takes no style images or names")
    elif method.takes.styles == "names":
        need(not styles, f"{method.name} takes style names of a trained model (style_names), "
                         "not style images")
        need(bool(names), f"{method.name} needs at least one style name (style_names); "
                          "see /api/models")
        _check_names(given.get("model") or "", names)
        count = len(names)
    else:
        need(not names, f"{method.name} takes {what} images, not style names")
        need(bool(styles), f"{method.name} needs at least one {what} image (a 'style' part)")
        count = len(styles)
    need(count <= limits.max_styles, f"at most {limits.max_styles} styles per job, not {count}")
    if weights is not None:
        need(count > 0, f"{method.name} takes no style weights")
        need(len(weights) == count, f"style_weights has {len(weights)} numbers for "
                                    f"{count} styles")
        need(all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                 and math.isfinite(w) for w in weights) and sum(weights) > 0,
             "style_weights must be non-negative numbers, not all zero")


def _check_names(model: str, names: list[str]) -> None:
    if not model:
        model = default_model()  # RestyleError (422) when no network is installed
    known = catalog.model_styles(model)
    if known is None:
        return  # a model given by path: the job itself reports unknown names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UploadError(422, f"model {model} has no style {unknown[0]!r}; its styles: "
                               f"{', '.join(known)}")


def _thumbnail(store: JobStore, manager: JobManager, job: Job, side: int) -> bytes | None:
    cached = store.thumbnail_path(job.id)
    result = store.result_path(job.id)
    if job.status == DONE and side == 320 and cached.is_file():
        return cached.read_bytes()
    source = None
    if job.result and result.is_file():
        source = Image.open(result)
    elif (preview := manager.preview(job.id)) is not None:
        source = Image.open(io.BytesIO(preview[1]))
    elif job.inputs.get("content"):
        source = Image.open(store.input_path(job.id, job.inputs["content"]))
    elif job.inputs.get("styles"):
        source = Image.open(store.input_path(job.id, job.inputs["styles"][0]))
    if source is None:
        return None
    with source:
        img = source.convert("RGB")
    img.thumbnail((side, side), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    data = buf.getvalue()
    if job.status == DONE and side == 320:
        write_bytes_atomic(cached, data)
    return data
