"""What the server refuses, and how it says so: plan limits, bad parameters, oversized
requests, and uploads that fail validation. No worker: nothing here gets to run."""

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from studio_helpers import EXAMPLE, Api, account, make_settings

from kinetoscope.studio.app import create_app
from kinetoscope.studio.db import User, Video, utcnow
from kinetoscope.studio.plans import PLANS, PlanLimitError, check_request, credits_for


def _png(width=32, height=32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(api: Api, name: str, content: bytes, kind: str = "image/png", attest: str = "true"):
    files = {"file": (name, content, kind)}
    data = {} if attest is None else {"rights_attested": attest}
    return api.post("/api/uploads", files=files, data=data)


def test_credits_scale_with_length_and_area():
    assert credits_for(1, 128) == 1 and credits_for(4, 128) == 4
    assert credits_for(4, 256) == 16 and credits_for(1, 64) == 1  # never under one
    assert credits_for(2.5, 128) == 3


def test_the_example_request_is_accepted_on_every_plan(settings, client):
    for tier in PLANS:
        api = Api(client, account(settings, f"user-{tier}", tier))
        answer = api.post("/api/videos", json=EXAMPLE)
        assert answer.status_code == 202 and answer.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("tier", "change", "status", "message"),
    [
        ("free", {"size": 144}, 403, "free plan makes videos up to a 128-pixel short side"),
        ("plus", {"size": 208}, 403, "plus plan makes videos up to a 192-pixel short side"),
    ],
)
def test_plan_size_limits(settings, client, tier, change, status, message):
    api = Api(client, account(settings, "someone", tier))
    answer = api.post("/api/videos", json=EXAMPLE | change)
    assert answer.status_code == status and message in answer.json()["detail"]


def test_plan_duration_limit_counts_the_whole_video(settings, client):
    """An extension's length is the source's plus what it adds: the free plan's 4 s."""
    api = Api(client, account(settings, "frugal", "free"))
    with client.app.state.studio.db.session() as session:
        user = session.query(User).filter_by(name="frugal").one()
        session.add(_finished_video("a" * 32, user.id, seconds=3.0))
    answer = api.post("/api/videos", json={"kind": "extend", "video": "a" * 32, "seconds": 2})
    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "the free plan makes videos up to 4 s; this one would be 5 s"
    )
    assert (
        api.post(
            "/api/videos", json={"kind": "extend", "video": "a" * 32, "seconds": 1}
        ).status_code
        == 202
    )


def test_plan_concurrent_jobs(settings, client):
    api = Api(client, account(settings, "busy", "free"))
    assert api.post("/api/videos", json=EXAMPLE).status_code == 202
    answer = api.post("/api/videos", json=EXAMPLE)
    assert answer.status_code == 429
    assert "runs 1 job(s) at once and you have 1 queued or running" in answer.json()["detail"]


def test_plan_monthly_credits(settings, client):
    api = Api(client, account(settings, "spent", "free"))
    with client.app.state.studio.db.session() as session:
        user = session.query(User).filter_by(name="spent").one()
        session.add(_finished_video("b" * 32, user.id, seconds=3.0, credits=100))
        # last month's videos do not count, nor failed ones
        old = _finished_video("c" * 32, user.id, seconds=3.0, credits=100)
        old.created_at = utcnow() - timedelta(days=40)
        session.add(old)
    answer = api.post("/api/videos", json=EXAMPLE)
    assert answer.status_code == 402
    assert "costs 1 credits and 0 of the free plan's 100 are left" in answer.json()["detail"]
    me = api.get("/api/users/me").json()
    assert me["credits_used"] == 100 and me["credits_left"] == 0


def test_check_request_order_and_statuses():
    free = PLANS["free"]
    with pytest.raises(PlanLimitError) as refused:
        check_request(free, 10, 64, active_jobs=5, credits_used=1000)
    assert refused.value.status == 403  # the video's own limits first
    with pytest.raises(PlanLimitError) as refused:
        check_request(free, 1, 64, active_jobs=1, credits_used=0)
    assert refused.value.status == 429
    assert check_request(free, 4, 128, active_jobs=0, credits_used=96) == 4


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"seconds": 9}, "unsupported duration 9.0 s; this model makes 1 to 4 s"),
        ({"seconds": -1}, "seconds: Input should be greater than 0"),
        ({"size": 70}, "unsupported size 70; the short side must be a multiple of 16"),
        ({"aspect": "4:3"}, "unsupported aspect '4:3'"),
        ({"steps": 0}, "steps: Input should be greater than or equal to 1"),
        ({"prompt": ""}, "prompt: String should have at least 1 character"),
        ({"prompt": "x" * 1001}, "prompt: String should have at most 1000 characters"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"kind": "paint"}, "does not match any of the expected tags"),
        ({"kind": "remix", "video": "ab12"}, "no upload or video ab12 that you can use"),
        ({"kind": "remix", "video": "../etc"}, "video: String should match pattern"),
    ],
)
def test_bad_parameters_are_4xx_with_a_clear_message(settings, client, body, message):
    api = Api(client, account(settings, "careless"))
    base = EXAMPLE if body.get("kind") in (None, "generate") else {}
    answer = api.post("/api/videos", json=base | body)
    assert answer.status_code in (404, 422), answer.text
    assert message in answer.json()["detail"]


def test_requests_need_an_account_and_a_valid_key(client):
    assert Api(client, None).post("/api/videos", json=EXAMPLE).status_code == 401
    wrong = Api(client, "ks_not-a-key").post("/api/videos", json=EXAMPLE)
    assert wrong.status_code == 401 and wrong.json()["detail"] == "unknown API key"


def test_oversized_bodies_are_refused(settings, client):
    """By their Content-Length, and while they stream in when they have none."""
    api = Api(client, account(settings, "verbose"))
    body = b'{"kind": "generate", "prompt": "' + b"x" * 300_000 + b'"}'
    headers = api.headers | {"content-type": "application/json"}
    for content in (body, (body[i : i + 4096] for i in range(0, len(body), 4096))):
        answer = client.post("/api/videos", content=content, headers=headers)
        assert answer.status_code == 413 and "larger than" in answer.json()["detail"]


def test_upload_validation(settings, client, tmp_path):
    api = Api(client, account(settings, "uploader"))
    missing = _upload(api, "a.png", _png(), attest=None)
    assert missing.status_code == 422 and "rights_attested" in missing.text
    refused = _upload(api, "a.png", _png(), attest="false")
    assert refused.status_code == 422 and "attest" in refused.json()["detail"]
    text = _upload(api, "notes.txt", b"hello", "text/plain")
    assert text.status_code == 415 and "unsupported file type" in text.json()["detail"]
    broken = _upload(api, "broken.png", b"\x89PNG not really")
    assert broken.status_code == 422 and "'broken.png' cannot be decoded" in broken.json()["detail"]
    tiny = _upload(api, "tiny.png", _png(8, 8))
    assert tiny.status_code == 422 and "at least 16 pixels" in tiny.json()["detail"]
    good = _upload(api, "good.png", _png())
    assert good.status_code == 201 and good.json()["media"] == "image"
    assert api.get(f"/api/uploads/{good.json()['id']}").json()["sha256"] == good.json()["sha256"]
    # nothing of the refused files is kept
    assert len(list((settings.data_dir / "uploads").iterdir())) == 1
    # an image is not a video
    remix = api.post("/api/videos", json={"kind": "remix", "video": good.json()["id"]})
    assert remix.status_code == 422 and "is an image, not a video" in remix.json()["detail"]


def test_uploads_over_the_size_limit(tmp_path, model_folder):
    settings = make_settings(tmp_path / "data", model_folder, max_upload_bytes=20_000)
    with TestClient(create_app(settings)) as client:
        api = Api(client, account(settings, "big"))
        answer = _upload(api, "big.png", np.random.default_rng(0).bytes(50_000))
        assert answer.status_code == 413
    assert list((settings.data_dir / "uploads").iterdir()) == []


def _finished_video(video_id: str, user_id: int, seconds: float, credits: int = 1) -> Video:
    return Video(
        id=video_id,
        user_id=user_id,
        kind="generate",
        parameters={"kind": "generate", "prompt": "made before"},
        status="succeeded",
        seconds=seconds,
        size=64,
        credits=credits,
        file=f"videos/{video_id}.mp4",
    )


def test_refused_prompts_never_reach_the_queue(settings, client):
    api = Api(client, account(settings, "provocateur"))
    answer = api.post("/api/videos", json=EXAMPLE | {"prompt": "a deepfake of Barack Obama"})
    assert answer.status_code == 400, answer.text
    assert "real" in answer.json()["detail"].lower()
    assert api.get("/api/videos").json()["videos"] == []  # nothing was queued


def test_simultaneous_requests_never_pass_the_jobs_at_once_limit(any_database):
    """Rounds of eight requests at the same moment for a plan of two jobs at once: in each,
    two are queued, whichever they are, and six refused (the count and the insert are one
    step); the two are cancelled before the next round."""
    requests, rounds = 8, 4
    with TestClient(create_app(any_database)) as client:
        api = Api(client, account(any_database, "eager", "plus"))
        assert api.get("/api/users/me").status_code == 200  # the key's first use is recorded
        start = threading.Barrier(requests)

        def submit(seed: int):
            start.wait()
            return api.post("/api/videos", json=EXAMPLE | {"seed": seed})

        with ThreadPoolExecutor(requests) as pool:
            for round_number in range(rounds):
                seeds = range(round_number * requests, (round_number + 1) * requests)
                answers = list(pool.map(submit, seeds))
                statuses = sorted(answer.status_code for answer in answers)
                assert statuses == [202] * 2 + [429] * 6, f"round {round_number}: {statuses}"
                for answer in answers:
                    if answer.status_code == 202:
                        assert api.delete(f"/api/videos/{answer.json()['id']}").status_code == 200
        with client.app.state.studio.db.session() as session:
            stored = session.query(Video).count()
    assert stored == 2 * rounds
