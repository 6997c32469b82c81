"""OpenAI's chat-completions shapes: the request as validated data, the responses, the errors.

Requests are checked with pydantic (FastAPI's own dependency); anything wrong becomes an
``ApiError`` with the HTTP status, OpenAI's error ``type``, the offending ``param`` and a
message saying what is allowed. Unknown request fields are ignored, as OpenAI-compatible
servers do, except those that would change the answer in a way this server cannot honour
(``n`` above 1, ``tools``), which are refused.

Beyond OpenAI's fields, a request may send ``top_k``, ``repetition_penalty`` (as vLLM
accepts them) and ``retrieval`` (false: answer closed-book); a response carries
``sources``: the knowledge-store passages the answer was given (``id``, ``kind``, ``title``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carexpert.chat.sampling import SamplingSettings

FINISH_REASONS = {"eos": "stop", "stop_string": "stop", "guard": "stop", "max_new_tokens": "length",
                  "cancelled": "stop"}


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` with ``status``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=1000)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=100_000)
    repetition_penalty: float | None = Field(default=None, ge=0.5, le=5.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    tools: list[Any] | None = Field(default=None, max_length=0)
    retrieval: bool | None = None


def parse_request(data: Any, *, max_tokens_cap: int) -> ChatCompletionRequest:
    """Validate a decoded JSON body; ApiError(400) names the first bad field."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        request = ChatCompletionRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise ApiError(400, f"{where or 'body'}: {first.get('msg', 'invalid value')}", param=where or None) from None
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > 4 or any(len(s) > 200 for s in stops):
        raise ApiError(400, "stop: at most 4 strings of at most 200 characters", param="stop")
    asked = request.max_completion_tokens or request.max_tokens
    if asked is not None and asked > max_tokens_cap:
        param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise ApiError(400, f"{param}: at most {max_tokens_cap} on this server (--max-tokens)", param=param)
    return request


def conversation(messages: list[Message]) -> tuple[str | None, list[tuple[str, str]], str]:
    """(system prompt or None, earlier (question, answer) turns, the question to answer now).

    System and developer messages join into the system prompt; consecutive user messages
    join into one question; the last message must be the user's.
    """
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    question: list[str] = []
    for message in messages:
        text = message.text()
        if message.role in ("system", "developer"):
            system.append(text)
        elif message.role == "user":
            question.append(text)
        else:
            turns.append(("\n\n".join(question), text))
            question = []
    if messages[-1].role != "user" or not "".join(question).strip():
        raise ApiError(400, "the last message must be a non-empty user message", param="messages")
    return ("\n\n".join(system) if system else None), turns, "\n\n".join(question)


def sampling_for(request: ChatCompletionRequest, defaults: SamplingSettings, max_tokens_default: int
                 ) -> SamplingSettings:
    """The request's sampling settings, the server's config filling whatever it leaves out."""
    settings = SamplingSettings(**defaults.as_dict())
    asked = request.max_completion_tokens or request.max_tokens
    settings.max_new_tokens = asked if asked is not None else min(defaults.max_new_tokens, max_tokens_default)
    for key in ("temperature", "top_p", "top_k", "repetition_penalty"):
        value = getattr(request, key)
        if value is not None:
            setattr(settings, key, value)
    return settings


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def usage(result: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(result["prompt_tokens"]), int(result["completion_tokens"])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(completion_id: str, model: str, result: dict[str, Any]) -> dict[str, Any]:
    """The non-streamed response."""
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result["content"]},
                         "logprobs": None, "finish_reason": FINISH_REASONS.get(result["finish_reason"], "stop")}],
            "usage": usage(result), "sources": result["sources"]}


def chunk_body(completion_id: str, model: str, created: int, delta: dict[str, Any],
               finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """One streamed chunk (``chat.completion.chunk``)."""
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}


def model_list(ids: list[str], created: int) -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": model_id, "object": "model", "created": created, "owned_by": "carexpert"}
                     for model_id in ids]}
