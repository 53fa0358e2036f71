"""Run the console: the web application under uvicorn on its own thread, on loopback unless
told otherwise, over a coordinator that asks as this console's member."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from federation.coordination.coordinator import Coordinator
from federation.errors import ConfigError
from federation.services.console.app import build_app
from federation.services.console.core import Console
from federation.services.console.sessions import Sessions
from federation.services.console.users import Users
from federation.trust.identity import Identity, RegionDirectory
from federation.trust.manifest import Manifest

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass
class RunningConsole:
    server: uvicorn.Server
    thread: threading.Thread
    console: Console
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.console.coordinator.close()


def start_console(manifest: Manifest, identity: Identity, *, users_file: Path,
                  listen: str = "127.0.0.1:7480", region: RegionDirectory | None = None,
                  behind_tls_proxy: bool = False, city_timeout: float = 10.0,
                  sessions: Sessions | None = None) -> RunningConsole:
    """Serve the console of `identity`'s member. Off loopback only behind a TLS proxy (the
    console speaks plain HTTP; its cookies are then marked Secure)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host not in LOOPBACK and not behind_tls_proxy:
        raise ConfigError(f"the console listens on loopback only, not {host!r}, unless it is "
                          "behind a TLS proxy (--behind-tls-proxy)")
    users = Users(users_file)
    if not users.names():
        raise ConfigError(f"{users_file}: no users; add one with `cityfed console add-user`")
    coordinator = Coordinator(manifest, identity, city_timeout=city_timeout)
    console = Console(coordinator, region)
    app = build_app(console, users, sessions=sessions, secure_cookies=behind_tls_proxy)
    config = uvicorn.Config(app, host=host, port=int(port), log_level="warning",
                            lifespan="off", server_header=False, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            coordinator.close()
            raise OSError(f"the console cannot listen on {listen}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    log.info("console of %s listening on %s:%d", identity.member_id, host, bound)
    return RunningConsole(server, thread, console, host, bound)
