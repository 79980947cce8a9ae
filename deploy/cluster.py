"""A local cluster: Redis, the MongoDB server, N Playhouse instances and nginx in front.

``python -m deploy.cluster [-n N]`` (``make cluster``) starts everything on free
loopback ports, prints the URL and stops it all on Ctrl-C. Tests use
:class:`Cluster` directly to kill, drain and restart its parts.

nginx runs unprivileged from ``deploy/nginx.conf`` itself, with the lines marked
``cluster:`` rewritten for a temporary prefix, so the tested config is the
shipped one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["Cluster", "Instance", "free_port", "render_nginx_conf"]

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``check`` until true, or raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def render_nginx_conf(
    *, listen: int, upstreams: list[int], prefix: Path, static: Path, template: Path = NGINX_CONF
) -> str:
    """``deploy/nginx.conf`` with its ``cluster:`` lines rewritten for a local run."""
    pool = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=3 fail_timeout=1s;" for port in upstreams
    )
    replacements = {
        "pid": f"pid {prefix / 'nginx.pid'};",
        "error_log": f"error_log {prefix / 'error.log'} warn;",
        "mime": "include /etc/nginx/mime.types;",
        "access_log": f"access_log {prefix / 'access.log'};",
        "listen": f"listen 127.0.0.1:{listen};",
        "static": f"alias {static}/;",
    }
    lines: list[str] = []
    upstream_done = False
    for line in template.read_text().splitlines():
        marker = re.search(r"#\s*cluster:(\w+)\s*$", line)
        if marker is None:
            lines.append(line)
            continue
        name = marker.group(1)
        if name == "upstream":
            if not upstream_done:
                lines.append(pool)
                upstream_done = True
            continue
        indent = line[: len(line) - len(line.lstrip())]
        lines.append(indent + replacements[name])
    # Unprivileged: temp files under the prefix, and stay in the foreground.
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = "\n".join(lines) + "\n"
    text = text.replace("http {\n", "http {\n" + temp + "\n", 1)
    return "daemon off;\n" + text


class Instance:
    """One ``server.py`` subprocess on a fixed port (restartable on that port)."""

    def __init__(self, name: str, port: int, env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.port = port
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Instance:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is running")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "server.py"),
                    "--port",
                    str(self.port),
                    "--host",
                    "127.0.0.1",
                    "--instance-id",
                    self.name,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, timeout=20, what=f"{self.name} /healthz")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        return http_ok(f"{self.url}/healthz")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, *, timeout: float = 30.0) -> int:
        """SIGTERM (graceful drain) and wait for the exit code."""
        proc = self.proc
        assert proc is not None, f"{self.name} is not running"
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        finally:
            self.proc = None if proc.poll() is not None else proc

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Cluster:
    """Redis + MongoDB server + ``instances`` Playhouse processes + nginx, on loopback.

    ``mongo_url`` (or ``MONGODB_URL``) uses that MongoDB instead of starting nx-27017;
    ``env`` adds settings (``PLAYHOUSE_*``) for every instance.
    """

    def __init__(
        self,
        instances: int = 2,
        *,
        workdir: Path | None = None,
        env: Mapping[str, str] | None = None,
        mongo_url: str | None = None,
    ) -> None:
        self.size = instances
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="playhouse-cluster-"))
        self.extra_env = dict(env or {})
        self.external_mongo = (
            mongo_url if mongo_url is not None else os.environ.get("MONGODB_URL", "")
        )
        self.redis_port = free_port()
        self.mongo_port = free_port()
        self.nginx_port = free_port()
        self.instances: list[Instance] = []
        self._redis: subprocess.Popen[bytes] | None = None
        self._mongo: subprocess.Popen[bytes] | None = None
        self._nginx: subprocess.Popen[bytes] | None = None

    # -- URLs --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """nginx: where browsers go."""
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def mongo_url(self) -> str:
        return self.external_mongo or f"mongodb://127.0.0.1:{self.mongo_port}/"

    # -- whole cluster -----------------------------------------------------------------

    def start(self) -> Cluster:
        try:
            self.start_redis()
            self.start_mongo()
            env = self.instance_env()
            for n in range(self.size):
                name = f"instance-{n + 1}"
                log = self.workdir / f"{name}.log"
                self.instances.append(Instance(name, free_port(), env, log).start())
            self.start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything started (instances drain first), never raising."""
        for instance in self.instances:
            if instance.running:
                with contextlib.suppress(Exception):
                    instance.terminate(timeout=15)
                instance.kill()
        for attr in ("_nginx", "_redis", "_mongo"):
            proc = getattr(self, attr)
            setattr(self, attr, None)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def instance_env(self) -> dict[str, str]:
        """What every instance shares: Redis, MongoDB, one cookie secret, proxy headers."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PLAYHOUSE_", "MONGODB_URL"))
        }
        env.update(
            {
                "PLAYHOUSE_REDIS_URL": self.redis_url,
                "PLAYHOUSE_MONGODB_URL": self.mongo_url,
                "PLAYHOUSE_MONGODB_DATABASE": f"cluster_{secrets.token_hex(4)}",
                "PLAYHOUSE_SERVER_COOKIE_SECRET": secrets.token_urlsafe(32),
                "PLAYHOUSE_SERVER_XHEADERS": "true",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        return env

    # -- Redis -------------------------------------------------------------------------

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self._redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _accepts(self.redis_port), timeout=10, what="redis-server")

    def stop_redis(self) -> None:
        proc, self._redis = self._redis, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)

    # -- MongoDB -----------------------------------------------------------------------

    def start_mongo(self) -> None:
        if self.external_mongo:
            return
        binary = str(Path(sys.executable).with_name("nx-27017"))
        data = self.workdir / "mongo"  # on disk: a restart keeps the data, as mongod would
        data.mkdir(exist_ok=True)
        self._mongo = subprocess.Popen(
            [
                *(binary, "--host", "127.0.0.1", "-p", str(self.mongo_port)),
                *("--data-dir", str(data)),
                *("--pid-file", str(self.workdir / "nx.pid")),
                *("--log-file", str(self.workdir / "nx.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _accepts(self.mongo_port), timeout=15, what="nx-27017")

    def stop_mongo(self) -> None:
        proc, self._mongo = self._mongo, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)

    # -- nginx -------------------------------------------------------------------------

    def start_nginx(self) -> None:
        binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            render_nginx_conf(
                listen=self.nginx_port,
                upstreams=[i.port for i in self.instances],
                prefix=self.workdir,
                static=ROOT / "static",
            )
        )
        self._nginx = subprocess.Popen(
            [
                binary,
                "-p",
                str(self.workdir),
                "-c",
                str(conf),
                "-e",
                str(self.workdir / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: http_ok(f"{self.url}/healthz"), timeout=15, what="nginx → /healthz")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make cluster", description="Redis, MongoDB, N instances and nginx on loopback."
    )
    parser.add_argument("-n", "--instances", type=int, default=2, help="instances (default 2)")
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    cluster = Cluster(args.instances)
    try:
        cluster.start()
    except (RuntimeError, TimeoutError) as error:
        print(f"cluster: error: {error}", file=sys.stderr)
        return 2
    print(f"Playhouse cluster of {args.instances} behind nginx: {cluster.url}/")
    for instance in cluster.instances:
        print(f"  {instance.name}: {instance.url} (log {instance.log})")
    print(f"  redis: {cluster.redis_url}  mongodb: {cluster.mongo_url}  files: {cluster.workdir}")
    print("Ctrl-C stops everything.", flush=True)
    stopped = False

    def request_stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stopped:
            time.sleep(0.5)
            for instance in cluster.instances:
                if not instance.running:
                    print(f"cluster: {instance.name} exited:\n{instance.tail()}", file=sys.stderr)
                    stopped = True
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping…", flush=True)
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
