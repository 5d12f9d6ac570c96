"""``painterly web``: the whole of painterly in a browser (the optional extra ``[web]``).

A sibling of the command line over the jobs layer: :func:`create_app` builds the Starlette
app (``app``: the routes; ``worker``: the queue and its thread; ``store``: uploads and
history; ``security``: the guard in front of it all) and :func:`serve` runs it with uvicorn
on 127.0.0.1. ``import painterly`` never imports this package.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import webbrowser
from typing import Callable

from ..errors import ConfigError
from .app import WebConfig, create_app

log = logging.getLogger("painterly.web")
__all__ = ["WebConfig", "create_app", "serve"]


def serve(config: WebConfig = WebConfig(), open_browser: bool = False,
          announce: Callable[[str], None] = print) -> None:
    """Bind, build the app, print its address (with the token) once it answers, and serve
    until interrupted."""
    import uvicorn

    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    app = create_app(config, port)
    shown = "127.0.0.1" if _is_any(config.host) else config.host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/?token={app.state.token}"
    if not _is_loopback(config.host):
        log.warning("listening on %s: anyone who can reach this machine and has the address "
                    "with its token can upload pictures and run jobs (reach it by a name "
                    "given to `allowed_hosts`)", config.host)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            announce(f"painterly web: {url}")
            if open_browser:
                webbrowser.open(url)

    server = Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio",
                                   timeout_graceful_shutdown=5))
    server.run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})",
                          "pass another `port` (0: any free port)") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _is_any(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
