"""The web app: routes that translate HTTP into jobs and back, and the page's event stream.

Like the command line, it only translates: settings come from ``jobs.forms``, every job
runs through ``jobs.run_job`` in the worker, pictures are checked by ``image``'s readers,
and messages are the library's, with settings named as the form names them.

Routes (all behind ``security.Guard``)::

    GET    /                      the page (sets the token and session cookies)
    GET    /static/{name}         its script and style
    GET    /forms                 each kind's settings, defaults, choices and bounds
    POST   /uploads               a picture as the request body -> {id, width, height}
    POST   /uploads/styles/{name} a built-in painting as an upload -> the same
    GET    /styles                the built-in paintings: [{name, label}]
    GET    /styles/{name}         one of them (JPEG)
    POST   /settings              a painterly PNG as the body -> {kind, settings}
    GET    /jobs                  this session's jobs and the queue's length
    POST   /jobs                  {kind, uploads: [ids], settings, resume?} -> a job (429 if full)
    DELETE /jobs/{id}             abort: a running job stops, nothing is kept (409 if finished)
    POST   /jobs/{id}/interrupt   stop, keeping the picture so far (and a checkpoint)
    GET    /history               finished and interrupted pictures with their settings
    POST   /history/{id}/resume   continue an interrupted style job (its pictures, or others)
    DELETE /history/{id}          forget a picture
    GET    /outputs/{id}          a picture (``?download=1``: as an attachment)
    WS     /events                progress, previews and queue changes for this session
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from ..errors import ConfigError, PainterlyError
from ..image import ReadOptions, format_bytes
from .. import styles as builtin_styles
from ..jobs import Job, check_job, forms
from .security import Guard, cookie_names
from .store import ID, NotFound, Store, default_home, new_id
from .worker import Conflict, QueueFull, Task, Worker, for_people

log = logging.getLogger("painterly.web")
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
ROLES = {"style": ("photo", "painting"), "fast": ("photo", "painting"),
         "dream": ("picture",), "activations": ("picture",),
         "reconstruct": ("photo", "painting"), "features": ()}
MANY_PAINTINGS = ("style", "fast")      # kinds that blend several paintings
JSON_LIMIT = 64 * 2**10


@dataclass(frozen=True)
class WebConfig:
    """Every setting of ``painterly web``, with its default."""

    host: str = "127.0.0.1"               # the interface to listen on (loopback only)
    port: int = 8642                      # 0: any free port
    home: Optional[str] = None            # uploads and history; None = default_home()
    token: Optional[str] = None           # None: a new random token each launch
    max_queue: int = 8                    # jobs waiting (not counting the running one)
    per_client: int = 8                   # jobs one browser session may have waiting
    max_upload_bytes: int = 20 * 2**20    # one uploaded picture
    max_input_pixels: int = 50_000_000    # pixels of one uploaded picture (from its header)
    upload_ttl: float = 24 * 3600.0       # seconds an upload is kept
    allowed_hosts: tuple[str, ...] = ()   # more names the server may be reached by

    def __post_init__(self):
        for name in ("max_queue", "per_client", "max_upload_bytes", "max_input_pixels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"invalid `{name}`: {getattr(self, name)}", "a number ≥ 1")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"invalid `port`: {self.port}", "0 to 65535 (0: any free port)")


@dataclass
class Hub:
    """WebSocket subscribers by session; the worker thread publishes through the loop."""

    loop: Optional[asyncio.AbstractEventLoop] = None
    queues: dict[str, set] = field(default_factory=dict)

    def publish(self, session: Optional[str], message: dict) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._deliver, session, message)

    def _deliver(self, session: Optional[str], message: dict) -> None:
        targets = self.queues.values() if session is None else [self.queues.get(session, ())]
        for queues in targets:
            for queue in queues:
                if queue.full() and message["type"] == "preview":
                    continue            # a slow page skips previews, never the rest
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(message)


def create_app(config: WebConfig = WebConfig(), port: Optional[int] = None) -> Starlette:
    """The app for ``config``; ``port``: the one actually bound (when ``config.port`` is 0).
    ``app.state.token`` holds the token."""
    port = config.port if port is None else port
    token = config.token or secrets.token_urlsafe(24)
    reading = ReadOptions(max_input_pixels=config.max_input_pixels,
                          max_input_bytes=config.max_upload_bytes)
    store = Store(Path(config.home) if config.home else default_home(), config.upload_ttl,
                  reading)
    hub = Hub()
    worker = Worker(store, hub.publish, config.max_queue, config.per_client)
    web = Routes(config, store, worker, hub, token, port)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.loop = asyncio.get_running_loop()
        worker.start()
        yield
        worker.stop()

    app = Starlette(routes=web.routes(), lifespan=lifespan)
    app.state.token, app.state.store, app.state.worker = token, store, worker
    hosts = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]",
                                           config.host, *config.allowed_hosts)}
    origins = {f"http://{h}" for h in hosts}
    guarded = Guard(app, token, {h.lower() for h in hosts}, {o.lower() for o in origins}, port)
    guarded.state = app.state
    return guarded


class Routes:
    def __init__(self, config: WebConfig, store: Store, worker: Worker, hub: Hub, token: str,
                 port: int):
        self.config, self.store, self.worker, self.hub = config, store, worker, hub
        self.token = token
        self.token_cookie, self.session_cookie = cookie_names(port)

    def routes(self) -> list:
        return [Route("/", self.page), Route("/static/{name}", self.static),
                Route("/forms", self.forms), Route("/uploads", self.upload, methods=["POST"]),
                Route("/uploads/styles/{name}", self.upload_style, methods=["POST"]),
                Route("/styles", self.styles), Route("/styles/{name}", self.style_picture),
                Route("/settings", self.settings, methods=["POST"]),
                Route("/jobs", self.jobs, methods=["GET"]),
                Route("/jobs", self.submit, methods=["POST"]),
                Route("/jobs/{id}", self.abort, methods=["DELETE"]),
                Route("/jobs/{id}/interrupt", self.interrupt, methods=["POST"]),
                Route("/history", self.history),
                Route("/history/{id}/resume", self.resume, methods=["POST"]),
                Route("/history/{id}", self.forget, methods=["DELETE"]),
                Route("/outputs/{id}", self.output),
                WebSocketRoute("/events", self.events)]

    # -- the page -------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        html = _static_text("index.html").replace("{{token}}", self.token)
        response = Response(html, media_type="text/html; charset=utf-8",
                            headers={"cache-control": "no-store"})
        options = dict(httponly=True, samesite="strict", path="/")
        response.set_cookie(self.token_cookie, self.token, **options)
        if not _session(request, self.session_cookie):
            response.set_cookie(self.session_cookie, secrets.token_urlsafe(16), **options)
        return response

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return _error(404, "no such file")
        return Response(_static_text(name), media_type=STATIC[name])

    async def forms(self, request: Request) -> Response:
        kinds = {kind: {"inputs": ROLES[kind], "many_paintings": kind in MANY_PAINTINGS,
                        "settings": [asdict(s) for s in forms.describe(kind)]}
                 for kind in forms.FORM_KINDS}
        return JSONResponse({"kinds": kinds, "max_upload_bytes": self.config.max_upload_bytes})

    # -- uploads ------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        async def work():
            data = await _body(request, self.config.max_upload_bytes)
            try:
                upload = await asyncio.to_thread(self.store.add_upload, data)
            except PainterlyError as exc:
                raise self._for_the_page(exc) from exc
            return _uploaded(upload)
        return await _answer(work)

    def _for_the_page(self, exc: PainterlyError) -> PainterlyError:
        """A reader's hint names the command line's settings (`max_input_pixels`,
        `allow_truncated`); the page has none of them, so it says what a user can do."""
        if exc.exit_code == 4:
            exc.hint = (f"send a smaller picture: this server takes up to "
                        f"{format_bytes(self.config.max_upload_bytes)} and "
                        f"{self.config.max_input_pixels:,} pixels (painterly web --max-upload)")
        elif "`" in exc.hint:
            exc.hint = "re-export it as PNG or JPEG"
        return exc

    async def upload_style(self, request: Request) -> Response:
        """A built-in painting as an upload, so a job takes it like any other picture."""
        async def work():
            data = builtin_styles.path(request.path_params["name"]).read_bytes()
            upload = await asyncio.to_thread(self.store.add_upload, data)
            return _uploaded(upload)
        return await _answer(work)

    async def styles(self, request: Request) -> Response:
        return JSONResponse({"styles": [{"name": name, "label": builtin_styles.label(name)}
                                        for name in builtin_styles.names()]})

    async def style_picture(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in builtin_styles.names():      # only the shipped names reach a path
            return _error(404, "no such built-in painting")
        return FileResponse(builtin_styles.path(name), media_type="image/jpeg",
                            headers={"cache-control": "max-age=3600"})

    async def settings(self, request: Request) -> Response:
        async def work():
            data = await _body(request, self.config.max_upload_bytes)
            found = self.store.settings_of(data)
            if not found:
                raise ConfigError("this picture does not say how painterly made it",
                                  "drop a PNG that painterly wrote")
            return JSONResponse(found)
        return await _answer(work)

    # -- jobs ---------------------------------------------------------------------------

    async def jobs(self, request: Request) -> Response:
        return JSONResponse(self.worker.views(_session(request, self.session_cookie)))

    async def submit(self, request: Request) -> Response:
        async def work():
            body = await _json(request)
            task = self._task(body, _session(request, self.session_cookie))
            self.worker.submit(task)
            return JSONResponse(task.view(), 202)
        return await _answer(work)

    def _task(self, body: dict, session: str, resume: Optional[str] = None,
              title: str = "") -> Task:
        kind = body.get("kind")
        config = forms.read(kind, body.get("settings") or {})
        uploads = body.get("uploads") or []
        if not isinstance(uploads, list) or not all(isinstance(u, str) for u in uploads):
            raise ConfigError("invalid `uploads`", "a list of upload ids")
        roles = ROLES[kind]
        least, most = len(roles), (99 if kind in MANY_PAINTINGS else len(roles))
        if not least <= len(uploads) <= most:
            raise ConfigError(f"{kind} needs {' and '.join(roles) or 'no pictures'}",
                              "add the missing pictures" if len(uploads) < least
                              else "remove the extra pictures")
        inputs = tuple(str(self.store.upload(u)) for u in uploads)
        task_id = new_id()
        job = Job(kind, inputs, config, output=str(self.store.output(task_id)), resume=resume)
        check_job(job)
        return Task(task_id, session, job, title or _title(kind, config))

    async def abort(self, request: Request) -> Response:
        return await self._cancel(request, keep=False)

    async def interrupt(self, request: Request) -> Response:
        return await self._cancel(request, keep=True)

    async def _cancel(self, request: Request, keep: bool) -> Response:
        async def work():
            task = self.worker.cancel(request.path_params["id"],
                                      _session(request, self.session_cookie), keep)
            return JSONResponse(task.view())
        return await _answer(work)

    # -- history ------------------------------------------------------------------------

    async def history(self, request: Request) -> Response:
        return JSONResponse({"pictures": await asyncio.to_thread(self.store.entries)})

    async def resume(self, request: Request) -> Response:
        async def work():
            job_id = request.path_params["id"]
            entry = self.store.entry(job_id)
            checkpoint = self.store.checkpoint(job_id)
            if entry.get("status") != "interrupted" or checkpoint is None:
                raise Conflict("this picture cannot be resumed", "only interrupted style "
                               "jobs keep what is needed to go on")
            body = await _json(request)     # {"uploads": [...]}, or {} for the same pictures
            uploads = body.get("uploads") or entry.get("uploads", [])
            task = self._task({"uploads": uploads, "kind": entry["kind"],
                               "settings": entry["settings"]},
                              _session(request, self.session_cookie), resume=str(checkpoint),
                              title=entry.get("title", "") + " (resumed)")
            self.worker.submit(task)
            return JSONResponse(task.view(), 202)
        return await _answer(work)

    async def forget(self, request: Request) -> Response:
        async def work():
            self.store.forget(request.path_params["id"])
            return JSONResponse({"forgotten": request.path_params["id"]})
        return await _answer(work)

    async def output(self, request: Request) -> Response:
        job_id = request.path_params["id"]
        path = self.store.picture(job_id, missing_ok=True)
        if path is None:
            return _error(404, "no such picture")
        how = "attachment" if request.query_params.get("download") else "inline"
        name = f"painterly-{job_id[:8]}{'-unfinished' if 'unfinished' in path.name else ''}.png"
        return FileResponse(path, media_type="image/png",
                            headers={"content-disposition": f'{how}; filename="{name}"',
                                     "cache-control": "no-store"})

    # -- events -------------------------------------------------------------------------

    async def events(self, socket: WebSocket) -> None:
        """Send this session's messages until the page goes (or the server stops: the
        receiving side notices both, so no connection outlives the server)."""
        session = socket.cookies.get(self.session_cookie, "")
        await socket.accept()
        queue: asyncio.Queue = asyncio.Queue(maxsize=64)
        self.hub.queues.setdefault(session, set()).add(queue)

        async def forward():
            while True:
                await socket.send_text(json.dumps(await queue.get()))

        sender = asyncio.create_task(forward())
        try:
            while (await socket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sender.cancel()
            self.hub.queues.get(session, set()).discard(queue)


def _uploaded(upload) -> Response:
    """What the page learns of an upload: its opaque id and its size, never its path."""
    return JSONResponse({"id": upload.id, "width": upload.width, "height": upload.height,
                         "format": upload.format}, 201)


def _session(request: Request, name: str) -> str:
    return request.cookies.get(name, "")


def _title(kind: str, config: Any) -> str:
    size = getattr(config, "size", None)
    return f"{kind}" + (f" · {size} px" if size else "")


def _static_text(name: str) -> str:
    return resources.files("painterly.web").joinpath("static", name).read_text("utf-8")


def _error(status: int, message: str, hint: str = "", headers: Optional[dict] = None):
    return JSONResponse({"error": message, "hint": hint}, status, headers=headers)


def _upload_named(message: str) -> str:
    """The readers name pictures read from bytes "<bytes>"; on the page it is the upload."""
    return message.replace("image <bytes>", "the upload").replace("<bytes>", "the upload")


class TooLarge(PainterlyError):
    """A request body over its cap: HTTP 413."""


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` — from its declared
    length before reading, or while reading a chunked one."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge(f"the request is too large (over {limit // 2**20} MiB)",
                       "send a smaller picture")
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise ConfigError("send the picture itself as the request body, not as a form",
                          "the page does this")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request is too large (over {limit // 2**20} MiB)",
                           "send a smaller picture")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await _body(request, JSON_LIMIT) or b"{}")
    except (ValueError, RecursionError):   # RecursionError: brackets nested thousands deep
        raise ConfigError("the request is not JSON", "send a JSON object") from None
    if not isinstance(body, dict):
        raise ConfigError("the request is not a JSON object", "send a JSON object")
    return body


async def _answer(work) -> Response:
    """Run a route's work; painterly's errors become a plain sentence and their status."""
    try:
        return await work()
    except QueueFull as exc:
        return _error(429, for_people(exc.message), exc.hint,
                      {"retry-after": str(exc.retry_after)})
    except TooLarge as exc:
        return _error(413, exc.message, exc.hint)
    except NotFound as exc:
        return _error(404, exc.message, exc.hint)
    except Conflict as exc:
        return _error(409, exc.message, exc.hint)
    except PainterlyError as exc:
        status = 413 if exc.exit_code == 4 else 400
        return _error(status, for_people(_upload_named(exc.message)),
                      for_people(exc.hint))


__all__ = ["ID", "WebConfig", "create_app"]
