"""Running the studio: bind a socket (port 0 = a free one), serve with uvicorn.

:class:`StudioServer` runs in the foreground (``restyle studio``) or in a background
thread (tests, notebooks)::

    with StudioServer(StudioConfig(data_dir="studio-data")) as server:
        print(server.url)
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

from ..backbone import cache_dir
from ..errors import RestyleError
from ..params import ArgumentParser
from .app import StudioConfig, create_app
from .uploads import Limits


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; a clear RestyleError when the address is taken or invalid."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise RestyleError(f"cannot listen on {host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise RestyleError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class StudioServer:
    """A studio server on ``host:port`` with the given config."""

    def __init__(self, config: StudioConfig, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning"):
        import uvicorn

        self.config = config
        self.app = create_app(config)
        self.sock = bind(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self._uvicorn = uvicorn.Server(uvicorn.Config(
            self.app, log_level=log_level, access_log=log_level in ("info", "debug"),
            timeout_graceful_shutdown=5, lifespan="on"))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def manager(self):
        return self.app.state.manager

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C / SIGTERM (uvicorn stops gracefully, then
        re-raises the signal: Ctrl-C is the normal way to stop, not an error)."""
        try:
            self._uvicorn.run(sockets=[self.sock])
        except KeyboardInterrupt:
            pass

    def start(self, timeout: float = 30.0) -> "StudioServer":
        """Serve in a background thread; returns once the server answers."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self.sock]},
                                        name="restyle-studio-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the studio server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.sock.close()

    def __enter__(self) -> "StudioServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def setup_logging() -> None:
    logging.getLogger("restyle.studio").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="restyle studio: %(message)s", level=logging.WARNING)


def main(argv=None) -> int:
    """``restyle studio``: serve the studio until Ctrl-C."""
    parser = ArgumentParser(
        prog="restyle studio",
        description="Serve the restyle studio: a web page with live previews for every "
                    "method, and its HTTP API (OpenAPI at /openapi.json). Listens on "
                    "127.0.0.1 by default and opens no browser: open the printed URL.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="job store: uploads and results, kept across restarts "
                             "(default: ~/.cache/restyle/studio)")
    parser.add_argument("--workers", type=int, default=1,
                        help="jobs run at the same time (default 1; each uses every core)")
    parser.add_argument("--queue-size", type=int, default=8, metavar="N",
                        help="jobs that may wait; more are refused with 429 (default 8)")
    parser.add_argument("--max-upload-mb", type=float, default=25.0, metavar="MB",
                        help="largest uploaded file (default 25)")
    parser.add_argument("--max-megapixels", type=float, default=40.0, metavar="MP",
                        help="largest uploaded image in megapixels (default 40)")
    parser.add_argument("--keep-jobs", type=int, default=500, metavar="N",
                        help="finished jobs kept on disk; the oldest go first (default 500)")
    parser.add_argument("--keep-mb", type=float, default=2048.0, metavar="MB",
                        help="disk space the kept jobs may take; the oldest go first "
                             "(default 2048)")
    parser.add_argument("--max-job-megapixels", type=float, default=16.8, metavar="MP",
                        help="largest output of a job in megapixels: its size squared, or "
                             "W x H (default 16.8, 4096 x 4096)")
    parser.add_argument("--max-memory-gb", type=float, default=0.0, metavar="GB",
                        help="memory the running jobs may take together, by their estimates; "
                             "larger jobs are refused (default: 3/4 of this machine's RAM)")
    parser.add_argument("--allow-server-paths", action="store_true",
                        help="accept file paths and URLs on this machine in parameters (init, "
                             "weights, decoder, model); only for trusted clients")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    ns = parser.parse_args(argv)
    for flag, value, low in (("--port", ns.port, 0), ("--workers", ns.workers, 1),
                             ("--queue-size", ns.queue_size, 1), ("--keep-jobs", ns.keep_jobs, 1)):
        if value < low:
            raise RestyleError(f"{flag} must be at least {low}, not {value}")
    if ns.port > 65535:
        raise RestyleError(f"--port must be at most 65535, not {ns.port}")
    if not ns.max_upload_mb > 0 or not ns.max_megapixels > 0:
        raise RestyleError("--max-upload-mb and --max-megapixels must be positive")
    if not ns.keep_mb > 0 or not ns.max_job_megapixels > 0 or not ns.max_memory_gb >= 0:
        raise RestyleError("--keep-mb and --max-job-megapixels must be positive, "
                           "--max-memory-gb at least 0")
    data_dir = Path(ns.data_dir).expanduser() if ns.data_dir else cache_dir() / "studio"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RestyleError(f"cannot use --data-dir {data_dir}: {e.strerror or e}") from None
    if not data_dir.is_dir():
        raise RestyleError(f"--data-dir {data_dir} is not a folder")
    file_bytes = int(ns.max_upload_mb * 2**20)
    limits = Limits(max_file_bytes=file_bytes,
                    max_request_bytes=max(Limits().max_request_bytes, 3 * file_bytes),
                    max_pixels=int(ns.max_megapixels * 1e6),
                    max_job_pixels=int(ns.max_job_megapixels * 1e6))
    loopback = is_loopback(ns.host)
    config = StudioConfig(data_dir=data_dir, workers=ns.workers, queue_size=ns.queue_size,
                          limits=limits, allow_server_paths=ns.allow_server_paths,
                          keep_jobs=ns.keep_jobs, keep_bytes=int(ns.keep_mb * 2**20),
                          memory_budget=int(ns.max_memory_gb * 2**30) or None,
                          loopback_only=loopback)
    setup_logging()
    server = StudioServer(config, ns.host, ns.port, log_level="info" if ns.verbose else "warning")
    print(f"restyle studio: {server.url}", flush=True)
    print(f"  jobs and results in {data_dir}; {ns.workers} worker(s), queue of "
          f"{ns.queue_size}; Ctrl-C stops", flush=True)
    if not loopback:
        print("  warning: listening beyond this machine: anyone who can reach it can run jobs",
              file=sys.stderr, flush=True)
    if ns.allow_server_paths:
        print("  warning: --allow-server-paths: clients may make the server read its files "
              "and fetch URLs", file=sys.stderr, flush=True)
    server.serve_forever()
    print("restyle studio: stopped", flush=True)
    if server.manager.busy():
        # a job still inside a pass that cannot be interrupted: its thread would be torn
        # down mid-computation at interpreter exit (an abort); its record says interrupted
        sys.stderr.flush()
        os._exit(0)
    return 0
