"""``server.py`` with ``mongodb.url`` empty: the embedded nx-27017 child, its data, its end."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import psutil

from tests.support import ROOT, clean_env, free_port, server_command


def start_server(port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = clean_env(PLAYHOUSE_MONGODB_DATA_DIR=str(data_dir), PLAYHOUSE_SECURITY_BCRYPT_ROUNDS="4")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            server_command("--port", str(port)), cwd=ROOT, env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server did not become ready:\n{log.read_text()}")


def api(port: int, path: str, body: dict[str, str]) -> int:
    """POST JSON with a fresh XSRF cookie; returns the status."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"http://127.0.0.1:{port}/api/xsrf", timeout=5) as reply:
        token = json.loads(reply.read())["xsrf"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"X-XSRFToken": token, "Content-Type": "application/json"},
    )
    try:
        with opener.open(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def embedded_children(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return [c for c in psutil.Process(proc.pid).children() if "nx-27017" in " ".join(c.cmdline())]


def wait_gone(processes: list[psutil.Process], timeout: float = 10) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"still running: {alive}"


def test_data_survives_a_restart_and_the_child_stops_with_the_server(tmp_path: Path) -> None:
    data, log, port = tmp_path / "mongo", tmp_path / "server.log", free_port()
    server = start_server(port, data, log)
    children = embedded_children(server)
    assert len(children) == 1
    credentials = {"username": "keeper", "password": "long enough password"}
    assert api(port, "/api/register", credentials) == 201
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    wait_gone(children)
    assert any(data.iterdir()), "the embedded database wrote nothing under its data dir"

    server = start_server(port, data, log)
    try:
        assert api(port, "/api/login", credentials) == 200
        assert api(port, "/api/register", credentials) == 409
    finally:
        children = embedded_children(server)
        server.kill()  # even SIGKILL must not orphan the database child
        server.wait(timeout=10)
    wait_gone(children)
