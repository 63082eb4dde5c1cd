"""The studio's commands: `users create` prints a working API key on its last line, and
`serve` runs the app with a real uvicorn and a worker beside it. The command line itself
works without the studio extra (nothing of it is imported until a studio command runs)."""

import subprocess
import sys
import time

import httpx
from sqlalchemy import select
from studio_helpers import EXAMPLE, free_port

from kinetoscope.cli import main
from kinetoscope.studio.db import Database, Worker


def test_users_create_prints_the_key_alone_on_the_last_line(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["users", "create", "ada", "--tier", "plus", "--admin", "--data", str(data)]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("ks_") and " " not in key
    assert main(["users", "create", "ada", "--data", str(data)]) == 2
    assert "the user name 'ada' is taken" in capsys.readouterr().err
    assert main(["users", "create", "x!", "--data", str(data)]) == 2


def test_the_command_line_does_not_import_the_studio():
    code = (
        "import sys; from kinetoscope.cli import build_parser; build_parser(); "
        "roots = {name.split('.')[0] for name in sys.modules}; "
        "print(bool(roots & {'fastapi', 'sqlalchemy', 'huey'}))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


def test_serve_runs_the_app_and_a_worker(tmp_path, model_folder, capsys):
    data, port = tmp_path / "data", free_port()
    main(["users", "create", "ada", "--tier", "pro", "--data", str(data)])
    key = capsys.readouterr().out.strip().splitlines()[-1]
    command = [sys.executable, "-m", "kinetoscope", "serve", "--port", str(port)]
    command += ["--data", str(data), "--model", str(model_folder)]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}
        ) as http:
            _wait_for(lambda: http.get("/api/model").status_code == 200, server)
            assert "Kinetoscope Studio" in http.get("/").text
            assert "/api/videos" in http.get("/openapi.json").json()["paths"]
            video_id = http.post("/api/videos", json=EXAMPLE).json()["id"]
            _wait_for(
                lambda: http.get(f"/api/videos/{video_id}").json()["status"] == "succeeded", server
            )
            assert http.get(f"/api/videos/{video_id}/file").content[4:8] == b"ftyp"
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    assert server.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]
    # its worker stopped with it, and said so
    database = Database(f"sqlite:///{data / 'studio.db'}")
    with database.session() as session:
        assert session.scalars(select(Worker)).all() == []
    database.dispose()


def _wait_for(condition, server, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited"
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")
