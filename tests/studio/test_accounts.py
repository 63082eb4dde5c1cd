"""Accounts over the API: signing in and out with a session cookie, the limits on failed
sign-ins, API keys, and accounts made by an admin."""

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update
from studio_helpers import Api, account, make_settings

from kinetoscope.studio.app import create_app
from kinetoscope.studio.db import SignInFailure

WINDOW = timedelta(minutes=10)


def test_sign_in_with_a_password_and_out_again(settings, client):
    account(settings, "ada", password="lovelace-1843")
    wrong = client.post("/api/auth/login", json={"name": "ada", "password": "babbage-1822"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong user name or password"
    nobody = client.post("/api/auth/login", json={"name": "nobody", "password": "lovelace-1843"})
    assert nobody.status_code == 401  # the same answer: names cannot be probed
    signed_in = client.post("/api/auth/login", json={"name": "ada", "password": "lovelace-1843"})
    assert signed_in.status_code == 200
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/api/users/me").json()["name"] == "ada"  # the cookie, no key
    assert client.post("/api/auth/logout").status_code == 204
    assert client.get("/api/users/me").status_code == 401


def test_an_account_without_a_password_cannot_sign_in(settings, client):
    account(settings, "keyonly")
    answer = client.post("/api/auth/login", json={"name": "keyonly", "password": "anything-at-all"})
    assert answer.status_code == 401


def test_api_keys_are_shown_once_and_can_be_revoked(settings, client):
    api = Api(client, account(settings, "ada"))
    made = api.post("/api/users/me/keys", json={"label": "laptop"}).json()
    second = Api(client, made["key"])
    assert second.get("/api/users/me").json()["name"] == "ada"
    listed = api.get("/api/users/me/keys").json()
    assert [key["label"] for key in listed] == ["first key", "laptop"]
    assert all("key" not in key for key in listed)  # never shown again
    assert api.delete(f"/api/users/me/keys/{made['id']}").status_code == 204
    assert second.get("/api/users/me").status_code == 401


def test_only_admins_make_accounts(settings, client):
    admin = Api(client, account(settings, "root", admin=True))
    user = Api(client, account(settings, "ada"))
    body = {"name": "bob", "tier": "plus", "password": "bobs-passphrase"}
    refused = user.post("/api/users", json=body)
    assert refused.status_code == 403 and refused.json()["detail"] == "only an admin may do that"
    made = admin.post("/api/users", json=body)
    assert made.status_code == 201 and made.json()["user"]["plan"]["max_seconds"] == 30
    bob = Api(client, made.json()["key"])
    assert bob.get("/api/users/me").json()["tier"] == "plus"
    taken = admin.post("/api/users", json=body)
    assert taken.status_code == 409 and "taken" in taken.json()["detail"]
    short = admin.post("/api/users", json=body | {"name": "carol", "password": "short"})
    assert short.status_code == 422 and "8 to 200 characters" in short.json()["detail"]


def _sign_in(client, name: str, password: str, address: str = "testclient"):
    """A sign-in from the client address ``address`` (the app's own TestClient otherwise)."""
    other = TestClient(client.app, client=(address, 50000))
    return other.post("/api/auth/login", json={"name": name, "password": password})


def test_failed_sign_ins_are_limited_per_account(settings, client):
    """Ten failures in ten minutes, from any addresses, and the account's password sign-in is
    refused (the right password too) until the oldest is ten minutes old; stored in the
    database, so a restarted server refuses too."""
    account(settings, "ada", password="lovelace-1843")
    account(settings, "bob", password="bobs-passphrase")
    for guess in range(10):
        wrong = _sign_in(client, "ada", f"guess-{guess:04}", f"198.51.100.{guess}")
        assert wrong.status_code == 401
    refused = _sign_in(client, "ada", "lovelace-1843", "203.0.113.7")
    assert refused.status_code == 429
    assert refused.json()["detail"] == (
        "too many failed sign-ins of this account: 10 in 10 minutes; try again in 10 minutes"
    )
    assert 590 <= int(refused.headers["retry-after"]) <= 600
    assert _sign_in(client, "bob", "bobs-passphrase", "203.0.113.7").status_code == 200
    with TestClient(create_app(settings)) as restarted:
        assert _sign_in(restarted, "ada", "lovelace-1843").status_code == 429
    # ten minutes later (the failures made older), the right password signs in again
    with client.app.state.studio.db.session() as session:
        session.execute(update(SignInFailure).values(created_at=SignInFailure.created_at - WINDOW))
    assert _sign_in(client, "ada", "lovelace-1843").status_code == 200


def test_failed_sign_ins_are_limited_per_client(tmp_path, model_folder):
    settings = make_settings(tmp_path / "data", model_folder, sign_in_failures=3)
    account(settings, "bob", password="bobs-passphrase")
    with TestClient(create_app(settings)) as client:
        for name in ("ada", "bob", "nobody"):  # guesses at several names, one a non-account
            assert _sign_in(client, name, "not-the-password", "198.51.100.1").status_code == 401
        refused = _sign_in(client, "bob", "bobs-passphrase", "198.51.100.1")
        assert refused.status_code == 429
        assert refused.json()["detail"].startswith("too many failed sign-ins from your address")
        assert _sign_in(client, "bob", "bobs-passphrase", "198.51.100.2").status_code == 200


def test_a_right_password_forgets_the_accounts_failures(tmp_path, model_folder):
    settings = make_settings(tmp_path / "data", model_folder, sign_in_failures=3)
    account(settings, "ada", password="lovelace-1843")
    with TestClient(create_app(settings)) as client:
        answers = [_sign_in(client, "ada", "wrong-password").status_code for _ in range(2)]
        answers.append(_sign_in(client, "ada", "lovelace-1843").status_code)
        answers += [_sign_in(client, "ada", "wrong-password").status_code for _ in range(4)]
    assert answers == [401, 401, 200, 401, 401, 401, 429]


def test_simultaneous_sign_ins_never_pass_the_limit(any_database):
    """Eight wrong passwords at the same moment against a limit of three: at most three are
    checked (and counted), the others refused; the limit then holds as before."""
    settings = replace(any_database, sign_in_failures=3)
    account(settings, "ada", password="lovelace-1843")
    guesses = 8
    with TestClient(create_app(settings)) as client:
        start = threading.Barrier(guesses)

        def guess(number: int) -> int:
            start.wait()
            return _sign_in(client, "ada", f"guess-{number:04}", f"198.51.100.{number}").status_code

        with ThreadPoolExecutor(guesses) as pool:
            statuses = list(pool.map(guess, range(guesses)))
        checked = statuses.count(401)
        assert checked <= 3 and statuses.count(429) == guesses - checked
        with client.app.state.studio.db.session() as session:
            assert session.query(SignInFailure).count() == checked  # refusals are not counted
        for number in range(3 - checked):  # the failures left under the limit
            assert _sign_in(client, "ada", f"late-guess-{number}").status_code == 401
        assert _sign_in(client, "ada", "lovelace-1843").status_code == 429
