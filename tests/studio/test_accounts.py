"""Accounts over the API: signing in and out with a session cookie, API keys, and accounts
made by an admin."""

from studio_helpers import Api, account


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
