"""One queued request answered by the engine: the bridge between the scheduler and ``ChatEngine``.

Retrieval, the guard and the prompt are the chat's own (``ChatEngine.retrieve`` and
``reply``), so a served answer reads the same passages and the same template as
``carexpert chat``.
"""

from __future__ import annotations

from typing import Any

from carexpert.serve.models import ModelRegistry
from carexpert.serve.scheduler import Job


def answer_job(registry: ModelRegistry, job: Job) -> dict[str, Any]:
    """Stream ``job``'s answer through ``job.emit`` and return what the response needs at the end."""
    engine = registry.engine(job.model)
    retrieval = engine.retrieve(job.question) if job.retrieval else None
    reply = engine.reply(job.question, sampling=job.sampling, history=job.history, system=job.system,
                         retrieval=retrieval, stop=job.stop, seed=job.seed, cancel=job.cancel)
    try:
        for chunk in reply:
            job.emit("chunk", chunk)
    finally:
        reply.close()
    stats = reply.stats
    assert stats is not None  # the reply ran to its end (or was closed), which always sets stats
    decode_seconds = (stats.new_tokens - 1) / stats.tokens_per_second if stats.tokens_per_second else None
    return {"content": "".join(reply.parts), "finish_reason": stats.finish_reason,
            "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.new_tokens,
            "decode_seconds": decode_seconds, "sources": reply.sources, "retrieval": retrieval is not None,
            "retrieval_problem": engine.retrieval_problem if job.retrieval else None}
