"""The delivery worker, split along its seams: `claiming` (due rows, leases), `sending` (one row
to Telegram and its outcome), `status` (the sender's progress message), `worker` (the loops that
tie them together, and pacing through the bot's gate). `python -m bot.delivery` runs it alone."""

from bot.delivery.sending import BadPayload, build_method
from bot.delivery.worker import DeliveryWorker, WorkerStats

__all__ = ["BadPayload", "DeliveryWorker", "WorkerStats", "build_method"]
