"""The HTTP routes: ``/v1/chat/completions``, ``/v1/models``, ``/health`` (FastAPI).

Every answer goes through the scheduler's queue; a route only validates, queues and relays
the job's events, as server-sent events in OpenAI's chunk format (``stream: true``) or as
one JSON body. Safety is here, in this order, before any work is queued:

1. ``Host`` (loopback binds without a key) and ``Origin`` checks against DNS rebinding and
   cross-site requests from a browser, as Jupyter does;
2. the API key (``Authorization: Bearer KEY``), compared in constant time;
3. the body: ``application/json`` only, at most ``max_body_bytes`` (413), valid JSON (400),
   fields validated (``protocol.parse_request``, 400), the model among ``/v1/models`` (400);
4. a full queue answers 503 with ``Retry-After``.

Every error is OpenAI's ``{"error": {...}}`` JSON with a 4xx/5xx status, never a traceback.
While a request waits or streams, its client is watched: when it goes away the job's
``cancel`` is set and generation stops within one token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from carexpert.chat.sampling import SamplingSettings
from carexpert.errors import UserError
from carexpert.serve.models import ModelRegistry, UnknownModel
from carexpert.serve.protocol import (
    FINISH_REASONS,
    ApiError,
    chunk_body,
    completion_body,
    conversation,
    error_body,
    model_list,
    new_completion_id,
    parse_request,
    sampling_for,
    usage,
)
from carexpert.serve.scheduler import Job, QueueFull, Scheduler

log = logging.getLogger("carexpert.serve")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
DISCONNECT_POLL_SECONDS = 0.1


@dataclass
class ServeSettings:
    api_key: str | None = None
    max_body_bytes: int = 256 * 1024
    max_tokens: int = 2048            # the most tokens one request may ask for
    loopback_only: bool = True        # bound to a loopback address: accept only loopback Host names
    sampling: SamplingSettings | None = None  # defaults for what a request leaves out (the [chat] section)
    system_prompt: str | None = None  # used when a request sends no system message
    retrieval: bool = True            # answers are grounded unless a request sends "retrieval": false


class ClientGone(Exception):
    """The client disconnected while its request waited or streamed."""


def _hostname(value: str) -> str:
    """``localhost:8000`` -> ``localhost``; ``[::1]:8000`` -> ``::1``."""
    return (urlsplit("//" + value).hostname or "").lower()


def check_request(request: Request, settings: ServeSettings, *, needs_key: bool = True) -> None:
    """Host, Origin and API key checks (see the module docstring); ApiError when refused."""
    if settings.loopback_only and not settings.api_key:
        if _hostname(request.headers.get("host", "")) not in LOOPBACK_NAMES:
            raise ApiError(403, "this server only answers requests addressed to localhost", type="permission_error")
        origin = request.headers.get("origin")
        if origin and (urlsplit(origin).hostname or "").lower() not in LOOPBACK_NAMES:
            raise ApiError(403, "cross-site requests are refused (start the server with --api-key to allow them)",
                           type="permission_error")
    if needs_key and settings.api_key:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                           type="invalid_request_error", code="invalid_api_key")


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON: 415 for another content type, 413 past ``limit`` bytes, 400 when malformed."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, f"send the body as JSON (Content-Type: application/json), not {content_type[:80]}")
    declared = request.headers.get("content-length")
    too_big = ApiError(413, f"the request body is larger than {limit} bytes (--max-body-kb)")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise too_big
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_big
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise ApiError(400, f"malformed JSON: {str(error)[:200]}") from None


def client_message(error: UserError) -> str:
    """A UserError for the client: the message and the fix, never ``where`` (a path on the server)."""
    return error.message + (f" (fix: {error.fix})" if error.fix else "")


def api_error_of(error: BaseException) -> ApiError:
    """What a failure while answering looks like to the client (no traceback, ever)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, UnknownModel):
        return ApiError(400, client_message(error), param="model", code="model_not_found")
    if isinstance(error, UserError):
        return ApiError(400, client_message(error))
    log.error("answering failed", exc_info=error)
    return ApiError(500, f"the model failed while answering ({type(error).__name__}); see the server log",
                    type="server_error")


class JobEvents:
    """The events of one queued job, read on the event loop, with the client watched for a disconnect."""

    def __init__(self, request: Request, job: Job):
        self.request, self.job = request, job
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.last_check = 0.0
        # Until the response starts, nobody else reads the client's side; once a streamed
        # response starts, the response itself notices a disconnect (a failed send, or
        # Starlette's own listener, which cancels the body) and must be the only reader.
        self.watch = True

    def emit(self, kind: str, payload: Any) -> None:
        """Called on the scheduler's thread."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.job.cancel.set()

    async def next(self) -> tuple[str, Any]:
        while True:
            now = self.loop.time()
            if self.watch and now - self.last_check >= DISCONNECT_POLL_SECONDS:
                self.last_check = now
                if await self.request.is_disconnected():
                    self.job.cancel.set()
                    raise ClientGone()
            try:
                return self.queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            try:
                return await asyncio.wait_for(self.queue.get(), timeout=DISCONNECT_POLL_SECONDS)
            except TimeoutError:
                continue


def sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def build_app(registry: ModelRegistry, scheduler: Scheduler, settings: ServeSettings) -> FastAPI:
    app = FastAPI(title="carexpert", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())
    defaults = settings.sampling or SamplingSettings()

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(error.detail), type=kind), status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid request"), status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("request failed", exc_info=error)
        return JSONResponse(error_body("internal server error; see the server log", type="server_error"),
                            status_code=500)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        check_request(request, settings, needs_key=False)
        return {"status": "ok", "models_loaded": registry.loaded_ids()}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_request(request, settings)
        return model_list(await asyncio.to_thread(registry.ids), started)

    @app.get("/v1/models/{model_id}")
    async def model(request: Request, model_id: str) -> dict[str, Any]:
        check_request(request, settings)
        if model_id not in await asyncio.to_thread(registry.ids):
            raise ApiError(404, f"the model {model_id[:80]!r} does not exist", type="not_found_error",
                           param="model", code="model_not_found")
        return model_list([model_id], started)["data"][0]

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        check_request(request, settings)
        body = parse_request(await read_json(request, settings.max_body_bytes), max_tokens_cap=settings.max_tokens)
        try:
            await asyncio.to_thread(registry.check, body.model)
        except UnknownModel as error:
            raise api_error_of(error) from None
        system, history, question = conversation(body.messages)
        try:
            sampling = sampling_for(body, defaults, settings.max_tokens).validate()
        except UserError as error:
            raise ApiError(400, client_message(error)) from None
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        job = Job(model=body.model, question=question, sampling=sampling, history=history,
                  system=system if system is not None else settings.system_prompt, stop=stops, seed=body.seed,
                  retrieval=settings.retrieval if body.retrieval is None else body.retrieval)
        events = JobEvents(request, job)
        job.emit = events.emit
        try:
            scheduler.submit(job)
        except QueueFull as full:
            raise ApiError(503, f"the server is busy (all {scheduler.capacity} places in the queue are taken); "
                                f"retry after {full.retry_after} s", type="server_error", code="queue_full",
                           headers={"Retry-After": str(full.retry_after)}) from None
        try:
            first = await events.next()
        except ClientGone:
            return Response(status_code=499)
        if first[0] == "error":
            raise api_error_of(first[1])
        completion_id = new_completion_id()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events.watch = False
            return StreamingResponse(stream(events, first, completion_id, body.model, include_usage),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        event = first
        try:
            while event[0] == "chunk":
                event = await events.next()
        except ClientGone:
            return Response(status_code=499)
        if event[0] == "error":
            raise api_error_of(event[1])
        return JSONResponse(completion_body(completion_id, body.model, event[1]))

    return app


async def stream(events: JobEvents, first: tuple[str, Any], completion_id: str, model: str, include_usage: bool):
    """The SSE body: a role chunk, one chunk per text piece, a final chunk (finish_reason, sources), [DONE]."""
    created = int(time.time())
    try:
        yield sse(chunk_body(completion_id, model, created, {"role": "assistant", "content": ""}))
        kind, payload = first
        while kind == "chunk":
            yield sse(chunk_body(completion_id, model, created, {"content": payload}))
            kind, payload = await events.next()
        if kind == "error":
            yield sse(api_error_of(payload).body())
        else:
            yield sse(chunk_body(completion_id, model, created, {},
                                 FINISH_REASONS.get(payload["finish_reason"], "stop"), sources=payload["sources"]))
            if include_usage:
                yield sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage(payload)})
        yield "data: [DONE]\n\n"
    except ClientGone:
        return
    finally:
        events.job.cancel.set()  # the client left, or the answer is over: either way nothing more to write
