"""The queue: paying plans run first, on SQLite and on Redis (a real redis-server on a free
port: apt-get install redis-server), and a worker on Redis makes videos end to end."""

import shutil
import subprocess
import time

import pytest
import redis
from fastapi.testclient import TestClient
from studio_helpers import EXAMPLE, Api, account, free_port, make_settings

from kinetoscope.studio.app import create_app
from kinetoscope.studio.db import Video


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server of this test's own, on a free port, saving nothing."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: apt-get install -y redis-server"
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and server.poll() is None, "redis did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    server.terminate()
    server.wait(10)


@pytest.fixture(params=["sqlite", "redis"])
def queue_settings(request, tmp_path, model_folder):
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return make_settings(tmp_path / "data", model_folder, redis_url=redis_url)


def test_paying_plans_run_first(queue_settings, start_worker):
    with TestClient(create_app(queue_settings)) as client:
        free = Api(client, account(queue_settings, "thrifty", "free"))
        plus = Api(client, account(queue_settings, "keen", "plus"))
        pro = Api(client, account(queue_settings, "eager", "pro"))
        # queued in the opposite order of their plans, before any worker runs
        order = [free.create(EXAMPLE), plus.create(EXAMPLE), pro.create(EXAMPLE)]
        start_worker(queue_settings)
        with client.app.state.studio.db.session() as session:
            for api, video_id in zip((free, plus, pro), order, strict=True):
                assert api.wait(video_id)["status"] == "succeeded"
            started = {row.id: row.started_at for row in session.query(Video)}
    assert sorted(order, key=started.get) == order[::-1]


def test_a_worker_on_redis_makes_videos(redis_url, tmp_path, model_folder, start_worker):
    settings = make_settings(tmp_path / "data", model_folder, redis_url=redis_url)
    assert not settings.queue_file.exists()
    with TestClient(create_app(settings)) as client:
        api = Api(client, account(settings, "alice"))
        start_worker(settings)
        video = api.wait(api.create(EXAMPLE))
        assert video["status"] == "succeeded"
        assert api.get(video["file_url"]).status_code == 200
    assert not settings.queue_file.exists()  # the queue was Redis, not SQLite
