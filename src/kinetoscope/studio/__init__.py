"""Kinetoscope Studio: a self-hosted web app around the creative tools.

Layers, one module each: `settings` (where things live, limits), `db` (SQLAlchemy models and
sessions; Alembic `migrations/` run at start), `schemas` (the API's pydantic models), `auth`
(accounts, password and API-key hashing, browser sessions), `plans` (tiers and their limits),
`jobs` (the life of a video job in the database), `kinds` (a video kind's parameters, checked
and turned into a tool call), `storage` (files under the data folder), `queue` (huey),
`worker` (the process that loads the model once and runs jobs), `errors` (refusals with their
HTTP status), `deps` (what routes depend on: parts, session, caller), `routes/` (the REST
API), `app` (the FastAPI application, `serve`), `cli` (the `serve`, `worker` and `users`
commands) and `web/` (the browser UI: static files, no build step).

Needs the ``studio`` extra: ``pip install 'kinetoscope[studio]'``. See docs/studio.md.
"""
