"""``painterly web``: flags into a WebConfig, then the server (the optional extra [web])."""
from __future__ import annotations

from ..errors import ConfigError
from ..image import parse_bytes


def add_parsers(sub) -> None:
    p = sub.add_parser("web", help="the web app: every job in a browser, with a live preview",
                       description="Serve painterly's web app on this computer. It prints an "
                       "address with a secret token; open it in a browser.")
    p.add_argument("--port", type=int, default=8642, help="port (0: any free port; "
                   "default 8642)")
    p.add_argument("--listen", metavar="HOST", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; anything else exposes "
                   "your uploads and jobs to the network and logs a warning)")
    p.add_argument("--allow-host", metavar="NAME", action="append", default=[],
                   help="another name the page may be reached by (repeatable)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--home", metavar="DIR", help="folder for uploads and the history of "
                   "pictures (default ~/.local/share/painterly/web)")
    p.add_argument("--max-queue", type=int, default=8, help="jobs waiting at most (default 8)")
    p.add_argument("--per-client", type=int, default=8,
                   help="jobs one browser may have waiting (default 8)")
    p.add_argument("--max-upload", default="20MiB", help="largest picture accepted "
                   "(default 20MiB)")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        from ..web import WebConfig, serve
    except ImportError as exc:
        raise ConfigError("the web app needs its extra (starlette, uvicorn, websockets)",
                          "pip install 'painterly[web]'") from exc
    config = WebConfig(host=args.listen, port=args.port, home=args.home,
                       max_queue=args.max_queue, per_client=args.per_client,
                       max_upload_bytes=parse_bytes(args.max_upload),
                       allowed_hosts=tuple(args.allow_host))
    try:
        serve(config, open_browser=args.open, announce=lambda line: print(line, flush=True))
    except KeyboardInterrupt:   # Ctrl-C is how a server is stopped: not an error
        pass
    print("painterly web: stopped", flush=True)
    return 0
