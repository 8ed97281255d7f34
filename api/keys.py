"""Every typed key the composition root puts on the application, in one place.

`server.app` and its cleanup contexts set them; handlers read them. Types that would pull a
store adapter into modules that must not import one are named for type checkers only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import aiohttp
import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry

from config.settings import Settings

if TYPE_CHECKING:
    import jinja2

    from api.auth import ApiAuthenticator, Authenticator
    from cache.answers import CustomerCache
    from cache.health import CacheHealth
    from cache.local import LocalReads
    from console.actions import StoreActions
    from entitlements.model import Clock, Store
    from receipts.apple.adapter import AppleStore
    from receipts.google.adapter import GooglePlayStore
    from receipts.port import StoreActing
    from services.console_reads import ConsoleReads
    from services.ingest import EntitlementService
    from services.offers import Offers
    from services.operations import CustomerOperations
    from services.outbound import OutboundDelivery
    from services.refund_requests import ConsumptionAnswers, RefundRequests
    from services.retention import PayloadPruner
    from services.revenue import Revenue
    from services.store_messages import StoreMessages
    from services.support_actions import SupportActions

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
HTTP = web.AppKey("http_session", aiohttp.ClientSession)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
POOL = web.AppKey("pool", asyncpg.Pool)
CACHE: web.AppKey[CustomerCache] = web.AppKey("cache")
# Whether Redis answers (absent: no Redis configured, `url = "off"`).
CACHE_HEALTH: web.AppKey[CacheHealth] = web.AppKey("cache_health")
# The per-process cache of rendered customer answers; None without Redis (no invalidation).
LOCAL_READS: web.AppKey[LocalReads | None] = web.AppKey("local_reads")
SERVICE: web.AppKey[EntitlementService] = web.AppKey("entitlement_service")
# The main use case: a store message (webhook, submission) becomes journaled state.
STORE_MESSAGES: web.AppKey[StoreMessages] = web.AppKey("store_messages")
OPERATIONS: web.AppKey[CustomerOperations] = web.AppKey("customer_operations")
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
RETENTION: web.AppKey[PayloadPruner] = web.AppKey("payload_retention")
OUTBOUND: web.AppKey[OutboundDelivery] = web.AppKey("outbound_delivery")
# The stores' support actions (extend, revoke), filled by the store contexts when configured.
STORE_ACTING: web.AppKey[dict[Store, StoreActing]] = web.AppKey("store_acting")
SUPPORT_ACTIONS: web.AppKey[SupportActions] = web.AppKey("support_actions")
OFFERS: web.AppKey[Offers] = web.AppKey("offers")
REVENUE: web.AppKey[Revenue] = web.AppKey("revenue")
REFUND_REQUESTS: web.AppKey[RefundRequests] = web.AppKey("refund_requests")
REFUND_ANSWERS: web.AppKey[ConsumptionAnswers] = web.AppKey("refund_answers")
APPLE: web.AppKey[AppleStore] = web.AppKey("apple_store")  # absent: App Store not configured
GOOGLE: web.AppKey[GooglePlayStore] = web.AppKey("google_play_store")  # absent: not configured
# The operator console (console/): its templates, the API keys it signs in with, and its
# store actions (re-read, replay) built by services.store_actions.
CONSOLE_TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("console_templates")
CONSOLE_KEYS: web.AppKey[ApiAuthenticator] = web.AppKey("console_keys")
CONSOLE_STORE: web.AppKey[StoreActions] = web.AppKey("console_store")
# The console's pages and sessions, and the change feed's pages.
CONSOLE_READS: web.AppKey[ConsoleReads] = web.AppKey("console_reads")
