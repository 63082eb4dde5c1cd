"""Jobs survive their workers: a worker killed mid-job (SIGKILL), a worker stopped (SIGTERM)
and a running job cancelled, with real worker processes and the tiny model."""

import time

from studio_helpers import EXAMPLE, Api, account

# a job that runs for seconds with the tiny model: a 4 s loop, 100 steps a window
LONG = {"kind": "loop", "prompt": "a ball spins", "seconds": 4, "aspect": "1:1", "size": 64}
LONG |= {"steps": 100, "seed": 0}


def _wait_running(api: Api, video_id: str, at_least: float = 0.05, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        video = api.get(f"/api/videos/{video_id}").json()
        if video["status"] == "running" and video["progress"] >= at_least:
            return video
        assert video["status"] in ("queued", "running"), video
        assert time.monotonic() < deadline, f"not running after {timeout} s: {video}"
        time.sleep(0.05)


def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes(settings, client, start_worker):
    api = Api(client, account(settings, "alice"))
    video_id = api.create(LONG)
    first = start_worker(settings)
    running = _wait_running(api, video_id)
    assert running["progress"] < 1 and running["attempts"] == 1
    first.kill()
    assert api.get(f"/api/videos/{video_id}").json()["status"] == "running"  # as it was left
    start_worker(settings)  # finds the dead worker's job and queues it again
    video = api.wait(video_id, timeout=120)
    assert video["status"] == "succeeded", video["error"]
    assert video["attempts"] == 2
    assert api.get(video["file_url"]).status_code == 200


def test_a_stopped_worker_gives_its_job_back(settings, client, start_worker):
    api = Api(client, account(settings, "alice"))
    video_id = api.create(LONG)
    first = start_worker(settings)
    _wait_running(api, video_id)
    first.stop()  # SIGTERM: the job goes back to the queue at once
    video = api.get(f"/api/videos/{video_id}").json()
    assert video["status"] == "queued" and "stopped" in video["error"]
    start_worker(settings)
    assert api.wait(video_id, timeout=120)["status"] == "succeeded"


def test_cancelling_a_running_job_stops_it(settings, client, start_worker):
    api = Api(client, account(settings, "alice"))
    long_id = api.create(LONG)
    start_worker(settings)
    _wait_running(api, long_id)
    assert api.delete(f"/api/videos/{long_id}").json()["status"] == "cancelled"
    # the worker drops it and goes on with the next job
    next_id = api.create(EXAMPLE)
    assert api.wait(next_id)["status"] == "succeeded"
    cancelled = api.get(f"/api/videos/{long_id}").json()
    assert cancelled["status"] == "cancelled" and cancelled["file_url"] is None
    assert not (settings.data_dir / "videos" / f"{long_id}.mp4").exists()
