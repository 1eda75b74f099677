"""Logging set-up: one line per event, no personal data (we log ids and kinds, never texts)."""

from __future__ import annotations

import logging


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosqlite logs every call with its arguments at DEBUG: the statement's values, names and
    # texts among them. Never below INFO, whatever the level (SQLAlchemy's own DEBUG log is safe:
    # the engine hides parameters, storage/db.py).
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger().level))
    # aiogram logs every update at INFO with its duration; keep that at WARNING unless debugging.
    if level.upper() != "DEBUG":
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)
