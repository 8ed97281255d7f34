"""Typed keys of the shared resources the composition root puts on the application."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import aiohttp
from aiohttp import web

from config.settings import Settings
from entitlements.cache import CustomerCache

SETTINGS = web.AppKey("settings", Settings)
HTTP = web.AppKey("http_session", aiohttp.ClientSession)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
CACHE = web.AppKey("cache", CustomerCache)  # type: ignore[type-abstract]
