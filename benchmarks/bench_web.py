"""The web app's timings, measured as a user meets them, in headless Chromium (Selenium):

- page ready: from the moment `painterly web` prints its address to the form being usable;
- first preview: from clicking Paint on a default style job (VGG16, 512 px, the shared
  tubingen.jpg and starry_night.jpg) to the first picture in the preview;
- interrupt: from clicking Interrupt to the job's status saying so, and how many iterations
  ran after the click (the issue: "within one iteration").

Also saves the page as it paints (docs/images/web.png with --screenshot). Needs the [web]
extra, chromium and chromium-driver, and the real weights:

    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/bench_web.py --runs 3
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
FLAGS = ("--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
         "--disable-background-networking --disable-component-update --disable-sync "
         "--window-size=1400,1000").split()


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in FLAGS + [f"--user-data-dir={tempfile.mkdtemp()}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")),
                            options=options)


def one_run(screenshot: Path | None) -> dict:
    home = tempfile.mkdtemp()
    server = subprocess.Popen([sys.executable, "-m", "painterly", "web", "--port", "0",
                               "--home", home], stdout=subprocess.PIPE, text=True)
    driver = browser()
    try:
        line = server.stdout.readline()
        printed = time.perf_counter()
        driver.get(re.search(r"http://\S+", line).group(0))
        wait = WebDriverWait(driver, 120, poll_frequency=0.02,     # the page redraws
                             ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.find_elements(By.ID, "setting-size"))
        page_ready = time.perf_counter() - printed
        driver.find_element(By.ID, "file-photo").send_keys(str(IMAGES / "content/tubingen.jpg"))
        driver.find_element(By.ID, "file-painting").send_keys(
            str(IMAGES / "style/starry_night.jpg"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".thumb:not(.pending)")) == 2)
        # The worker warms up after start-up (modules, the optimiser's imports, weights);
        # the page says "live" once it has.
        wait.until(lambda d: d.find_element(By.ID, "connection").text == "live")
        clicked = time.perf_counter()
        driver.find_element(By.ID, "start").click()
        preview = driver.find_element(By.ID, "preview")
        wait.until(lambda d: (preview.get_attribute("src") or "").startswith("data:"))
        first_preview = time.perf_counter() - clicked
        wait.until(lambda d: int(preview.get_attribute("data-step") or 0) >= 20)
        if screenshot:
            driver.save_screenshot(str(screenshot))
        step_at_click = int(re.search(r"step (\d+)/", driver.find_element(
            By.ID, "progress-text").text).group(1))
        clicked = time.perf_counter()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#queue .interrupt").click()
                   or True)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#queue li.interrupted"))
        interrupt = time.perf_counter() - clicked
        text = driver.find_element(By.ID, "progress-text").text
        stopped_at = int(re.search(r"at step (\d+)/", text).group(1))
        return {"page_ready_s": page_ready, "first_preview_s": first_preview,
                "interrupt_s": interrupt, "iterations_after_click": stopped_at - step_at_click}
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--screenshot", type=Path, help="save the page as it paints")
    args = parser.parse_args()
    runs = [one_run(args.screenshot if i == 0 else None) for i in range(args.runs)]
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key:24} median {statistics.median(values):7.2f}   runs "
              + " ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
