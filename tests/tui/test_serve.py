"""``carexpert-tui --serve`` starts a textual-serve web server for the same app."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

from carexpert_tui.__main__ import parse_args, serve_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_each_browser_tab_runs_the_app_with_the_same_config_and_mode(tmp_path):
    command = serve_command(parse_args(["--serve", "--config", str(tmp_path / "my.toml"), "--mode", "train"]))
    assert command.endswith(f"-m carexpert_tui --config {tmp_path / 'my.toml'} --mode train")


def test_serve_answers_http_on_localhost_with_the_printed_token(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "carexpert_tui", "--serve", "--port", str(port)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = ""
        while not url:
            line = server.stdout.readline()
            assert line, "the server ended without printing its URL"
            url = next(iter(re.findall(r"http://localhost:\d+/\?token=\S+", line)), "")
        page = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not page:
            try:
                page = urllib.request.urlopen(url, timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
        assert "carexpert" in page and "<html" in page.lower()
    finally:
        server.terminate()
        server.wait(10)
