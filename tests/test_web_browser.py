"""`painterly web` driven in a real browser (Debian's chromium and chromium-driver, through
Selenium), as a user uses it: upload a photo and a painting, start a job on the tiny net,
watch the preview update, interrupt it, start another and download the result.

It skips, saying why, only where no browser is installed; .ci/run installs one."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
webdriver = pytest.importorskip("selenium.webdriver")
from conftest import default_sigint  # noqa: E402
from PIL import Image  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# .ci/run sets this: there the test must run, never skip.
REQUIRED = os.environ.get("PAINTERLY_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER) and not REQUIRED,
                                reason="no chromium/chromedriver here: apt-get install -y "
                                       "chromium chromium-driver (.ci/run does)")
# As the machine's notes advise for a closed network: no background connections.
FLAGS = ("--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
         "--disable-background-networking --disable-component-update --disable-sync "
         "--disable-dev-shm-usage --window-size=1300,1000").split()


def _picture(path: Path, seed: int, size=(160, 120)) -> Path:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize(size, Image.BICUBIC).save(path)
    return path


@pytest.fixture
def server(tmp_path):
    """`painterly web` on a free port; its printed address."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the tiny net: one thread is faster
    proc = subprocess.Popen([sys.executable, "-m", "painterly", "web", "--port", "0",
                             "--home", str(tmp_path / "home")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=default_sigint)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
        assert match, line + proc.stdout.read() if proc.poll() is not None else line
        yield match.group(0)
    finally:
        proc.send_signal(signal.SIGINT)         # Ctrl-C: the server stops cleanly
        try:
            assert proc.wait(20) == 0
            assert proc.stdout.read().strip().endswith("painterly web: stopped")
        finally:
            proc.kill()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


def _set(browser, name: str, value: str) -> None:
    field = browser.find_element(By.ID, f"setting-{name}")
    if field.tag_name == "select":
        Select(field).select_by_value(value)
    else:
        field.clear()
        field.send_keys(value)


def _click(browser, selector: str) -> bool:
    """Click what ``selector`` finds now (inside a wait: a redraw in between is retried)."""
    browser.find_element(By.CSS_SELECTOR, selector).click()
    return True


def _tiny_style(browser, iterations: str) -> None:
    browser.find_element(By.CSS_SELECTOR, "#settings details summary").click()
    for name, value in (("model", "tiny"), ("precision", "fp32"), ("size", "96"),
                        ("min_size", "96"), ("iterations", iterations)):
        _set(browser, name, value)


def test_upload_paint_watch_interrupt_and_download(server, browser, tmp_path):
    # The page redraws its queue and history on every change, so elements are looked up
    # afresh inside each wait, and a redraw in between is only a retry.
    wait = WebDriverWait(browser, 60, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,))
    browser.get(server)
    wait.until(lambda b: b.find_elements(By.ID, "setting-size"))
    wait.until(lambda b: b.find_element(By.ID, "connection").text.startswith("live"))

    browser.find_element(By.ID, "file-photo").send_keys(str(_picture(tmp_path / "p.png", 1)))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".thumb:not(.pending)")) == 1)
    browser.find_element(By.ID, "file-painting").send_keys(str(_picture(tmp_path / "s.png", 2)))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".thumb:not(.pending)")) == 2)

    # A long job: the preview appears and updates, then Interrupt stops it.
    _tiny_style(browser, "5000")
    browser.find_element(By.ID, "start").click()
    preview = browser.find_element(By.ID, "preview")
    wait.until(lambda b: (preview.get_attribute("src") or "").startswith("data:image/jpeg"))
    first = int(preview.get_attribute("data-step"))
    wait.until(lambda b: int(preview.get_attribute("data-step") or 0) > first)
    assert "step" in browser.find_element(By.ID, "progress-text").text
    wait.until(lambda b: _click(b, "#queue .interrupt"))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#history .item.interrupted .resume"))
    wait.until(lambda b: "interrupted" in b.find_element(By.ID, "progress-text").text)
    wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#queue li.interrupted .status").text
               == "interrupted")

    # Another, short job; its result is downloaded with its settings inside.
    _set(browser, "iterations", "4")
    browser.find_element(By.ID, "start").click()
    href = wait.until(lambda b: b.find_element(
        By.CSS_SELECTOR, "#history .item.done a.download").get_attribute("href"))
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    request = urllib.request.Request(href, headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["Content-Disposition"].startswith("attachment")
        data = response.read()
    assert data.startswith(b"\x89PNG") and b"painterly-record" in data
    assert not browser.find_element(By.ID, "message").text.startswith("HTTP")


def test_every_form_starts_at_the_library_defaults(server, browser):
    """Each kind's fields, as drawn, hold the defaults /forms gives (sliders once started at
    1 for 0.5 and 0.7: a range input rounds a value set before its step)."""
    wait = WebDriverWait(browser, 60, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,))
    browser.get(server)
    wait.until(lambda b: b.find_elements(By.ID, "setting-size"))
    forms = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/forms', {headers: {'X-Painterly-Token': TOKEN}}).then(r => r.json()).then(done);")
    checked = 0
    for kind, spec in forms["kinds"].items():
        browser.find_element(By.ID, f"tab-{kind}").click()
        for s in spec["settings"]:
            fields = browser.find_elements(By.ID, f"setting-{s['name']}")
            if not fields or s["default"] is None or isinstance(s["default"], list):
                continue
            value = browser.execute_script(
                "const f = arguments[0]; return f.type === 'checkbox' ? f.checked : f.value",
                fields[0])
            if s["type"] in ("int", "float"):
                assert float(value) == pytest.approx(s["default"]), (kind, s["name"], value)
            else:
                assert value == s["default"], (kind, s["name"], value)
            checked += 1
    assert checked >= 30  # every kind's numbers, choices and switches
