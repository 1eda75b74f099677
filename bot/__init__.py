"""The runtime. Every `branchbot` process starts by importing this package, before aiogram."""

from bot.deferred_types import defer_aiogram_type_builds

defer_aiogram_type_builds()
