"""`carexpert serve` as a real process on a free port, driven by the official `openai` client and raw HTTP.

One server for the module (the tiny model loads once): bound to 0.0.0.0 with an API key,
a queue of one (so a second request while one streams gets 503), a 4 KiB body cap and a
600-token cap. The model folder is the tiny test model with EOS suppressed in its
generation config, so an answer only ends at max_tokens or when its client goes away.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from training_support import wait_for

from carexpert.serve.status import read_server_status

KEY = secrets.token_urlsafe(24)
QUESTION = [{"role": "user", "content": "How much torque does the Camry make?"}]


def never_stopping_model(tiny_model_dir: Path, target: Path) -> Path:
    """A copy of the tiny model whose generation config suppresses EOS: answers run to max_tokens."""
    shutil.copytree(tiny_model_dir, target)
    generation_file = target / "generation_config.json"
    generation = json.loads(generation_file.read_text())
    tokenizer = json.loads((target / "tokenizer_config.json").read_text())
    special = json.loads((target / "tokenizer.json").read_text())["added_tokens"]
    ids = {token["content"]: token["id"] for token in special}
    generation["suppress_tokens"] = sorted({ids[tokenizer.get(name) or default]
                                            for name, default in (("eos_token", "</s>"), ("bos_token", "<s>"),
                                                                  ("pad_token", "<pad>"))})
    generation_file.write_text(json.dumps(generation))
    return target


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "carexpert.cli.main", "serve", *args]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CAREXPERT_API_KEY"}
    return {**env, "CAREXPERT_CONFIG": "", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("serve")
    model = never_stopping_model(tiny_model_dir, root / "model")
    config = root / "carexpert.toml"
    config.write_text(f'[model]\nbase_model = "{model}"\nquantization = "none"\n\n[train]\nruns_dir = "{root / "runs"}"\n\n'
                      '[chat]\ntemperature = 0.0\nmax_new_tokens = 16\n\n[retrieval]\nenabled = false\n')
    state = root / "state"
    log = open(root / "server.log", "wb")  # noqa: SIM115 - the server process writes to it until it is stopped
    proc = subprocess.Popen(serve_command("--base", "--host", "0.0.0.0", "--port", "0", "--api-key", KEY,
                                          "--max-queue", "1", "--max-tokens", "600", "--max-body-kb", "4",
                                          "--state-dir", str(state), "--config", str(config)),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env(),
                            cwd=root)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError("the server exited:\n" + (root / "server.log").read_text())
        status = read_server_status(state)
        return status is not None and status.state == "ready"

    try:
        wait_for(ready, timeout=120, what="the server to load the model")
        status = read_server_status(state)
        yield {"url": status.url, "state": state, "proc": proc, "log": root / "server.log"}
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        log.close()


def status(server):
    return read_server_status(server["state"])


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(server, body, **kwargs) -> httpx.Response:
    return httpx.post(server["url"] + "/chat/completions", json=body, headers=auth(), timeout=60, **kwargs)


def idle(server) -> None:
    wait_for(lambda: status(server).running == 0 and status(server).waiting == 0, timeout=60, what="an idle queue")


def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server["url"], api_key=KEY, max_retries=0, timeout=60)


def test_openai_client_lists_the_models(server):
    assert [model.id for model in client(server).models.list()] == ["base"]
    assert client(server).models.retrieve("base").id == "base"


def test_openai_client_chat_non_streamed_and_streamed_agree(server):
    openai = client(server)
    answer = openai.chat.completions.create(model="base", messages=QUESTION, max_tokens=8, temperature=0)
    choice = answer.choices[0]
    assert choice.finish_reason == "length" and choice.message.role == "assistant" and choice.message.content
    assert answer.usage.completion_tokens == 8 and answer.usage.prompt_tokens > 10
    assert answer.model_extra["sources"] == []  # retrieval is off in this server's config

    chunks = list(openai.chat.completions.create(model="base", messages=QUESTION, max_tokens=8, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert len({chunk.id for chunk in chunks}) == 1
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == choice.message.content  # greedy: the same answer either way
    finals = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].usage.completion_tokens == 8
    wait_for(lambda: status(server).completed >= 2, timeout=30, what="status.json to count both answers")


def test_multi_turn_messages_and_sampling_parameters(server):
    messages = [{"role": "system", "content": "You are terse."}, *QUESTION,
                {"role": "assistant", "content": "About 184 lb-ft."}, {"role": "user", "content": "And horsepower?"}]
    answer = client(server).chat.completions.create(model="base", messages=messages, max_tokens=5, temperature=0.7,
                                                    top_p=0.9, seed=7, stop=["\n\n"])
    again = client(server).chat.completions.create(model="base", messages=messages, max_tokens=5, temperature=0.7,
                                                   top_p=0.9, seed=7, stop=["\n\n"])
    without_history = client(server).chat.completions.create(
        model="base", messages=[messages[0], messages[-1]], max_tokens=1)
    assert answer.usage.prompt_tokens > without_history.usage.prompt_tokens + 10  # the earlier turn reached the prompt
    assert answer.choices[0].message.content == again.choices[0].message.content  # same seed, same sample


def test_a_client_that_disconnects_stops_its_generation(server):
    idle(server)
    before = status(server)
    body = {"model": "base", "messages": QUESTION, "max_tokens": 600, "stream": True}
    with httpx.stream("POST", server["url"] + "/chat/completions", json=body, headers=auth(), timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break  # the model is writing: hang up
    wait_for(lambda: status(server).cancelled == before.cancelled + 1 and status(server).running == 0, timeout=60,
             what="the server to notice the disconnect")
    generated = status(server).tokens - before.tokens
    assert 0 < generated < 100, f"{generated} of 600 tokens were generated after the client left"


def test_a_full_queue_answers_503_with_retry_after(server):
    idle(server)
    body = {"model": "base", "messages": QUESTION, "max_tokens": 600, "stream": True}
    with httpx.stream("POST", server["url"] + "/chat/completions", json=body, headers=auth(), timeout=60) as first:
        assert first.status_code == 200
        lines = first.iter_lines()  # kept: dropping a half-read httpx stream closes the connection
        next(line for line in lines if line.startswith("data: "))
        busy = post(server, {"model": "base", "messages": QUESTION, "max_tokens": 4})
        assert busy.status_code == 503
        assert int(busy.headers["Retry-After"]) >= 1
        assert busy.json()["error"]["code"] == "queue_full"
    idle(server)
    wait_for(lambda: status(server).rejected >= 1, timeout=30, what="status.json to count the 503")
    assert post(server, {"model": "base", "messages": QUESTION, "max_tokens": 2}).status_code == 200


def test_the_api_key_is_required_on_a_non_local_bind(server):
    for headers in ({}, auth("wrong-key-0123456789"), {"Authorization": KEY}):
        response = httpx.post(server["url"] + "/chat/completions", json={"model": "base", "messages": QUESTION},
                              headers=headers, timeout=30)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server["url"] + "/models", timeout=30).status_code == 401
    assert httpx.get(server["url"].removesuffix("/v1") + "/health", timeout=30).json()["status"] == "ok"
    assert status(server).api_key_required


@pytest.mark.parametrize("body, param", [
    ({"model": "nope", "messages": QUESTION}, "model"),
    ({"model": "../../etc/passwd", "messages": QUESTION}, "model"),
    ({"model": "base", "messages": QUESTION, "temperature": 3}, "temperature"),
    ({"model": "base", "messages": QUESTION, "top_p": -0.5}, "top_p"),
    ({"model": "base", "messages": QUESTION, "max_tokens": 601}, "max_tokens"),
    ({"model": "base", "messages": QUESTION, "max_tokens": 0}, "max_tokens"),
    ({"model": "base", "messages": QUESTION, "n": 2}, "n"),
    ({"model": "base", "messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
    ({"model": "base", "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({"model": "base"}, "messages"),
    ([1, 2], None),
])
def test_bad_requests_get_openai_style_400s(server, body, param):
    response = post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] and error["param"] == param
    assert "Traceback" not in response.text


def test_malformed_json_and_an_oversized_body(server):
    url, headers = server["url"] + "/chat/completions", {**auth(), "Content-Type": "application/json"}
    malformed = httpx.post(url, content=b'{"model": "base", "messages": [', headers=headers, timeout=30)
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]["message"]
    huge = [{"role": "user", "content": "torque " * 1000}]
    oversized = httpx.post(url, json={"model": "base", "messages": huge}, headers=auth(), timeout=30)
    assert oversized.status_code == 413 and "larger than 4096 bytes" in oversized.json()["error"]["message"]

    def chunked():
        yield b'{"model": "base", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}]}'

    streamed = httpx.post(url, content=chunked(), headers=headers, timeout=30)  # no Content-Length to trust
    assert streamed.status_code == 413
    form = httpx.post(url, content=b"model=base", headers={**auth(), "Content-Type": "text/plain"}, timeout=30)
    assert form.status_code == 415
    missing = httpx.get(server["url"] + "/nothing-here", headers=auth(), timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_status_and_stop_commands(server):
    shown = subprocess.run(serve_command("--status", "--state-dir", str(server["state"])), capture_output=True,
                           text=True, env=child_env(), timeout=60)
    assert shown.returncode == 0 and "ready" in shown.stdout and server["url"] in shown.stdout
    stopped = subprocess.run(serve_command("--stop", "--state-dir", str(server["state"])), capture_output=True,
                             text=True, env=child_env(), timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert server["proc"].wait(30) == 0
    assert status(server).state == "stopped" and not status(server).live
    assert "Traceback" not in server["log"].read_text()


def test_a_non_local_bind_without_a_key_refuses_to_start(tmp_path):
    done = subprocess.run(serve_command("--base", "--host", "0.0.0.0", "--state-dir", str(tmp_path)),
                          capture_output=True, text=True, env=child_env(), timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "without an API key" in done.stderr and "--api-key" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "status.json").exists()
