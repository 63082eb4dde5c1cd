"""The web UI in a real browser: Debian's Chromium driven by Playwright, against
`kinetoscope serve` (real uvicorn and a worker) with the tiny model. Signs in, creates a
video from the create page, watches its progress, opens it, publishes it, features it, and
finds it in the feed, taking a screenshot of each page (into $KINETOSCOPE_SCREENSHOTS when
set, e.g. docs/screenshots, else the test's temporary folder)."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from studio_helpers import free_port

from kinetoscope.cli import main

VIEWPORT = {"width": 1000, "height": 680}


def _chromium() -> str:
    """Debian's Chromium (apt-get install chromium): the binary, else its wrapper script."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError("Chromium is not installed: apt-get install -y chromium")


@pytest.fixture
def server(tmp_path, model_folder, capsys):
    """`kinetoscope serve` on a free port, with an admin account 'ada' (password
    'lovelace-1843'); yields its base URL."""
    data, port = tmp_path / "data", free_port()
    account = ["users", "create", "ada", "--tier", "pro", "--admin", "--data", str(data)]
    assert main([*account, "--password", "lovelace-1843"]) == 0
    capsys.readouterr()
    command = [sys.executable, "-m", "kinetoscope", "serve", "--port", str(port)]
    command += ["--data", str(data), "--model", str(model_folder)]
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        try:
            if httpx.get(f"{url}/api/model").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(30)


def test_create_watch_open_publish_and_feature_in_the_browser(server, tmp_path):
    shots = Path(os.environ.get("KINETOSCOPE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        # 1. sign in (a session cookie from then on)
        page.goto(f"{server}/#/login")
        page.fill("#name", "ada")
        page.fill("#password", "lovelace-1843")
        page.screenshot(path=shots / "login.png")
        page.click("button[type=submit]")
        expect(page.locator("#account")).to_contain_text("ada", timeout=10_000)
        # 2. create a video
        page.goto(f"{server}/#/create")
        page.fill("#prompt", "A red ball falls and bounces.")
        page.select_option("#aspect", "1:1")
        page.fill("#seconds", "1")
        page.select_option("#size", "64")
        page.fill("#seed", "3")
        page.fill("#title", "Bouncing ball")
        page.screenshot(path=shots / "create.png")
        page.click("#create")
        # 3. its page shows the progress until the video plays
        expect(page).to_have_url(re.compile(r"#/video/[0-9a-f]{32}$"))
        player = page.locator("video#player")
        expect(player).to_be_visible(timeout=60_000)
        expect(page.locator(".badge.succeeded")).to_be_visible()
        assert page.evaluate("document.querySelector('video#player').src").endswith("/file")
        video_id = page.url.rsplit("/", 1)[-1]
        # 4. publish it, then feature it (ada is an admin)
        page.click("#publish")
        expect(page.locator(".badge", has_text="public")).to_be_visible()
        page.click("#feature")
        expect(page.locator(".badge.featured")).to_be_visible()
        page.screenshot(path=shots / "video.png")
        # 5. it is in the library and in the feed's featured row
        page.goto(f"{server}/#/library")
        expect(page.locator(f"#library a[data-id='{video_id}']")).to_be_visible()
        page.screenshot(path=shots / "library.png")
        page.goto(f"{server}/#/feed")
        expect(page.locator(f"#featured a[data-id='{video_id}']")).to_be_visible()
        page.screenshot(path=shots / "feed.png")
        # 6. the storyboard editor: two cards make one video
        page.goto(f"{server}/#/storyboard")
        expect(page.locator("#cards .card-row")).to_have_count(2)
        page.screenshot(path=shots / "storyboard.png")
        page.fill("#board-seconds", "2")
        page.select_option("#size", "64")
        page.locator("#cards .card-row input[type=number]").nth(1).fill("1")
        page.click("button[type=submit]")
        expect(page.locator("video#player")).to_be_visible(timeout=60_000)
        expect(page.locator("dd", has_text="storyboard")).to_be_visible()
        browser.close()
    # an anonymous visitor sees the published video in the feed, and not the storyboard
    feed = httpx.get(f"{server}/api/feed").json()["videos"]
    assert [video["id"] for video in feed] == [video_id]
