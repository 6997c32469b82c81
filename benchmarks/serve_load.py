"""`carexpert serve` under load: one client, N concurrent streaming clients, a burst against a full queue.

Starts a real server process (``carexpert serve --base``, the configured model: the embedded
Gemma 3 270M by default; retrieval off so the figures are the model's), then:

1. single: ``--repeats`` streaming answers one after another; per answer the time to first
   token and the streaming rate after it (completion tokens from ``usage``);
2. concurrent: ``--clients`` streaming clients started together; every one must finish;
   aggregate tokens/s = all completion tokens / wall time from the first request to the last end;
3. burst: ``--burst`` non-streamed requests fired at once against a queue of ``--queue``; every
   request must get a 200 or a 503 (nothing else), the server must still answer ``/health``,
   and its memory (RSS, and GPU memory through NVML) is read idle before the load and again
   once the queue is empty after it.

Sampling: greedy with EOS allowed, ``--max-tokens`` per answer; token counts are recorded.

    python benchmarks/serve_load.py --out benchmarks/results/h200-serve/serve_load.json
    python benchmarks/serve_load.py --model /path/to/tiny --clients 2 --burst 20 --queue 4 --max-tokens 8   # CPU check
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carexpert.serve.status import read_server_status

QUESTION = "Compare the Toyota Camry and the Honda Accord for a family of four: space, economy, reliability."


def start_server(work: Path, model: str | None, queue: int, max_tokens: int) -> tuple[subprocess.Popen, str]:
    config = work / "carexpert.toml"
    lines = ['[model]', f'base_model = "{model}"' if model else "", "", "[retrieval]", "enabled = false", "",
             "[chat]", "temperature = 0.0", f"max_new_tokens = {max_tokens}", ""]
    config.write_text("\n".join(lines), encoding="utf-8")
    log = open(work / "server.log", "wb")  # noqa: SIM115 - the server process writes to it until it is stopped
    proc = subprocess.Popen([sys.executable, "-m", "carexpert.cli.main", "serve", "--base", "--port", "0",
                             "--max-queue", str(queue), "--max-tokens", str(max(max_tokens, 16)),
                             "--state-dir", str(work / "state"), "--config", str(config)],
                            cwd=work, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "CAREXPERT_CONFIG": "",
                                 "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    deadline = time.monotonic() + 900  # the compiled warm-up on a GPU takes a while
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited:\n" + (work / "server.log").read_text())
        status = read_server_status(work / "state")
        if status is not None and status.state == "ready":
            return proc, status.url
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not become ready in 15 minutes")


def memory(pid: int) -> dict:
    """The server's resident memory and, on a GPU, the GPU memory its process holds (NVML)."""
    import psutil

    result = {"rss_mib": psutil.Process(pid).memory_info().rss / 2**20, "gpu_mib": None}
    try:
        import pynvml

        pynvml.nvmlInit()
        used = 0
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == pid and process.usedGpuMemory:
                    used += process.usedGpuMemory
        result["gpu_mib"] = used / 2**20
    except Exception:  # noqa: BLE001 - no NVML (a CPU machine): RSS only
        pass
    return result


def stream_one(url: str, max_tokens: int) -> dict:
    body = {"model": "base", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = last = None
    usage, finish = None, None
    with httpx.stream("POST", url + "/chat/completions", json=body, timeout=600) as response:
        if response.status_code != 200:
            return {"status": response.status_code}
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage = data["usage"]
            for choice in data.get("choices", []):
                if choice["delta"].get("content"):
                    first = first or time.perf_counter()
                    last = time.perf_counter()
                finish = choice.get("finish_reason") or finish
    tokens = usage["completion_tokens"] if usage else 0
    rate = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else None
    return {"status": 200, "tokens": tokens, "ttft_s": (first - start) if first else None, "tokens_per_s": rate,
            "finish_reason": finish, "start": start, "end": time.perf_counter()}


def post_one(url: str, max_tokens: int) -> int:
    body = {"model": "base", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": max_tokens}
    try:
        return httpx.post(url + "/chat/completions", json=body, timeout=900).status_code
    except httpx.HTTPError as error:
        return -1 if not isinstance(error, httpx.TimeoutException) else -2


def wait_idle(state: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_server_status(state)
        if status and status.running == 0 and status.waiting == 0:
            return
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="base model (default: the config default, the embedded model)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--queue", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--burst-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        work = Path(tmp)
        proc, url = start_server(work, args.model, args.queue, args.max_tokens)
        result: dict = {"url": url, "args": {k: str(v) for k, v in vars(args).items()}}
        try:
            stream_one(url, 8)  # untimed: first answer after loading
            time.sleep(2)
            result["memory_idle"] = memory(proc.pid)
            single = [stream_one(url, args.max_tokens) for _ in range(args.repeats)]
            result["single"] = {"answers": single,
                                "tokens_per_s": statistics.median(a["tokens_per_s"] for a in single if a.get("tokens_per_s")),
                                "ttft_ms": 1000 * statistics.median(a["ttft_s"] for a in single if a.get("ttft_s"))}

            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                began = time.perf_counter()
                answers = list(pool.map(lambda _: stream_one(url, args.max_tokens), range(args.clients)))
            ended = max(a.get("end", began) for a in answers)
            total = sum(a.get("tokens", 0) for a in answers)
            result["concurrent"] = {"clients": args.clients, "answers": answers,
                                    "all_completed": all(a["status"] == 200 and a.get("finish_reason") for a in answers),
                                    "aggregate_tokens_per_s": total / (ended - began), "wall_s": ended - began,
                                    "tokens": total}

            with concurrent.futures.ThreadPoolExecutor(args.burst) as pool:
                codes = list(pool.map(lambda _: post_one(url, args.burst_tokens), range(args.burst)))
            result["burst"] = {"requests": args.burst, "queue": args.queue,
                               "answered_200": codes.count(200), "answered_503": codes.count(503),
                               "other": sorted({c for c in codes if c not in (200, 503)}),
                               "server_alive": proc.poll() is None and
                               httpx.get(url.removesuffix("/v1") + "/health", timeout=30).status_code == 200}
            wait_idle(work / "state")
            time.sleep(2)
            result["memory_after_burst"] = memory(proc.pid)
            status = read_server_status(work / "state")
            result["server_counters"] = status.to_dict() if status else None
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            result["server_exit"] = proc.returncode
            result["server_log_tail"] = (work / "server.log").read_text(errors="replace").splitlines()[-20:]

    summary = {"single_tokens_per_s": result["single"]["tokens_per_s"], "single_ttft_ms": result["single"]["ttft_ms"],
               "concurrent_clients": args.clients, "concurrent_all_completed": result["concurrent"]["all_completed"],
               "concurrent_aggregate_tokens_per_s": result["concurrent"]["aggregate_tokens_per_s"],
               "burst": {k: v for k, v in result["burst"].items()},
               "memory_idle": result["memory_idle"], "memory_after_burst": result["memory_after_burst"]}
    result["summary"] = summary
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    ok = summary["concurrent_all_completed"] and not result["burst"]["other"] and result["burst"]["server_alive"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
