"""carexpert's own decode loop: eager prefill, then one recorded step per token.

Why not ``generate``: with a static cache and ``torch.compile`` it runs at a few hundred
tokens/s on an H200 for the 270M embedded model and falls off cliffs (the first answer
after load, answers crossing Gemma 3's 512-token sliding window: 7 and 21 tokens/s,
issue 14): the sliding static cache rolls on a host-side counter (another code path and
another compile once the window is full), every new prompt length or cache position
guard can recompile, and per token it runs the logits processors, stopping criteria and
the streamer eagerly in Python with host syncs in between.

Here one decoding step (forward on ``FixedCache``, the masks, the repetition penalty,
temperature, top-k, top-p, the draw, and the bookkeeping for the next step) reads and
writes only fixed device buffers, so on a GPU it is recorded once as a CUDA graph and
replayed for every token of every answer, whatever its length. The forward inside the
step is compiled with ``torch.compile`` first where that works (fewer, fused kernels in
the graph). The host's only per-token work is one replay and reading back the token
of a step that already finished: the loop keeps ``LOOKAHEAD`` steps in flight, so the
GPU never waits for Python. A stop (EOS, ``stop_event``, ``max_new_tokens``) costs at
most ``LOOKAHEAD`` steps of wasted work, which the next answer's prefill overwrites.

On a CPU the same loop runs the step eagerly (no graphs), attending only over the
positions written so far, through the lean Gemma 3 layers (``lean_gemma3``) and the
screened output head (``screened_head``) where the model allows; ``cpu_note`` says what
it falls back to and why (docs/benchmarks.md, "The lean Gemma 3 step").

``GraphDecoder.build`` raises ``DecoderUnavailable`` and ``warm_up`` returns the reason
when recording fails; the caller (``carexpert.chat.fast``) then keeps ``generate`` and
says why in the ``DecodePlan``.
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import torch

from carexpert.chat import cpu_step
from carexpert.chat.cpu_step import first_line
from carexpert.chat.decode_request import DecodeRequest
from carexpert.chat.decode_step import (
    FULL,
    SLIDING,
    FixedCache,
    SamplingParams,
    adjusted_logits,
    attention_masks,
    cache_keyword,
    choose_from_adjusted,
    choose_next,
    knob_values,
    layer_kinds,
)

LOOKAHEAD = 2  # steps queued on the GPU ahead of the token being read back
CPU_CACHE_ROUNDING = 512  # a CPU cache is sized per answer, rounded up to reuse it across answers
class DecoderUnavailable(RuntimeError):
    """This model or machine cannot use the loop; the message says why (shown in the DecodePlan)."""


class GraphDecoder:
    """Prefill + recorded decoding steps for one model; use from one thread (the decode thread)."""

    def __init__(self, model: Any, max_len: int, *, graphs: bool, compile_step: bool):
        self.model = model
        self.base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.device = next(self.base.parameters()).device
        self.graphs_enabled = graphs
        self.compile_step = compile_step
        self.compile_error: str | None = None
        config = self.base.config
        implementation = getattr(config, "_attn_implementation", None) or "eager"
        if implementation not in ("sdpa", "eager"):
            try:  # flash attention takes no 4-D mask; at batch 1 sdpa decodes as fast
                self.base.set_attn_implementation("sdpa")
                implementation = "sdpa"
            except Exception as error:  # any refusal means: keep generate
                raise DecoderUnavailable(f"attention {implementation!r} takes no ready-made mask "
                                         f"and switching to sdpa failed ({error})") from error
        self.attn_implementation = implementation
        self.max_len = max_len
        kinds, self.window = layer_kinds(config, max_len)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        model_types = list(dict.fromkeys(getattr(text, "layer_types", None) or []))
        # Gemma 3-style models take {layer type: mask}; a single-kind model takes one 4-D mask
        self.mask_names = model_types if len(model_types) > 1 else []
        self.kind_of = {name: (SLIDING if name == SLIDING and self.window else FULL) for name in self.mask_names}
        self.kinds = set(kinds) | set(self.kind_of.values())
        self.layers = text.num_hidden_layers
        self.cache_keyword = cache_keyword(self.base)
        self.dtype = next(self.base.parameters()).dtype
        vocab = self.base.get_output_embeddings().weight.shape[0]
        with torch.inference_mode():
            self.cache = FixedCache(self.layers, max_len, self.device) if graphs else None
            self.token = torch.zeros(1, 1, dtype=torch.long, device=self.device)
            self.seen = torch.zeros(1, vocab, dtype=torch.bool, device=self.device)
            self.banned = torch.zeros(1, vocab, dtype=torch.bool, device=self.device)
            self.knobs = torch.ones(3, dtype=torch.float32, device=self.device)
            slots = LOOKAHEAD + 2
            self.host = torch.zeros(slots, dtype=torch.long, pin_memory=graphs)
        self.events = [torch.cuda.Event() for _ in range(slots)] if graphs else []
        self.recorded: dict[tuple, torch.cuda.CUDAGraph] = {}
        self.answers = 0  # answers decoded (the warm-up's included): benchmarks check the loop was used
        self.pool: Any = None
        self._forward_step = self._scores
        if compile_step:
            self._forward_step = torch.compile(self._scores, dynamic=False)
        self.lean: Any = None     # lean_gemma3.LeanGemma3Step: the CPU step's layers, where the model allows
        self.screen: Any = None   # screened_head.ScreenedHead: the CPU step's output head, where it allows
        self.cpu_note = ""        # what the CPU step does not use, and why (shown in the plan)
        if not graphs and not compile_step and self.device.type == "cpu":
            self._set_up_cpu_step()

    def _set_up_cpu_step(self) -> None:
        """The lean Gemma 3 layers and the screened head for eager CPU steps, each where the model allows it."""
        self.lean, self.screen, self.cpu_note = cpu_step.set_up(self.base, self.max_len)

    @property
    def live_cache(self) -> FixedCache:
        """The cache, which a CUDA decoder has from the start and a CPU one from ``_ensure_cpu_cache`` on."""
        if self.cache is None:
            raise RuntimeError("the decoder's cache is used before it was sized (a bug)")
        return self.cache

    # ----- the model call ------------------------------------------------------------------
    def _model_inputs(self, ids: torch.Tensor) -> dict[str, Any]:
        """The keyword arguments of a forward of ``ids`` written from ``cache.position`` on (cache keyword aside)."""
        cache = self.live_cache
        count = ids.shape[1]
        kv_index = cache.offsets if cache.visible is None else cache.offsets[:cache.visible]
        masks = attention_masks(cache.position, count, kv_index, self.window, self.kinds,
                                self.attn_implementation, self.dtype)
        mask = {name: masks[kind] for name, kind in self.kind_of.items()} if self.mask_names \
            else next(iter(masks.values()))
        positions = (cache.position + cache.offsets[:count])[None]
        return {"input_ids": ids, "position_ids": positions, "attention_mask": mask, "use_cache": True}

    def _logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Float32 logits of the last position, for ``ids`` written from ``cache.position`` on."""
        output = self.base(**self._model_inputs(ids), logits_to_keep=1, **{self.cache_keyword: self.live_cache})
        return output.logits[:, -1].float()

    def _last_hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """The decoder's final (normed) hidden state of the last position: what the output head multiplies."""
        decoder = self.base.get_decoder()
        output = decoder(**self._model_inputs(ids), **{cache_keyword(decoder): self.live_cache})
        return output.last_hidden_state[:, -1]

    def _scores(self, ids: torch.Tensor) -> torch.Tensor:
        """The step's logits after the penalty and suppressed tokens: the part ``torch.compile`` fuses."""
        return adjusted_logits(self._logits(ids), self.seen, self.banned, self.knobs)

    def _cpu_choice(self, params: SamplingParams) -> torch.Tensor:
        """The next token (1, 1) of an eager CPU step, through the lean layers and the screened head where set up.

        With the screen, the penalty, suppressed tokens and the choice apply to its
        candidates only (the tokens that can be chosen), so nothing vocabulary-wide
        runs after the int8 pass.
        """
        keep = 1 if params.greedy else params.top_k if 0 < params.top_k < self.seen.shape[1] else 0
        if self.lean is None and not (self.screen is not None and keep):
            return choose_from_adjusted(self._scores(self.token), self.knobs, params)
        cache = self.live_cache
        if self.lean is not None:
            hidden = self.lean.hidden(self.token, int(cache.position), cache)
        else:
            hidden = self._last_hidden(self.token)
        return self._choose_from_hidden(hidden, params, screened=self.screen is not None and keep > 0)

    def _choose_from_hidden(self, hidden: torch.Tensor, params: SamplingParams, *, screened: bool) -> torch.Tensor:
        """The output head and the choice for a final hidden state (1, hidden): screened, or the full fp32 head."""
        return cpu_step.choose_from_hidden(hidden, self.base.get_output_embeddings().weight,
                                           self.screen if screened else None, params, self.seen, self.banned,
                                           self.knobs)

    def _step(self, params: SamplingParams) -> None:
        """One token: forward the last token, choose the next, advance. Only fixed buffers change."""
        if self.lean is not None or self.screen is not None:
            chosen = self._cpu_choice(params)
        else:
            chosen = choose_from_adjusted(self._forward_step(self.token), self.knobs, params)
        self.seen.scatter_(1, chosen, True)
        self.token.copy_(chosen)
        self.live_cache.position.add_(1)

    # ----- setting up an answer ------------------------------------------------------------
    def _ensure_cpu_cache(self, length: int) -> None:
        if self.cache is None or self.cache.max_len < length:
            size = -(-length // CPU_CACHE_ROUNDING) * CPU_CACHE_ROUNDING
            self.cache = FixedCache(self.layers, size, self.device)

    def _prefill(self, ids: torch.Tensor, request: DecodeRequest) -> None:
        """Write the prompt to the cache and choose the first token into ``self.token``."""
        params = request.params
        self.knobs.copy_(torch.tensor(knob_values(params), dtype=torch.float32), non_blocking=True)
        self.seen.zero_()
        self.seen.scatter_(1, ids, True)
        self.banned.zero_()
        if request.suppress_tokens:
            suppressed = torch.tensor(sorted(request.suppress_tokens), dtype=torch.long)
            self.banned[0, suppressed[suppressed < self.banned.shape[1]].to(self.device)] = True
        self.live_cache.position.zero_()
        if not self.graphs_enabled:
            self.live_cache.visible = ids.shape[1]
        first = choose_next(self._logits(ids), self.seen, self.banned, self.knobs, params)
        self.seen.scatter_(1, first, True)
        self.token.copy_(first)
        self.live_cache.position.fill_(ids.shape[1])

    def _graph(self, params: SamplingParams) -> torch.cuda.CUDAGraph:
        """The recorded step for these settings (recorded on first use; ``warm_up`` does it at load)."""
        key = params.graph_key
        if key not in self.recorded:
            self.live_cache.position.zero_()  # the warm-up steps below write from position 0 (a prefill overwrites them)
            if self.live_cache.keys[0] is None:  # allocate the cache before recording: its addresses go into the graph
                self._logits(self.token)
                self.live_cache.position.zero_()
            rng_state = torch.cuda.get_rng_state(self.device)  # recording must not shift a seeded answer's draws
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # compile (if on), autotune, allocate, before recording
                    self._step(params)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                self._step(params)
            self.pool = graph.pool()
            self.recorded[key] = graph
            torch.cuda.set_rng_state(rng_state, self.device)
        return self.recorded[key]

    # ----- answering -----------------------------------------------------------------------
    def stream(self, input_ids: torch.Tensor, request: DecodeRequest,
               stop_event: threading.Event | None = None, seed: int | None = None) -> Iterator[tuple[int, float]]:
        """Yield ``(token_id, perf_counter time)`` for one answer to ``input_ids`` (shape (1, prompt))."""
        prompt = input_ids.shape[1]
        room = (self.max_len if self.graphs_enabled else prompt + request.max_new_tokens) - prompt
        budget = min(request.max_new_tokens, room)
        if budget < 1:
            raise ValueError(f"a {prompt}-token prompt leaves no room in a {self.max_len}-token cache")
        stop_event = stop_event or threading.Event()
        self.answers += 1
        with torch.inference_mode():
            ids = input_ids.to(self.device)
            if self.graphs_enabled:
                graph = self._graph(request.params)
                if seed is not None:
                    torch.manual_seed(seed)
                yield from self._stream_recorded(ids, request, budget, stop_event, graph)
            else:
                if seed is not None:
                    torch.manual_seed(seed)
                yield from self._stream_eager(ids, request, budget, stop_event)

    def _stream_eager(self, ids: torch.Tensor, request: DecodeRequest, budget: int,
                      stop_event: threading.Event) -> Iterator[tuple[int, float]]:
        self._ensure_cpu_cache(ids.shape[1] + budget)
        self._prefill(ids, request)
        position = ids.shape[1]
        for count in range(1, budget + 1):
            token = int(self.token.item())
            yield token, time.perf_counter()
            if count == budget or token in request.eos_token_ids or stop_event.is_set():
                return
            self.live_cache.visible = position + 1
            self._step(request.params)
            position += 1

    def _stream_recorded(self, ids: torch.Tensor, request: DecodeRequest, budget: int,
                         stop_event: threading.Event, graph: torch.cuda.CUDAGraph) -> Iterator[tuple[int, float]]:
        self._prefill(ids, request)
        pending: collections.deque[int] = collections.deque()
        slots = len(self.events)

        def read_back(slot: int) -> None:
            self.host[slot:slot + 1].copy_(self.token[0], non_blocking=True)
            self.events[slot].record()
            pending.append(slot)

        read_back(0)
        launched = 1
        try:
            while pending:
                while launched < budget and len(pending) <= LOOKAHEAD:
                    graph.replay()
                    read_back(launched % slots)
                    launched += 1
                slot = pending.popleft()
                self.events[slot].synchronize()
                token = int(self.host[slot])
                yield token, time.perf_counter()
                if token in request.eos_token_ids or stop_event.is_set():
                    break
        finally:  # the steps run ahead finish before anyone reuses the buffers
            torch.cuda.current_stream(self.device).synchronize()

    # ----- set-up at load time -------------------------------------------------------------
    def warm_up(self, prompt_ids: torch.Tensor, requests: list[DecodeRequest]) -> None:
        """Prefill once, compile and record every request's step, and decode a few tokens through each.

        Raises what recording raises; if compiling the forward fails, records the eager
        forward instead and keeps the reason in ``compile_error``.
        """
        for request in requests:
            short = DecodeRequest(request.params, 4, frozenset())
            try:
                for _ in self.stream(prompt_ids, short):
                    pass
            except Exception as error:  # retry without the lean CPU step or without compiling, then give up
                if self.lean is not None or self.screen is not None:
                    self.cpu_note = f"transformers layers and head (the lean CPU step failed: " \
                                    f"{type(error).__name__}: {first_line(error)})"
                    self.lean = self.screen = None
                    for _ in self.stream(prompt_ids, short):
                        pass
                    continue
                if not self.compile_step:
                    raise
                self.compile_error = f"{type(error).__name__}: {first_line(error)}"
                self.compile_step = False
                self._forward_step = self._scores
                self.recorded.clear()
                self.pool = None
                if self.graphs_enabled:
                    torch.cuda.synchronize(self.device)
                for _ in self.stream(prompt_ids, short):
                    pass

    def cpu_step(self) -> str:
        """What an eager CPU step runs, and what it falls back to and why (the plan shows it)."""
        return cpu_step.describe(self.lean, self.screen, self.cpu_note)

    def describe(self) -> str:
        if not self.graphs_enabled:
            step = self.cpu_step()
            return "own decode loop, eager" + (f" ({step})" if step else "")
        how = "compiled forward" if self.compile_step else "eager forward"
        return f"own decode loop, one CUDA graph per token ({how})"


_decoders: weakref.WeakKeyDictionary[Any, GraphDecoder] = weakref.WeakKeyDictionary()


def attach(model: Any, decoder: GraphDecoder) -> None:
    """Make ``stream_token_ids`` decode ``model`` with ``decoder``."""
    _decoders[model] = decoder


def detach(model: Any) -> None:
    _decoders.pop(model, None)


def decoder_for(model: Any) -> GraphDecoder | None:
    """The decoder attached to ``model``, or None (then ``generate`` decodes it)."""
    try:
        return _decoders.get(model)
    except TypeError:  # an object that cannot be weakly referenced: never attached
        return None
