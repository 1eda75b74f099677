"""The admin web: server-rendered pages over the store, for committee offices and secretaries.

`create_app(sessionmaker, settings, clock=None, outbox_notify=None)` builds the Starlette app;
`serve_admin(app, host, port)` runs it with uvicorn in the current event loop, beside the bot.
"""

from __future__ import annotations

from admin.web.app import create_app, public_base
from admin.web.server import serve_admin, sign_in_url

__all__ = ["create_app", "public_base", "serve_admin", "sign_in_url"]
