"""The web app in process (Starlette's test client): every job kind runs through the page's
routes, progress and previews arrive over the WebSocket, interrupt keeps the picture so far
and resume finishes it, and the history reads each picture's settings back from its PNG.
The WEB reliability cases are in test_web_reliability.py; a real browser in
test_web_browser.py."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from painterly.errors import InputImageError  # noqa: E402
from painterly.web import WebConfig, create_app  # noqa: E402

EVENTS = "ws://127.0.0.1:8642/events?token=t"
TOKEN = {"x-painterly-token": "t"}
TINY_STYLE = {"model": "tiny", "precision": "fp32", "size": 64, "min_size": 64}


def png(seed: int, w: int = 64, h: int = 48, **text) -> bytes:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    picture = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny net's work is too small to share between threads on a busy 2-core machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def client(tmp_path):
    app = create_app(WebConfig(home=str(tmp_path / "home"), port=8642, token="t"))
    with TestClient(app, base_url="http://127.0.0.1:8642") as c:
        assert c.get("/?token=t").status_code == 200        # the page sets the cookies
        yield c


def upload(client, data: bytes) -> str:
    r = client.post("/uploads", content=data, headers=TOKEN)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def submit(client, kind, uploads, settings) -> dict:
    r = client.post("/jobs", json={"kind": kind, "uploads": uploads, "settings": settings},
                    headers=TOKEN)
    assert r.status_code == 202, r.text
    return r.json()


def wait(client, job_id, statuses=("done", "failed", "interrupted", "cancelled"), timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = next(j for j in client.get("/jobs").json()["jobs"] if j["id"] == job_id)
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still {job['status']}")


def messages(socket, until, limit=400):
    """WebSocket messages until ``until(message)`` is true."""
    seen = []
    for _ in range(limit):
        seen.append(json.loads(socket.receive_text()))
        if until(seen[-1]):
            return seen
    raise AssertionError("no such message")


def test_page_script_and_style_are_served_with_the_token_and_safety_headers(client):
    page = client.get("/?token=t")
    assert '<meta name="painterly-token" content="t">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/index.html").status_code == 404


def test_forms_come_from_the_configs(client):
    kinds = client.get("/forms").json()["kinds"]
    assert set(kinds) == {"style", "fast", "dream", "activations", "reconstruct", "features"}
    size = next(s for s in kinds["style"]["settings"] if s["name"] == "size")
    assert (size["default"], size["minimum"], size["type"]) == (512, 32, "int")
    assert kinds["style"]["inputs"] == ["photo", "painting"] and kinds["features"]["inputs"] == []


def test_style_job_streams_progress_and_previews_then_lands_in_the_history(client):
    photo, painting = upload(client, png(1)), upload(client, png(2))
    with client.websocket_connect(EVENTS) as socket:
        job = submit(client, "style", [photo, painting], {**TINY_STYLE, "iterations": [6]})
        seen = messages(socket, lambda m: m["type"] == "progress" and m["step"] == m["total"])
        previews = [m for m in seen if m["type"] == "preview"]
    assert previews and all(m["id"] == job["id"] for m in previews)
    preview = Image.open(io.BytesIO(base64.b64decode(previews[-1]["jpeg"])))
    assert preview.format == "JPEG" and preview.size == (64, 48)
    progress = [m for m in seen if m["type"] == "progress"]
    assert progress[-1]["total"] == 6 and set(progress[-1]["losses"]) >= {"content", "style"}
    assert wait(client, job["id"])["status"] == "done"

    [entry] = client.get("/history").json()["pictures"]
    assert entry["id"] == job["id"] and entry["settings"]["iterations"] == [6]
    picture = client.get(f"/outputs/{job['id']}?download=1")
    assert picture.headers["content-type"] == "image/png"
    assert picture.headers["content-disposition"].startswith("attachment")
    # "use these settings again": the PNG itself says how it was made
    restored = client.post("/settings", content=picture.content, headers=TOKEN).json()
    assert restored["kind"] == "style" and restored["settings"]["model"] == "tiny"
    assert "weights" not in restored["settings"]
    plain = client.post("/settings", content=png(3), headers=TOKEN)
    assert plain.status_code == 400 and "does not say how painterly made it" in plain.text


def test_interrupt_keeps_the_picture_so_far_and_resume_finishes_it(client):
    photo, painting = upload(client, png(1)), upload(client, png(2))
    with client.websocket_connect(EVENTS) as socket:
        job = submit(client, "style", [photo, painting], {**TINY_STYLE, "iterations": [150]})
        messages(socket, lambda m: m["type"] == "progress" and m["step"] >= 3)
        r = client.post(f"/jobs/{job['id']}/interrupt", headers=TOKEN)
    assert r.status_code == 200
    stopped = wait(client, job["id"])
    assert stopped["status"] == "interrupted" and stopped["step"] < 150
    [entry] = client.get("/history").json()["pictures"]
    assert entry["status"] == "interrupted" and entry["resumable"]
    assert client.get(f"/outputs/{job['id']}").status_code == 200   # the picture so far

    again = client.post(f"/history/{job['id']}/resume", json={},
                        headers=TOKEN)
    assert again.status_code == 202, again.text
    done = wait(client, again.json()["id"])
    assert done["status"] == "done" and done["step"] == 150
    assert done["step"] - stopped["step"] < 150          # it went on, not from the start
    assert client.post(f"/history/{again.json()['id']}/resume", json={"uploads": []},
                       headers=TOKEN).status_code == 409


@pytest.mark.parametrize("kind,inputs,settings", [
    ("fast", 2, {"size": 64, "work_size": 64}),
    ("dream", 1, {"model": "tiny", "precision": "fp32", "layers": ["relu3_1"], "octaves": 2,
                  "steps": 2}),
    ("activations", 1, {"model": "tiny", "precision": "fp32", "layers": ["relu2_1"],
                        "count": 4, "size": 64, "tile": 32}),
    ("reconstruct", 2, {"model": "tiny", "precision": "fp32", "size": 48, "iterations": 2,
                        "content_layers": ["relu1_1"], "style_layers": ["relu1_1"]}),
    ("features", 0, {"model": "tiny", "precision": "fp32", "layer": "relu2_1",
                     "channels": "0:2", "size": 48, "steps": 3, "jitter": 4}),
])
def test_every_kind_runs_from_the_page(client, kind, inputs, settings):
    uploads = [upload(client, png(seed)) for seed in range(inputs)]
    job = submit(client, kind, uploads, settings)
    finished = wait(client, job["id"], timeout=120)
    assert finished["status"] == "done", finished["error"]
    picture = Image.open(io.BytesIO(client.get(f"/outputs/{job['id']}").content))
    assert picture.format == "PNG"


def test_built_in_paintings_are_offered_and_taken_like_uploads(client):
    styles = client.get("/styles").json()["styles"]
    assert [s["name"] for s in styles][:1] and all(s["label"] for s in styles)
    name = styles[0]["name"]
    picture = client.get(f"/styles/{name}")
    assert picture.headers["content-type"] == "image/jpeg" and picture.content[:2] == b"\xff\xd8"
    assert client.get("/styles/..%2Fprovenance.json").status_code == 404
    assert client.get("/styles/nope").status_code == 404
    painting = client.post(f"/uploads/styles/{name}", headers=TOKEN)
    assert painting.status_code == 201
    bad = client.post("/uploads/styles/nope", headers=TOKEN)
    assert bad.status_code == 400 and name in bad.json()["hint"]
    job = submit(client, "fast", [upload(client, png(1)), painting.json()["id"]],
                 {"size": 64, "work_size": 64})
    assert wait(client, job["id"])["status"] == "done"


def test_mistakes_are_plain_sentences_with_a_status(client):
    photo = upload(client, png(1))
    cases = [({"kind": "style", "uploads": [photo], "settings": {}}, 400, "needs photo and painting"),
             ({"kind": "dream", "uploads": [photo], "settings": {"octaves": 0}}, 400,
              "octaves: 0"),
             ({"kind": "dream", "uploads": ["0" * 32], "settings": {}}, 404, "no longer on"),
             ({"kind": "top-patches", "uploads": [], "settings": {}}, 400, "unknown kind")]
    for body, status, words in cases:
        r = client.post("/jobs", json=body, headers=TOKEN)
        assert r.status_code == status and words in r.json()["error"], r.text
        assert "Traceback" not in r.text
    bad = client.post("/uploads", content=b"hello, I am text", headers=TOKEN)
    assert bad.status_code == 400 and "not a supported image (detected: text)" in bad.text
    tiny = client.post("/uploads", content=png(1, 16, 16), headers=TOKEN)
    assert tiny.status_code == 400 and "image too small" in tiny.json()["error"]


@pytest.mark.parametrize("error,shown", [
    (InputImageError("image file is damaged: x.png", "re-export it"),
     "image file is damaged: x.png; re-export it"),
    (RuntimeError("a bug"), "internal error (RuntimeError); see the server's log")])
def test_a_job_that_fails_says_why_in_the_queue_and_leaves_nothing(client, monkeypatch, error,
                                                                  shown):
    import painterly.jobs.dream

    def fails(*args, **kwargs):
        raise error
    monkeypatch.setattr(painterly.jobs.dream, "run", fails)
    job = submit(client, "dream", [upload(client, png(1))], {"model": "tiny"})
    failed = wait(client, job["id"])
    assert (failed["status"], failed["error"]) == ("failed", shown)
    assert client.get("/history").json()["pictures"] == []


def test_memory_goes_back_to_the_system_when_the_queue_empties(client, monkeypatch):
    # The command keeps freed memory for reuse; the server gives it back once no job waits,
    # and only then (not between two queued jobs).
    import painterly.jobs.dream
    import painterly.web.worker
    started, released = threading.Event(), []
    gate = threading.Event()
    real = painterly.jobs.dream.run

    def held(*args, **kwargs):
        started.set()
        assert gate.wait(30)
        return real(*args, **kwargs)
    monkeypatch.setattr(painterly.jobs.dream, "run", held)
    monkeypatch.setattr(painterly.web.worker.memory, "release_freed_memory",
                        lambda: released.append(time.monotonic()) or True)
    photo = upload(client, png(1))
    first = submit(client, "dream", [photo], {"model": "tiny", "size": 64, "octaves": 1})
    assert started.wait(30)
    second = submit(client, "dream", [photo], {"model": "tiny", "size": 64, "octaves": 1})
    gate.set()
    assert wait(client, first["id"])["status"] == "done"
    assert wait(client, second["id"])["status"] == "done"
    deadline = time.monotonic() + 10
    while not released and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(released) == 1  # after the second job, the queue empty; not after the first


def test_cli_refuses_a_port_it_cannot_use():
    out = subprocess.run([sys.executable, "-m", "painterly", "web", "--port", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("painterly: error: invalid --port: 70000")
