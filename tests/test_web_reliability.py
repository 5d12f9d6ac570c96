"""Reliability checklist, the local web UI: WEB-01 … WEB-08 (/work/shared/design/RELIABILITY.md).

Each test's name starts with its checklist ID. Most cases run in-process: the real app from
``create_app`` (its Guard, routes, store and worker thread) behind Starlette's TestClient,
which runs the lifespan (so the worker) when used as a context manager. Where the TestClient
would hide what is under test, the test goes lower or higher:

- request bodies (WEB-03) are fed to the app through a bare ASGI ``receive`` that counts what
  the app pulls (the TestClient reads a streamed body whole before the app sees it), and are
  also sent over a socket to a real ``painterly web`` server;
- raw request targets (WEB-06) go over a socket to that server, since an HTTP client would
  normalise ``..`` and ``%2f`` away before sending;
- the bound address (WEB-01) is read from the running server's socket table.

Jobs use the tiny random-weight net at 64 px and a few iterations; long jobs are cancelled.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from painterly.errors import ConfigError  # noqa: E402
from painterly.web import WebConfig, bind, create_app  # noqa: E402

PORT = 8642
TOKEN = "t"
BASE = f"http://127.0.0.1:{PORT}"
H = {"x-painterly-token": TOKEN}
SESSION = f"painterly_session_{PORT}"
ID32 = re.compile(r"[0-9a-f]{32}")
FINISHED = ("done", "failed", "interrupted", "cancelled")
MiB = 2**20


# ---- helpers ----------------------------------------------------------------------------

def png_bytes(seed: int = 0, side: int = 40) -> bytes:
    """A small RGB PNG (random smooth-ish noise), made here."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((side // 8 + 1, side // 8 + 1, 3))
    pixels = np.kron(coarse, np.ones((8, 8, 1)))[:side, :side]
    buf = io.BytesIO()
    Image.fromarray((pixels * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def style(iterations: int) -> dict:
    return {"model": "tiny", "size": 64, "min_size": 64, "iterations": [iterations]}


def make_app(home: Path, **config):
    return create_app(WebConfig(home=str(home), port=PORT, token=TOKEN, **config))


@contextmanager
def running(app):
    """A TestClient that runs the app's lifespan (its worker thread) and holds a session."""
    with TestClient(app, base_url=BASE) as client:
        assert client.get(f"/?token={TOKEN}").status_code == 200
        assert client.cookies.get(SESSION)
        yield client


@contextmanager
def idle(app):
    """A TestClient without the lifespan: the worker thread is not started, so an accepted
    job just stays in the queue (for the cases that only need to see what is accepted)."""
    client = TestClient(app, base_url=BASE)
    assert client.get(f"/?token={TOKEN}").status_code == 200
    yield client
    client.close()


def other_session(app) -> TestClient:
    """A second browser: same app, its own session cookie (no second lifespan)."""
    client = TestClient(app, base_url=BASE)
    assert client.get(f"/?token={TOKEN}").status_code == 200
    return client


def upload(client, data: bytes | None = None, seed: int = 0) -> str:
    r = client.post("/uploads", content=data or png_bytes(seed), headers=H)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def submit(client, uploads, iterations: int = 2):
    return client.post("/jobs", json={"kind": "style", "uploads": list(uploads),
                                      "settings": style(iterations)}, headers=H)


def job(client, job_id: str) -> dict | None:
    return next((j for j in client.get("/jobs").json()["jobs"] if j["id"] == job_id), None)


def wait_for(client, job_id: str, until, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = job(client, job_id)
        if view is not None and until(view):
            return view
        assert time.monotonic() < deadline, f"job {job_id} never got there: {view}"
        time.sleep(0.02)


def finished(view) -> bool:
    return view["status"] in FINISHED


def stepping(view) -> bool:
    return view["status"] == "running" and view["step"] >= 2


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def assert_no_server_path(text: str, *paths: Path) -> None:
    for path in paths:
        for form in {str(path), os.path.realpath(path)}:
            assert form not in text, f"a response shows the server path {form}: {text[:200]}"
    assert "Traceback" not in text and 'File "' not in text


def asgi_call(app, method: str, path: str, headers: dict, chunks=(), declared=None):
    """Call the ASGI app directly; the body comes chunk by chunk (``more_body``), and every
    chunk the app pulls is counted. Returns (status, headers, body, bytes pulled, seconds)."""
    pulled = [0]
    chunks = iter(chunks)
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in
           {"host": f"127.0.0.1:{PORT}", **H, **headers}.items()]
    if declared is not None:
        raw.append((b"content-length", str(declared).encode()))
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http",
             "query_string": b"", "headers": raw, "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", PORT), "extensions": {}, "state": {}}
    sent: list[dict] = []
    done = [False]

    async def receive():
        if done[0]:
            await asyncio.sleep(3600)       # a client that keeps the connection open
        chunk = next(chunks, None)
        if chunk is None:
            done[0] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled[0] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    async def main():
        try:
            await asyncio.wait_for(app(scope, receive, send), 10)
        except Exception:       # an unhandled error: Starlette has already answered 500
            if not sent:
                raise

    start = time.perf_counter()
    asyncio.run(main())
    seconds = time.perf_counter() - start
    head = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode().lower(): v.decode() for k, v in head["headers"]}
    return head["status"], headers, body, pulled[0], seconds


def fresh_chunks(total: int, size: int = MiB):
    """``total`` bytes as new 1 MiB objects (so holding them costs memory)."""
    for _ in range(total // size):
        yield bytes(size)


# ---- a real `painterly web` server (WEB-01, and raw requests for WEB-03 and WEB-06) ---------

ADDRESS = re.compile(r"painterly web: (http://(\S+?):(\d+)/\?token=(\S+))")


class Server:
    def __init__(self, home: Path, *flags: str):
        self.home, self.log = home, home.parent / f"{home.name}.log"
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PAINTERLY_OFFLINE": "1",
               "PAINTERLY_CACHE": str(home.parent / "cache")}
        self.out = open(home.parent / f"{home.name}.out", "w+")
        self.err = open(self.log, "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "painterly", "web", "--port", "0", "--home", str(home),
             *flags], stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        self.url = self.host = self.port = self.token = None

    def wait(self, timeout: float = 90.0) -> "Server":
        deadline = time.monotonic() + timeout
        while self.url is None:
            self.out.seek(0)
            found = ADDRESS.search(self.out.read())
            if found:
                self.url, self.host = found.group(1), found.group(2)
                self.port, self.token = int(found.group(3)), found.group(4)
                break
            assert self.proc.poll() is None, f"painterly web exited: {self.stderr()}"
            assert time.monotonic() < deadline, f"no address printed: {self.stderr()}"
            time.sleep(0.05)
        return self

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.out.close()
        self.err.close()

    def rss(self, field: str = "VmHWM") -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) * 1024


def listening(port: int) -> list[str]:
    """Local addresses of the LISTEN sockets on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                if len(addr) == 8:
                    found.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
                else:
                    words = bytes.fromhex(addr)
                    found.append(socket.inet_ntop(socket.AF_INET6, b"".join(
                        words[i:i + 4][::-1] for i in range(0, 16, 4))))
    return found


def outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    candidates = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.123", 9))     # no packet is sent by a UDP connect
            candidates.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        candidates += [a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                           socket.AF_INET)]
    except OSError:
        pass
    return next((a for a in candidates if not a.startswith("127.") and a != "0.0.0.0"), None)


def raw_http(port: int, request: bytes, timeout: float = 10.0):
    """Send bytes as they are; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    return int(lines[0].split()[1]), headers, body


def get(server: Server, target: str) -> tuple[int, dict, bytes]:
    return raw_http(server.port, (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                                  f"X-Painterly-Token: {server.token}\r\n"
                                  "Connection: close\r\n\r\n").encode("latin-1"))


PLANTED_ID = "0123456789abcdef0123456789abcdef"
SECRET = "painterly-secret-4f1c"
CAP = 20 * MiB                  # WEB-03: the upload cap, and the body sent against it
BIG = 50 * MiB
# WEB-06: targets sent as they are (an HTTP client would normalise them first)
TRAVERSALS = ["/file=../../etc/passwd", "/file=/etc/passwd", "/file=../secret",
              "/outputs/%2e%2e%2fsecret", "/outputs/%2e%2e%2f%2e%2e%2fsecret",
              "/outputs/..%2f..%2fsecret", "/outputs/../../etc/passwd", "/outputs/../secret",
              "/outputs/%2fetc%2fpasswd", "/outputs//etc/passwd", "/outputs/%2e%2e",
              "/etc/passwd", "//etc/passwd", "/outputs/https://evil.example",
              "/outputs/https:%2f%2fevil.example", "/outputs//evil.example",
              "/outputs/https://evil.example/", "//evil.example/", "/\\evil.example",
              f"/outputs/{PLANTED_ID.upper()}", f"/outputs/{PLANTED_ID}.png",
              f"/outputs/{PLANTED_ID}%00", f"/outputs/{PLANTED_ID}/../../secret",
              f"/outputs/{PLANTED_ID}%2f..%2f..%2fsecret", "/history/../secret",
              "/static/../secret", "/static/..%2f..%2fweb%2fstore.py", "/static/%2e%2e",
              "/static/index.html", "/static/../../../../../etc/passwd"]


@pytest.fixture(scope="class")
def servers(tmp_path_factory):
    """Both servers of WEB-01, started together: defaults, and --listen 0.0.0.0. The default
    one's home has a finished picture (for WEB-06) and a secret beside and above it."""
    root = tmp_path_factory.mktemp("web-servers")
    home = root / "home"
    (home / "history").mkdir(parents=True)
    (home / "history" / f"{PLANTED_ID}.png").write_bytes(png_bytes(7))
    (home / "secret").write_text(SECRET)
    (root / "secret").write_text(SECRET)
    default = Server(home)
    everyone = Server(root / "home-all", "--listen", "0.0.0.0")
    try:
        yield default.wait(), everyone
    finally:
        default.terminate()             # both shut down at once, then are waited for
        everyone.stop()
        default.stop()


# ---- WEB-01 (and the raw-socket halves of WEB-03 and WEB-06): a real server -------------

@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
class TestServer:
    """The cases that need a real `painterly web` process; the class holds the two servers
    only as long as its tests run, so they are not competing with the in-process ones."""

    def test_web01_default_binds_loopback(self, servers):
        server, _ = servers
        assert server.host == "127.0.0.1"
        assert listening(server.port) == ["127.0.0.1"], listening(server.port)
        outside = outside_address()
        if outside is not None:          # the port is not reachable from another interface
            with pytest.raises(OSError):
                socket.create_connection((outside, server.port), timeout=2).close()
        status, headers, _ = get(server, f"/?token={server.token}")
        assert status == 200 and "painterly_session_" in headers.get("set-cookie", "")
        assert "listening on" not in server.stderr()     # no exposure warning
        # the function that binds: the default host gives a loopback socket
        sock = bind(WebConfig().host, 0)
        try:
            assert sock.getsockname()[0] == "127.0.0.1"
        finally:
            sock.close()

    def test_web01_listen_all_needs_the_flag_and_warns(self, servers):
        _, server = servers
        server.wait()
        assert listening(server.port) == ["0.0.0.0"]
        assert server.host == "127.0.0.1"           # the printed address is still loopback
        log = server.stderr()
        assert "WARNING" in log and "listening on 0.0.0.0" in log, log
        assert "upload" in log and "jobs" in log, log
        status, _, _ = get(server, f"/?token={server.token}")
        assert status == 200
        server.terminate()                          # the fixture waits for it

    def test_web03_real_server_refuses_50mb_with_content_length(self, servers):
        server, _ = servers
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            start = time.perf_counter()
            conn.sendall((f"POST /uploads HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          f"X-Painterly-Token: {server.token}\r\nContent-Type: image/png\r\n"
                          f"Content-Length: {BIG}\r\n\r\n").encode())
            answer = conn.recv(65536)               # the answer comes before any body is sent
            seconds = time.perf_counter() - start
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert seconds < 1.0

    def test_web03_real_server_refuses_chunked_50mb_at_the_cap(self, servers):
        server, _ = servers
        before = server.rss()
        sent, answered_at = [0], []
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall((f"POST /uploads HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          f"X-Painterly-Token: {server.token}\r\nContent-Type: image/png\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n").encode())
            chunk = f"{MiB:x}\r\n".encode() + bytes(MiB) + b"\r\n"

            def feed():
                try:
                    for _ in range(BIG // MiB):
                        if answered_at:
                            return
                        conn.sendall(chunk)
                        sent[0] += MiB
                    conn.sendall(b"0\r\n\r\n")
                except OSError:                      # the server closed: it stopped reading
                    pass

            feeder = threading.Thread(target=feed, daemon=True)
            start = time.perf_counter()
            feeder.start()
            answer = conn.recv(65536)
            answered_at.append(sent[0])
            seconds = time.perf_counter() - start
            conn.shutdown(socket.SHUT_RDWR)          # unblocks a feeder stuck in sendall
            feeder.join(10)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert answered_at[0] < BIG, "the server read the whole body before answering"
        assert seconds < 3.0, f"{seconds:.2f} s"       # 20 MiB through a busy 2-core loopback
        grown = server.rss() - before
        assert grown < CAP + 16 * MiB, f"server peak RSS grew {grown / MiB:.1f} MiB"

    def test_web06_paths_never_reach_files(self, servers):
        server, _ = servers
        status, headers, body = get(server, f"/outputs/{PLANTED_ID}")   # the one way in
        assert status == 200 and body.startswith(b"\x89PNG") and headers["content-type"] == \
            "image/png"
        passwd = Path("/etc/passwd").read_bytes()[:40] if Path("/etc/passwd").exists() else b"root:"
        for target in TRAVERSALS:
            status, headers, body = get(server, target)
            assert status in (400, 404), (target, status, body[:100])
            assert "location" not in headers, (target, headers)
            assert SECRET.encode() not in body and passwd not in body and not \
                body.startswith(b"\x89PNG"), target
            assert str(server.home).encode() not in body
        # an absolute-form target naming another host is not followed or redirected
        status, headers, _ = raw_http(server.port, (
            f"GET http://evil.example/outputs/{PLANTED_ID} HTTP/1.1\r\nHost: 127.0.0.1:"
            f"{server.port}\r\nX-Painterly-Token: {server.token}\r\nConnection: close\r\n\r\n"
        ).encode())
        assert "location" not in headers and status in (200, 400, 404)


# ---- WEB-02: cross-site requests --------------------------------------------------------

CROSS_SITE = {
    "origin": ({"origin": "https://evil.example", **H}, None),
    "host": ({"host": "evil.example", **H}, None),
    "host-with-port": ({"host": f"evil.example:{PORT}", **H}, None),
    "sec-fetch-site": ({"sec-fetch-site": "cross-site", **H}, None),
    "same-site": ({"sec-fetch-site": "same-site", **H}, None),
    "null-origin": ({"origin": "null", **H}, None),
    "no-token": ({}, None),                     # only the cookie a cross-site form sends
    "token-in-query": ({}, f"?token={TOKEN}"),
    "wrong-token": ({"x-painterly-token": "u"}, None),
}


@pytest.mark.parametrize("case", list(CROSS_SITE))
def test_web02_cross_site_post_is_refused(tmp_path, case):
    app = make_app(tmp_path)
    headers, query = CROSS_SITE[case]
    with idle(app) as client:
        photo, painting = upload(client, seed=0), upload(client, seed=1)
        body = {"kind": "style", "uploads": [photo, painting], "settings": style(2)}
        r = client.post("/jobs" + (query or ""), json=body, headers=headers)
        assert r.status_code == 403, r.text
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-credentials" not in r.headers
        assert client.get("/jobs").json()["jobs"] == []
        assert app.state.worker.queue == [] and app.state.worker.current is None
        # the same request, from the page, is accepted (so the 403 was the guard's)
        assert client.post("/jobs", json=body, headers=H).status_code == 202


def test_web02_cross_site_preflight_and_uploads_get_no_cors(tmp_path):
    app = make_app(tmp_path)
    with idle(app) as client:
        evil = {"origin": "https://evil.example"}
        r = client.options("/jobs", headers={**evil, "access-control-request-method": "POST"})
        assert r.status_code == 403
        assert not any(k.startswith("access-control-") for k in r.headers)
        r = client.post("/uploads", content=png_bytes(), headers={**H, **evil})
        assert r.status_code == 403 and not any(k.startswith("access-control-")
                                                for k in r.headers)
        assert list((tmp_path / "uploads").iterdir()) == []
        r = client.delete(f"/jobs/{'a' * 32}", headers={**H, "sec-fetch-site": "cross-site"})
        assert r.status_code == 403


def test_web02_cross_site_websocket_is_refused(tmp_path):
    app = make_app(tmp_path)
    with running(app) as client:
        for headers in ({"origin": "https://evil.example"}, {"host": "evil.example"},
                        {"sec-fetch-site": "cross-site"}):
            with pytest.raises(WebSocketDisconnect) as refused:
                with client.websocket_connect("/events", headers={"host": f"127.0.0.1:{PORT}",
                                                                  **headers}):
                    pass
            assert refused.value.code == 1008
        bare = TestClient(app, base_url=BASE)        # no token at all
        with pytest.raises(WebSocketDisconnect):
            with bare.websocket_connect("/events", headers={"host": f"127.0.0.1:{PORT}"}):
                pass
        # the page's own socket (its cookies, its origin) connects and hears the queue
        cookies = f"painterly_token_{PORT}={TOKEN}; {SESSION}={client.cookies.get(SESSION)}"
        with client.websocket_connect("/events", headers={"host": f"127.0.0.1:{PORT}",
                                                          "origin": BASE, "cookie": cookies}) as ws:
            assert submit(client, [upload(client), upload(client, seed=1)]).status_code == 202
            assert ws.receive_json()["type"] == "queue"


# ---- WEB-03: large and hostile bodies ---------------------------------------------------


def test_web03_declared_50mb_upload_is_refused_before_reading(tmp_path):
    app = make_app(tmp_path, max_upload_bytes=CAP)
    status, headers, body, pulled, seconds = asgi_call(
        app, "POST", "/uploads", {"content-type": "image/png"}, fresh_chunks(BIG), BIG)
    assert status == 413, body
    assert pulled == 0                      # refused from Content-Length, nothing read
    assert seconds < 1.0
    assert "too large" in json.loads(body)["error"]
    assert list((tmp_path / "uploads").iterdir()) == []


def test_web03_chunked_50mb_upload_stops_at_the_cap(tmp_path):
    app = make_app(tmp_path, max_upload_bytes=CAP)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        status, _, body, pulled, seconds = asgi_call(
            app, "POST", "/uploads", {"content-type": "image/png",
                                      "transfer-encoding": "chunked"}, fresh_chunks(BIG))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413, body
    assert CAP < pulled <= CAP + MiB        # read up to the cap and one chunk, no further
    assert peak < CAP + 8 * MiB, f"peak {peak / MiB:.1f} MiB for a {CAP // MiB} MiB cap"
    assert seconds < 1.0
    assert list((tmp_path / "uploads").iterdir()) == []


@pytest.mark.parametrize("declared", ["-1", "1e9", "0x10", "99999999999999999999"])
def test_web03_odd_content_length_is_refused(tmp_path, declared):
    app = make_app(tmp_path, max_upload_bytes=CAP)
    status, _, _, pulled, seconds = asgi_call(app, "POST", "/uploads", {}, [png_bytes()],
                                              declared)
    assert status in (400, 413) and pulled == 0 and seconds < 1.0


def _ten_thousand_fields(boundary: str) -> bytes:
    return b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n"
                    f"{i}\r\n".encode() for i in range(10_000)) + f"--{boundary}--\r\n".encode()


def _big_field(boundary: str) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n".encode()
            + b"x" * (5 * MiB) + f"\r\n--{boundary}--\r\n".encode())


PATHOLOGICAL = "-" * 69 + "a"
MULTIPART = {
    "10000-fields": ("multipart/form-data; boundary=b0undary", _ten_thousand_fields("b0undary")),
    "5mb-field": ("multipart/form-data; boundary=b0undary", _big_field("b0undary")),
    "long-boundary": ("multipart/form-data; boundary=" + "a" * 100_000,
                      (b"--" + b"a" * 99_999 + b"\r\n") * 50),
    "repeated-boundary": ("multipart/form-data; boundary=" + ";boundary=x" * 5_000,
                          b"--x\r\n" * 100_000),
    "quoted-boundary": ('multipart/form-data; boundary="' + '\\"' * 20_000 + '"',
                        b"--" + b"-" * 1_000_000),
    "dash-boundary": (f"multipart/form-data; boundary={PATHOLOGICAL}",
                      (b"--" + PATHOLOGICAL.encode()[:-1] + b"\r\n") * 20_000),
}


@pytest.mark.parametrize("route", ["/uploads", "/settings", "/jobs"])
@pytest.mark.parametrize("case", list(MULTIPART))
def test_web03_multipart_bodies_are_refused_quickly(tmp_path, case, route):
    app = make_app(tmp_path, max_upload_bytes=CAP)
    content_type, body = MULTIPART[case]
    for declared in (len(body), None):        # with Content-Length, and chunked
        chunks = [body[i:i + MiB] for i in range(0, len(body), MiB)]
        status, _, answer, pulled, seconds = asgi_call(
            app, "POST", route, {"content-type": content_type}, chunks, declared)
        assert status in (400, 413), (status, answer)
        assert seconds < 1.0, f"{case} on {route}: {seconds:.2f} s"
        assert_no_server_path(answer.decode(), tmp_path)
    assert list((tmp_path / "uploads").iterdir()) == []


def test_web03_uploads_arriving_together_are_decoded_one_at_a_time(tmp_path, monkeypatch):
    """Checking an upload decodes it whole, at about 30 bytes a pixel (a 160 KB PNG of 49 MP
    grows the server by 1.5 GB); uploads that arrive together must not multiply that, or the
    server's memory has no bound. The decode is slowed here so that the uploads overlap."""
    from painterly.image import ReadOptions
    real, count, active, most = ReadOptions.load, threading.Lock(), [0], [0]

    def load(self, *args, **kwargs):
        with count:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.15)
            return real(self, *args, **kwargs)
        finally:
            with count:
                active[0] -= 1

    monkeypatch.setattr(ReadOptions, "load", load)
    app = make_app(tmp_path)
    with idle(app) as client:
        answers = []
        senders = [threading.Thread(target=lambda i=i: answers.append(
            client.post("/uploads", content=png_bytes(i), headers=H).status_code))
            for i in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(20)
    assert answers == [201] * 4
    assert most[0] == 1, f"{most[0]} uploads were decoded at once"


def test_web03_deeply_nested_json_is_400(tmp_path):
    """A 60 KB job request of nested brackets (under the 64 KiB JSON cap) is a bad request,
    not a server error."""
    app = make_app(tmp_path)
    for body in (b"[" * 60_000, b'{"kind":' * 7_000):
        status, _, answer, _, seconds = asgi_call(app, "POST", "/jobs",
                                                  {"content-type": "application/json"},
                                                  [body], len(body))
        assert status == 400, (status, answer[:200])
        assert seconds < 1.0
        assert b"Traceback" not in answer


# ---- WEB-04: client file names never reach a path ---------------------------------------

NAMES = ["../../x.png", "/etc/passwd", "..\\..\\x.png", "C:\\x.png", "x.png\x00.txt",
         "a" * 300 + ".png", "\u2024\u2024\u2215\u2024\u2024\u2215x.png",    # ․․∕․․∕x.png
         "\uff0e\uff0e\uff0fx.png", "..%2f..%2fx.png", "uploads/../../x.png"]


def test_web04_client_filenames_are_ignored(tmp_path):
    home = tmp_path / "home"
    app = make_app(home)
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() \
        if Path("/etc/passwd").exists() else None
    before = files_under(tmp_path)
    ids = []
    with idle(app) as client:
        for i, name in enumerate(NAMES):
            encoded = name.encode("utf-8")
            quoted = "".join(c if c.isalnum() or c in "._-" else f"%{b:02X}"
                             for c in name for b in c.encode("utf-8"))
            for headers in ({"x-filename": encoded},
                            {"content-disposition": b'attachment; filename="' + encoded + b'"'},
                            {"content-disposition": f"attachment; filename*=UTF-8''{quoted}"}):
                r = client.post("/uploads", content=png_bytes(i),
                                headers={**H, "content-type": "image/png", **headers})
                assert r.status_code == 201, (name, r.text)
                assert set(r.json()) == {"id", "width", "height", "format"}
                assert ID32.fullmatch(r.json()["id"])
                assert_no_server_path(r.text, home, tmp_path)
                assert name not in r.text
                ids.append(r.json()["id"])
            # the same name in a form upload is refused, and nothing is written
            boundary = "b0undary"
            form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").encode() \
                + png_bytes(i) + f"\r\n--{boundary}--\r\n".encode()
            r = client.post("/uploads", content=form, headers={
                **H, "content-type": f"multipart/form-data; boundary={boundary}"})
            assert r.status_code == 400 and ("form" in r.json()["error"])
            assert_no_server_path(r.text, home, tmp_path)
        # a bad request names no path either
        r = submit(client, ["../" + ids[0], ids[1]])
        assert r.status_code == 404
        assert_no_server_path(r.text, home, tmp_path)
    uploads = (home / "uploads").resolve()
    stored = sorted(p.name for p in uploads.iterdir())
    assert stored == sorted(f"{i}.png" for i in ids)
    for path in uploads.iterdir():
        assert path.resolve().parent == uploads and path.is_file() and not path.is_symlink()
    new = files_under(tmp_path) - before
    assert all(p.startswith("home/uploads/") or p.startswith("home/history/") for p in new), \
        [p for p in new if not p.startswith("home/")]
    assert not any("x.png" in p or "passwd" in p for p in new)
    if passwd:
        assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == passwd


def test_web04_planted_symlinks_are_removed_and_never_followed(tmp_path):
    home = tmp_path / "home"
    uploads, history = home / "uploads", home / "history"
    uploads.mkdir(parents=True)
    history.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(3))
    secret_hash = hashlib.sha256(secret.read_bytes()).hexdigest()
    planted = {uploads / f"{'a' * 32}.png": secret, uploads / "evil.png": Path("/etc/passwd"),
               uploads / f"{'b' * 32}.png": tmp_path}     # a link to a folder
    for link, target in planted.items():
        link.symlink_to(target)
    app = make_app(home)
    for link in planted:                 # removed at start-up, targets untouched
        assert not os.path.lexists(link), link
    assert secret.exists() and hashlib.sha256(secret.read_bytes()).hexdigest() == secret_hash
    with idle(app) as client:
        painting = upload(client, seed=1)
        r = submit(client, ["a" * 32, painting])
        assert r.status_code == 404, r.text
        # planted while the server runs: not followed either
        (uploads / f"{'c' * 32}.png").symlink_to(secret)
        r = submit(client, ["c" * 32, painting])
        assert r.status_code == 404, r.text
        assert_no_server_path(r.text, home, tmp_path)
        (history / f"{'d' * 32}.png").symlink_to(secret)
        (history / f"{'d' * 32}.json").write_text(json.dumps(
            {"id": "d" * 32, "kind": "style", "status": "done", "created": 0}))
        r = client.get(f"/outputs/{'d' * 32}")
        assert r.status_code == 404 and r.content != secret.read_bytes()
        assert client.get("/history").json()["pictures"] == []
        assert client.delete(f"/history/{'d' * 32}", headers=H).status_code == 404
    assert secret.exists()                  # nothing deleted through a link


def test_web04_symlinked_upload_folder_is_refused(tmp_path):
    """``home/uploads`` itself a link (to a folder with someone's files): start-up must not
    clean the link's target, and uploads must not land there."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine")
    (elsewhere / f"{'e' * 32}.png").write_bytes(png_bytes(5))
    os.utime(elsewhere / f"{'e' * 32}.png", (1, 1))        # "expired"
    (home / "uploads").symlink_to(elsewhere)
    try:
        app = make_app(home, upload_ttl=60)
    except ConfigError as exc:
        assert "uploads" in str(exc)
    else:
        with idle(app) as client:
            upload(client)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["e" * 32 + ".png", "notes.txt"]


# ---- WEB-05: content, not labels; how pictures are served --------------------------------

SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
       b'<script>alert(document.cookie)</script><rect width="64" height="64"/></svg>')
NOT_PICTURES = {
    "html": (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "XML/HTML"),
    "svg": (SVG, "SVG"),
    "svg-no-prolog": (SVG[SVG.index(b"<svg"):], "SVG"),
    "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n", "EPS"),
    "eps-binary": (b"\xc5\xd0\xd3\xc6" + bytes(60), "EPS"),
    "png-then-html": (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", None),
    "text": (b"hello, this is not a picture at all", "text"),
}


@pytest.mark.parametrize("case", list(NOT_PICTURES))
def test_web05_non_images_labelled_png_are_rejected(tmp_path, case):
    app = make_app(tmp_path)
    data, detected = NOT_PICTURES[case]
    with idle(app) as client:
        for name in ("x.png", "x.svg"):
            r = client.post("/uploads", content=data,
                            headers={**H, "content-type": "image/png", "x-filename": name})
            assert r.status_code == 400, r.text
            assert r.headers["content-type"].startswith("application/json")
            message = r.json()["error"]
            if detected:
                assert f"not a supported image (detected: {detected})" in message, message
            assert_no_server_path(r.text, tmp_path)
    assert list((tmp_path / "uploads").iterdir()) == []


def test_web05_served_pictures_say_what_they_are(tmp_path):
    app = make_app(tmp_path)
    with running(app) as client:
        r = submit(client, [upload(client, seed=0), upload(client, seed=1)], iterations=2)
        assert r.status_code == 202, r.text
        view = wait_for(client, r.json()["id"], finished)
        assert view["status"] == "done", view
        for query, how in (("", "inline"), ("?download=1", "attachment")):
            r = client.get(f"/outputs/{view['id']}{query}")
            assert r.status_code == 200
            assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
            assert r.headers["content-type"] == "image/png"
            assert r.headers["x-content-type-options"] == "nosniff"
            disposition = r.headers["content-disposition"]
            assert disposition.startswith(how) and re.search(r'filename="painterly-[0-9a-f]{8}'
                                                             r'\.png"', disposition)
            assert "default-src 'none'" in r.headers["content-security-policy"]
        # uploads are never served back, and there is nothing .svg to serve
        for path in ("/uploads", f"/uploads/{'a' * 32}", "/static/x.svg",
                     f"/outputs/{view['id']}.svg"):
            r = client.get(path)
            assert r.status_code in (404, 405) and "svg" not in r.headers["content-type"]
        r = client.get("/static/app.js")
        assert r.headers["x-content-type-options"] == "nosniff"


# ---- WEB-06: paths in the address -------------------------------------------------------


def test_web06_no_redirect_leaves_the_server(tmp_path):
    """In-process: even the slash-normalising redirects of the router stay on this host."""
    app = make_app(tmp_path)
    with idle(app) as client:
        for path in ("/outputs/https:/evil.example/", "/static/app.js/", "/jobs/",
                     f"/outputs/{'a' * 32}/", "/forms/"):
            r = client.get(path, headers=H, follow_redirects=False)
            location = r.headers.get("location", "")
            assert r.status_code in (400, 404) or location.startswith(BASE + "/"), \
                (path, r.status_code, location)
            assert "evil" not in location


# ---- WEB-07: a bounded queue ------------------------------------------------------------

def test_web07_full_queue_answers_429_and_runs_in_order(tmp_path):
    app = make_app(tmp_path, max_queue=3, per_client=8)
    worker = app.state.worker
    with running(app) as client:
        photo, painting = upload(client, seed=0), upload(client, seed=1)
        long = submit(client, [photo, painting], iterations=100_000).json()["id"]
        wait_for(client, long, stepping)
        accepted = []
        for i in range(5):
            r = submit(client, [photo, painting], iterations=2)
            assert len(worker.queue) <= 3 and client.get("/jobs").json()["waiting"] <= 3
            if i < 3:
                assert r.status_code == 202, r.text
                accepted.append(r.json()["id"])
            else:
                assert r.status_code == 429, r.text
                assert int(r.headers["retry-after"]) >= 1
                assert "queue is full" in r.json()["error"]
        assert [t.id for t in worker.queue] == accepted
        assert len(worker.recent) + len(worker.queue) + 1 == 4   # refused jobs are not kept
        # the accepted ones run, in order, once the long one is stopped
        assert client.delete(f"/jobs/{long}", headers=H).status_code == 200
        for job_id in accepted:
            assert wait_for(client, job_id, finished)["status"] == "done"
        done = sorted(accepted, key=lambda i: (tmp_path / "history" / f"{i}.png").stat()
                      .st_mtime_ns)
        assert done == accepted


def test_web07_per_client_limit_answers_429(tmp_path):
    app = make_app(tmp_path, max_queue=3, per_client=2)
    with running(app) as client:
        photo, painting = upload(client, seed=0), upload(client, seed=1)
        long = submit(client, [photo, painting], iterations=100_000).json()["id"]
        wait_for(client, long, stepping)
        mine = [submit(client, [photo, painting], iterations=2) for _ in range(4)]
        assert [r.status_code for r in mine] == [202, 202, 429, 429]
        assert all(int(r.headers["retry-after"]) >= 1 for r in mine[2:])
        assert "you already have 2 jobs waiting" in mine[2].json()["error"]
        # another browser still gets the queue's last place, then the queue is full
        other = other_session(app)
        assert submit(other, [photo, painting]).status_code == 202
        assert submit(other, [photo, painting]).status_code == 429
        assert client.get("/jobs").json()["waiting"] == 3
        for r in mine[:2]:
            assert client.delete(f"/jobs/{r.json()['id']}", headers=H).status_code == 200
        assert client.delete(f"/jobs/{long}", headers=H).status_code == 200
        wait_for(client, long, finished)


# ---- WEB-08: cancel, sessions, expiry ---------------------------------------------------

def test_web08_cancel_running_job_stops_within_one_iteration(tmp_path):
    app = make_app(tmp_path)
    worker = app.state.worker
    with running(app) as client:
        photo, painting = upload(client, seed=0), upload(client, seed=1)
        job_id = submit(client, [photo, painting], iterations=100_000).json()["id"]
        wait_for(client, job_id, stepping)
        start = time.monotonic()
        r = client.delete(f"/jobs/{job_id}", headers=H)
        assert r.status_code == 200, r.text
        at_cancel = r.json()["step"]
        view = wait_for(client, job_id, finished, timeout=5)
        assert view["status"] == "cancelled", view
        assert view["step"] <= at_cancel + 1, (at_cancel, view["step"])
        assert time.monotonic() - start < 3
        deadline = time.monotonic() + 5
        while worker.current is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.current is None
        leftovers = [p.name for p in (tmp_path / "history").iterdir()]
        assert leftovers == [], leftovers           # no picture, checkpoint or temp file
        assert client.get("/history").json()["pictures"] == []
        assert client.get(f"/outputs/{job_id}").status_code == 404
        workers = [t for t in threading.enumerate() if t.name == "painterly-worker"]
        assert worker.thread in workers and worker.thread.is_alive()
        # no orphan: the same worker takes the next job at once
        after = submit(client, [photo, painting], iterations=2).json()["id"]
        assert wait_for(client, after, finished)["status"] == "done"
        assert not any(job_id in p.name for p in (tmp_path / "history").iterdir())


def test_web08_cancel_queued_job_removes_it(tmp_path):
    app = make_app(tmp_path)
    with idle(app) as client:                   # no worker: the job stays queued
        queued = submit(client, [upload(client, seed=0), upload(client, seed=1)]).json()["id"]
        assert job(client, queued)["status"] == "queued"
        r = client.delete(f"/jobs/{queued}", headers=H)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert app.state.worker.queue == [] and client.get("/jobs").json()["waiting"] == 0
        assert client.delete(f"/jobs/{queued}", headers=H).status_code == 409


def test_web08_cancel_finished_job_is_409(tmp_path):
    app = make_app(tmp_path)
    with running(app) as client:
        job_id = submit(client, [upload(client, seed=0), upload(client, seed=1)]).json()["id"]
        assert wait_for(client, job_id, finished)["status"] == "done"
        for method, path in (("DELETE", f"/jobs/{job_id}"), ("POST", f"/jobs/{job_id}/interrupt")):
            r = client.request(method, path, headers=H)
            assert r.status_code == 409, r.text
            assert "already done" in r.json()["error"]
        assert client.get(f"/outputs/{job_id}").status_code == 200     # still there
        assert [p["id"] for p in client.get("/history").json()["pictures"]] == [job_id]


def test_web08_other_sessions_job_is_404(tmp_path):
    app = make_app(tmp_path)
    with running(app) as client:
        photo, painting = upload(client, seed=0), upload(client, seed=1)
        job_id = submit(client, [photo, painting], iterations=100_000).json()["id"]
        other = other_session(app)
        assert other.cookies.get(SESSION) != client.cookies.get(SESSION)
        assert other.get("/jobs").json()["jobs"] == []
        for method, path in (("DELETE", f"/jobs/{job_id}"), ("POST", f"/jobs/{job_id}/interrupt")):
            r = other.request(method, path, headers=H)
            assert r.status_code == 404, r.text
            assert "Traceback" not in r.text
        # a request with the token but no session cookie is nobody's either
        bare = TestClient(app, base_url=BASE)
        assert bare.delete(f"/jobs/{job_id}", headers=H).status_code == 404
        view = job(client, job_id)
        assert view["status"] in ("queued", "running"), view   # untouched
        r = client.delete(f"/jobs/{job_id}", headers=H)
        assert r.status_code == 200
        assert wait_for(client, job_id, finished)["status"] == "cancelled"


def test_web08_expired_uploads_are_deleted_at_restart(tmp_path):
    with idle(make_app(tmp_path, upload_ttl=600)) as client:
        old, fresh, later = (upload(client, seed=s) for s in range(3))
    stored = {p.stem: p for p in (tmp_path / "uploads").iterdir()}
    assert set(stored) == {old, fresh, later}
    long_ago = time.time() - 3600
    os.utime(stored[old], (long_ago, long_ago))
    app = make_app(tmp_path, upload_ttl=600)            # the restart
    assert not stored[old].exists() and stored[fresh].exists()
    with idle(app) as client:
        r = submit(client, [old, fresh])
        assert r.status_code == 404, r.text
        assert "no longer on the server" in r.json()["error"]
        assert_no_server_path(r.text, tmp_path)
        for path in (f"/uploads/{old}", f"/outputs/{old}", f"/uploads/{old}.png"):
            assert client.get(path).status_code in (404, 405)
        # expiring while the server runs: refused and deleted when next used
        os.utime(stored[later], (long_ago, long_ago))
        assert submit(client, [fresh, later]).status_code == 404
        assert not stored[later].exists()
        assert app.state.worker.queue == [] and client.get("/jobs").json()["jobs"] == []
        # a fresh upload still works
        r = submit(client, [fresh, upload(client, seed=9)])
        assert r.status_code == 202, r.text
        client.delete(f"/jobs/{r.json()['id']}", headers=H)


# ---- plain-words errors -----------------------------------------------------------------

def test_web_errors_bad_upload_names_what_is_wrong(tmp_path):
    app = make_app(tmp_path, max_input_pixels=5_000)
    good = png_bytes(side=40)
    cases = [(b"just some words, not a picture", 400, "not a supported image (detected: text)"),
             (b"", 400, "empty"),
             (good[:60], 400, "truncated"),
             (png_bytes(side=100), 413, "10,000 px"),
             (b"PK\x03\x04" + bytes(40), 400, "detected: ZIP")]
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        for data, status, words in cases:
            r = client.post("/uploads", content=data, headers=H)
            assert r.status_code == status, (words, r.text)
            answer = r.json()
            assert words in answer["error"], answer
            assert answer["hint"], answer
            assert "Traceback" not in r.text and "Error:" not in r.text
            assert_no_server_path(r.text, tmp_path)


def test_web_errors_bad_job_requests_are_sentences(tmp_path):
    app = make_app(tmp_path)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        photo = upload(client)
        cases = [({"kind": "style", "uploads": [photo, photo],
                   "settings": {**style(2), "bogus": 1}}, 400, "unknown setting “bogus”"),
                 ({"kind": "style", "uploads": [photo, photo],
                   "settings": {**style(2), "size": 10}}, 400, "size"),
                 ({"kind": "style", "uploads": [photo], "settings": style(2)}, 400,
                  "style needs photo and painting"),
                 ({"kind": "paint", "uploads": [], "settings": {}}, 400, "unknown kind"),
                 ({"kind": "style", "uploads": "x", "settings": style(2)}, 400, "uploads"),
                 ({"kind": "style", "uploads": [photo, "f" * 32], "settings": style(2)}, 404,
                  "no longer on the server")]
        for body, status, words in cases:
            r = client.post("/jobs", json=body, headers=H)
            assert r.status_code == status, (body, r.text)
            assert words in r.json()["error"], r.json()
            assert "Traceback" not in r.text and "Error" not in r.text
            assert_no_server_path(r.text, tmp_path)
        for raw in (b"not json", b"[1, 2]", b"\xff\xfe"):
            r = client.post("/jobs", content=raw, headers={**H, "content-type":
                                                           "application/json"})
            assert r.status_code == 400 and "JSON" in r.json()["error"], r.text
