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
import numpy as np
import pytest
from PIL import Image
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
        cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
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
        # 6. the storyboard editor: a text card, then an image card uploaded on the page
        page.goto(f"{server}/#/storyboard")
        cards = page.locator("#cards .card")
        expect(cards).to_have_count(2)
        page.fill("#board-seconds", "2")
        page.select_option("#aspect", "1:1")
        page.select_option("#size", "64")
        image_card = cards.nth(1)
        image_card.locator(".card-start").fill("1")
        image_card.locator(".card-kind").select_option("image")
        image_card.locator(".card-file").set_input_files(_square_png(tmp_path / "square.png"))
        image_card.locator(".card-upload").click()  # not attested: refused on the page
        expect(image_card.locator(".card-message")).to_contain_text("I hold the rights")
        assert httpx.get(f"{server}/api/uploads", cookies=cookies).json() == []
        image_card.locator(".card-rights").check()
        image_card.locator(".card-upload").click()
        expect(image_card.locator(".card-message")).to_have_text("Uploaded square.png.")
        expect(image_card.locator(".card-input option:checked")).to_have_text("square.png (64×64)")
        image_card.locator(".card-prompt").fill("The blue square slides away.")
        # a video card offers the user's finished videos
        page.click("text=Add a card")
        extra = cards.nth(2)
        extra.locator(".card-kind").select_option("video")
        finished = extra.locator(".card-input option", has_text="your video: Bouncing ball")
        expect(finished).to_have_count(1)
        extra.locator("button", has_text="Remove").click()
        expect(cards).to_have_count(2)
        page.screenshot(path=shots / "storyboard.png")
        page.click("button[type=submit]")
        expect(page.locator("video#player")).to_be_visible(timeout=90_000)
        expect(page.locator("dd", has_text="storyboard")).to_be_visible()
        storyboard_id = page.url.rsplit("/", 1)[-1]
        browser.close()
    # the storyboard was made from the text card and the uploaded image, at its start
    storyboard = httpx.get(f"{server}/api/videos/{storyboard_id}", cookies=cookies).json()
    (upload,) = httpx.get(f"{server}/api/uploads", cookies=cookies).json()
    assert storyboard["status"] == "succeeded"
    assert storyboard["seconds"] == pytest.approx(2, abs=0.1)
    assert storyboard["parameters"]["board"]["cards"] == [
        {"start": 0, "prompt": "A red ball rolls to the right."},
        {"start": 1, "prompt": "The blue square slides away.", "image": upload["id"]},
    ]
    assert upload["filename"] == "square.png" and upload["rights_attested"] is True
    # an anonymous visitor sees the published video in the feed, and not the storyboard
    feed = httpx.get(f"{server}/api/feed").json()["videos"]
    assert [video["id"] for video in feed] == [video_id]


def _square_png(path: Path) -> Path:
    """A 64×64 PNG: a blue square on grey."""
    pixels = np.full((64, 64, 3), 128, dtype=np.uint8)  # (H, W, 3)
    pixels[16:48, 16:48] = (40, 60, 220)
    Image.fromarray(pixels).save(path)
    return path
