"""The studio's REST API with the real app (TestClient) and real worker processes on SQLite,
with a tiny random model: jobs end to end, the kinds with inputs, privacy, credit, likes,
featuring, cancelling, and a restart of the server."""

import io
import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from studio_helpers import EXAMPLE, Api, account

from kinetoscope.io.video import Video, read_video, write_video
from kinetoscope.results import record_path
from kinetoscope.studio.app import create_app


def _png(width=64, height=48) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _mp4(tmp_path, frames=17) -> bytes:
    pixels = torch.randint(0, 255, (frames, 64, 64, 3), dtype=torch.uint8)
    path = tmp_path / "clip.mp4"
    write_video(path, Video(pixels, 16))
    return path.read_bytes()


def test_create_poll_download(settings, client, start_worker, tmp_path):
    api = Api(client, account(settings, "alice"))
    video_id = api.create(EXAMPLE)
    assert api.get(f"/api/videos/{video_id}").json()["status"] in ("queued", "running")
    start_worker(settings)
    video = api.wait(video_id)
    assert video["status"] == "succeeded", video["error"]
    assert video["progress"] == 1.0 and video["attempts"] == 1
    assert video["parameters"]["prompt"] == "a red ball bounces"
    answer = api.get(video["file_url"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
    (tmp_path / "got.mp4").write_bytes(answer.content)
    clip = read_video(tmp_path / "got.mp4")
    assert (clip.num_frames, clip.height, clip.width) == (17, 64, 64)
    # written by results.save: the sidecar record names the tool and its arguments
    stored = settings.data_dir / "videos" / f"{video_id}.mp4"
    record = json.loads(record_path(stored).read_text())
    assert record["tool"] == "generate" and record["arguments"]["seed"] == 0
    download = api.get(video["file_url"], params={"download": True})
    assert download.headers["content-disposition"].startswith("attachment")


def test_events_stream_progress_until_the_end(settings, client, start_worker):
    api = Api(client, account(settings, "alice"))
    start_worker(settings)
    video_id = api.create(EXAMPLE | {"steps": 20})
    with api.client.stream("GET", f"/api/videos/{video_id}/events", headers=api.headers) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line.removeprefix("data: "))
            for line in answer.iter_lines()
            if line.startswith("data: ")
        ]
    assert events[-1]["status"] == "succeeded"
    fractions = [event["progress"] for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_kinds_with_inputs_uploads_and_credit(settings, client, start_worker, tmp_path):
    alice = Api(client, account(settings, "alice"))
    bob = Api(client, account(settings, "bob"))
    start_worker(settings)
    image = alice.post(
        "/api/uploads",
        files={"file": ("still.png", _png(), "image/png")},
        data={"rights_attested": "true"},
    ).json()
    assert image["media"] == "image" and (image["width"], image["height"]) == (64, 48)
    clip = alice.post(
        "/api/uploads",
        files={"file": ("clip.mp4", _mp4(tmp_path), "video/mp4")},
        data={"rights_attested": "true"},
    ).json()
    assert clip["media"] == "video" and clip["frames"] == 17
    small = {"size": 64, "steps": 2, "aspect": "1:1"}
    animated = alice.create({"kind": "animate", "image": image["id"], "prompt": "go"} | small)
    extended = alice.create({"kind": "extend", "video": clip["id"], "seconds": 1} | small)
    assert alice.wait(animated)["status"] == "succeeded"
    done = alice.wait(extended)
    assert done["status"] == "succeeded" and done["seconds"] == pytest.approx(2.0, abs=0.1)
    # bob remixes alice's video once she publishes it, and the remix credits her
    remix = {"kind": "remix", "video": animated, "prompt": "again"} | small
    assert bob.post("/api/videos", json=remix).status_code == 404  # private: not there
    assert alice.patch(f"/api/videos/{animated}", json={"public": True}).status_code == 200
    remixed = bob.wait(bob.create(remix))
    assert remixed["status"] == "succeeded"
    assert remixed["credited_creator"] == "alice" and remixed["source_video"] == animated
    # the kinds of two inputs, a loop of a video, and a storyboard of text cards
    two = {"video_a": clip["id"], "video_b": extended}
    others = [
        {"kind": "connect", **two, "seconds": 1},
        {"kind": "blend", **two, "curve": [[0, 0], [1, 1]]},
        {"kind": "loop", "video": clip["id"]},
        {
            "kind": "storyboard",
            "board": {
                "seconds": 2,
                "cards": [
                    {"start": 0, "prompt": "a ball rolls"},
                    {"start": 1, "prompt": "it stops"},
                ],
            },
        },
    ]
    for body in others:
        made = alice.wait(alice.create(body | small))
        assert made["status"] == "succeeded", (body["kind"], made["error"])
    # bob may not use alice's uploads
    stolen = bob.post("/api/videos", json={"kind": "animate", "image": image["id"]} | small)
    assert stolen.status_code == 404


def test_private_videos_are_invisible_to_others(settings, client):
    alice = Api(client, account(settings, "alice"))
    bob = Api(client, account(settings, "bob"))
    anonymous = Api(client, None)
    video_id = alice.create(EXAMPLE)
    for other in (bob, anonymous):
        assert other.get(f"/api/videos/{video_id}").status_code == 404
        assert other.get(f"/api/videos/{video_id}/file").status_code == 404
        assert other.get(f"/api/videos/{video_id}/events").status_code == 404
    assert bob.delete(f"/api/videos/{video_id}").status_code == 404
    assert bob.patch(f"/api/videos/{video_id}", json={"public": True}).status_code == 404
    assert bob.post(f"/api/videos/{video_id}/like").status_code == 404
    assert video_id not in [v["id"] for v in bob.get("/api/videos").json()["videos"]]
    assert alice.get(f"/api/videos/{video_id}").json()["mine"] is True
    # published, bob sees it but may not change it; unpublished, it is gone again
    alice.patch(f"/api/videos/{video_id}", json={"public": True})
    assert bob.get(f"/api/videos/{video_id}").status_code == 200
    assert bob.patch(f"/api/videos/{video_id}", json={"public": False}).status_code == 403
    alice.patch(f"/api/videos/{video_id}", json={"public": False})
    assert bob.get(f"/api/videos/{video_id}").status_code == 404


def test_feed_likes_and_featuring(settings, client, start_worker):
    alice = Api(client, account(settings, "alice"))
    bob = Api(client, account(settings, "bob"))
    admin = Api(client, account(settings, "root", admin=True))
    start_worker(settings)
    shown = alice.create(EXAMPLE | {"public": True, "title": "ball"})
    hidden = alice.create(EXAMPLE | {"seed": 1})
    alice.wait(shown), alice.wait(hidden)
    feed = [video["id"] for video in Api(client, None).get("/api/feed").json()["videos"]]
    assert shown in feed and hidden not in feed
    liked = bob.post(f"/api/videos/{shown}/like").json()
    assert liked["likes"] == 1 and liked["liked"] is True
    assert bob.post(f"/api/videos/{shown}/like").json()["likes"] == 1  # once per account
    assert bob.delete(f"/api/videos/{shown}/like").json()["likes"] == 0
    refused = bob.patch(f"/api/videos/{shown}", json={"featured": True})
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert admin.patch(f"/api/videos/{shown}", json={"featured": True}).json()["featured"]
    featured = Api(client, None).get("/api/feed", params={"featured": True}).json()["videos"]
    assert [video["id"] for video in featured] == [shown]


def test_cancel_a_queued_job_and_delete_a_video(settings, client, start_worker):
    api = Api(client, account(settings, "alice"))
    cancelled = api.create(EXAMPLE)
    answer = api.delete(f"/api/videos/{cancelled}")
    assert answer.json() == {"id": cancelled, "status": "cancelled"}
    kept = api.create(EXAMPLE | {"seed": 2})
    start_worker(settings)
    assert api.wait(kept)["status"] == "succeeded"
    assert api.get(f"/api/videos/{cancelled}").json()["status"] == "cancelled"
    assert not (settings.data_dir / "videos" / f"{cancelled}.mp4").exists()
    # a finished video is deleted with its file
    assert api.delete(f"/api/videos/{kept}").json()["status"] == "deleted"
    assert api.get(f"/api/videos/{kept}").status_code == 404
    assert not (settings.data_dir / "videos" / f"{kept}.mp4").exists()


def test_a_server_restart_loses_no_job(settings, start_worker):
    with TestClient(create_app(settings)) as first:
        api = Api(first, account(settings, "alice"))
        waiting = [api.create(EXAMPLE | {"seed": seed}) for seed in range(2)]
    # the server is gone; a new one on the same data folder, then a worker
    with TestClient(create_app(settings)) as second:
        api = Api(second, api.headers["Authorization"].removeprefix("Bearer "))
        start_worker(settings)
        for video_id in waiting:
            video = api.wait(video_id)
            assert video["status"] == "succeeded"
            assert api.get(video["file_url"]).status_code == 200
