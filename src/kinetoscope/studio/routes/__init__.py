"""The REST API, one router per area: users (accounts, sign-in, keys), uploads, videos,
feed and events (progress as server-sent events)."""
