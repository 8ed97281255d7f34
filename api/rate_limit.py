"""Limits on failed credentials per client address and per API key name (contract §3: 429).

The rule
    Every failed credential counts against the client's address: an API key nobody has, a user
    token that does not verify (on any API route, `alias_token` included), a console sign-in
    with an unknown key. A console sign-in with a valid key that lacks the `admin` scope counts
    against the address and against that key's name (the only case where a name is known).
    A request without credentials is no failure. `[auth.rate_limit] max_failures` (30)
    failures within `window_seconds` (300) of a subject's first failure block it until that
    window ends (fixed windows): the failure that reaches the limit, and every request from
    the subject after it, answer 429 `too_many_failures` with `Retry-After` = seconds left.
    A success resets nothing: otherwise one valid user token (every app user has one) would
    let its holder interleave guesses forever. Console and API failures share one budget.

What a blocked address may still do (the NAT'd office, the carrier-grade NAT)
    A secret that can be guessed (an API key, the console's sign-in) is not even compared
    from a blocked address: 429 before any check, so a right guess looks like a wrong one and
    guessing stops, at the price that a service sharing the address with the attacker waits
    for the window too (give services their own egress address, or configure
    `trusted_proxies` so the real client is seen). A user token is a signature, which cannot
    be guessed, so it is still verified there and a valid one is served: the app users behind
    one NAT keep working when one of them (or an app looping on an expired token) trips the
    limit; only bad tokens are answered 429.

The client's address
    The socket peer. `X-Forwarded-For` only when the peer is one of `trusted_proxies`, and then
    the rightmost hop that is not itself a trusted proxy (hops left of it were written by the
    client and prove nothing). An IPv6 client counts per /64: one host usually holds a whole
    /64, so counting single addresses would not limit it.

Where the counts live
    In Redis (the `[redis]` URL, the embedded one included), so every worker and replica
    shares them: `receiptd:v1:auth_failures:address:<h>` and `…:key_name:<h>`, where `<h>` is
    32 hex characters of SHA-256 over a fixed prefix and the address or name (no address,
    name or presented secret in clear). The value is the count; `SET NX EX window` + `INCR`
    in one MULTI create it with its TTL, so every key expires. Known blocks are remembered in
    the process until they end, sparing Redis during an attack, and a client found unblocked
    is taken as unblocked for one second (see _CLEAR_SECONDS), sparing Redis a round trip
    per request with a valid key. With `[redis] url = "off"`, or
    while Redis cannot be reached, the counts live in each process's memory (logged once,
    `auth_rate_limit_in_process`): still a limit, per process — never open, never a 5xx.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio as aredis
import structlog
from aiohttp import web

from config.settings import RateLimitSettings
from entitlements.errors import TooManyFailures

log = structlog.get_logger(__name__)

KEY_PREFIX = "receiptd:v1:auth_failures:"
_HASH_PREFIX = b"receiptd auth failures v1\x00"
_REDIS_RETRY_SECONDS = 5.0  # after a Redis error, count in memory this long before retrying
_MAX_LOCAL_ENTRIES = 100_000  # bounds the in-process counters (and the remembered answers)
# A client Redis found unblocked is taken as unblocked this long by this process: a valid key
# then costs no Redis round trip per request (a read served from the process cache takes
# ~0.1 ms, a round trip about as much). A failure is always counted in Redis at once and its
# answer replaces what the process knew, so after another process trips the limit this one
# may still serve valid keys from that client for up to this long, but counts and refuses
# (429) every wrong guess.
_CLEAR_SECONDS = 1.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Subject:
    """What failures are counted against: a client address or an API key name."""

    kind: str  # "address" or "key_name"
    label: str  # for log lines only
    key: str  # the Redis key (and the in-memory one)


def address_subject(address: str) -> Subject:
    """The Subject counting failures from the client address `address`."""
    return Subject("address", address, _key("address", address))


def key_name_subject(name: str) -> Subject:
    """The Subject counting failures against the API key named `name`."""
    return Subject("key_name", name, _key("key_name", name))


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(_HASH_PREFIX + kind.encode() + b"\x00" + value.encode()).hexdigest()
    return f"{KEY_PREFIX}{kind}:{digest[:32]}"


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> str:
    """The client's address as counted (see the module docstring), e.g. "203.0.113.7" or
    "2001:db8:1:2::/64"; the peer's own text when it is no IP address (a unix socket)."""
    peer = _parse(request.remote or "")
    if peer is None:
        return request.remote or "unknown"
    client = peer
    if trusted and _within(peer, trusted):
        hops = [
            h for value in request.headers.getall("X-Forwarded-For", ()) for h in value.split(",")
        ]
        for hop in reversed(hops):
            address = _parse(hop)
            if address is None:
                break  # garbage: the last trusted hop is the best we know
            client = address
            if not _within(address, trusted):
                break
    if isinstance(client, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((client, 64), strict=False))
    return str(client)


def _parse(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:443"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


class FailureLimiter:
    """Counts failed credentials per Subject in Redis (or, without it, in this process)."""

    def __init__(
        self,
        settings: RateLimitSettings,
        redis: aredis.Redis | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = settings.max_failures
        self._window = settings.window_seconds
        self._proxies = settings.proxy_networks
        self._redis = redis
        self._monotonic = monotonic
        self._local: dict[str, tuple[int, float]] = {}  # key → (count, monotonic expiry)
        self._blocked: dict[str, float] = {}  # key → monotonic end of a known block
        self._clear: dict[str, float] = {}  # key → until when Redis's "not blocked" is trusted
        self._redis_down_until = 0.0
        self._in_process = False
        if redis is None:
            self._count_in_process("redis is off")

    def client(self, request: web.Request) -> Subject:
        """The request's client address as a Subject."""
        return address_subject(client_address(request, self._proxies))

    async def check(self, *subjects: Subject) -> None:
        """TooManyFailures when any subject is blocked now."""
        retry = await self._retry_after(subjects)
        if retry is not None:
            raise TooManyFailures(retry)

    async def failed(self, *subjects: Subject) -> None:
        """Count one failure against each subject; TooManyFailures when one reaches the limit."""
        counts = await self._increment(subjects)
        retry = None
        for subject, (count, seconds_left) in zip(subjects, counts, strict=True):
            self._clear.pop(subject.key, None)  # a failure: the next check asks again
            if count >= self._max:
                self._remember_block(subject.key, seconds_left)
                retry = max(retry or 0, math.ceil(seconds_left))
            if count == self._max:
                log.warning(
                    "auth_failures_limit_reached",
                    kind=subject.kind,
                    subject=subject.label,
                    failures=count,
                    window_seconds=self._window,
                )
        if retry is not None:
            raise TooManyFailures(retry)

    async def aclose(self) -> None:
        """Close the Redis client, if there is one."""
        if self._redis is not None:
            await self._redis.aclose()

    async def _retry_after(self, subjects: tuple[Subject, ...]) -> int | None:
        now = self._monotonic()
        known = [self._blocked[s.key] - now for s in subjects if self._blocked.get(s.key, 0) > now]
        if known:
            return math.ceil(max(known))
        if all(self._clear.get(s.key, 0) > now for s in subjects):
            return None
        if self._use_redis(now) and self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for subject in subjects:
                        pipe.get(subject.key)
                        pipe.pttl(subject.key)
                    answers = await pipe.execute()
            except (aredis.RedisError, OSError, TimeoutError) as exc:
                self._redis_failed(exc)
            else:
                self._redis_works()
                pairs = zip(answers[::2], answers[1::2], strict=True)
                states = [(int(raw or 0), _seconds(pttl, self._window)) for raw, pttl in pairs]
                retry = self._blocked_for(subjects, states)
                if retry is None:
                    for subject in subjects:
                        self._clear[subject.key] = now + _CLEAR_SECONDS
                    _bound(self._clear, now, lambda until: until)
                return retry
        states = [self._local_state(s.key, now) for s in subjects]
        return self._blocked_for(subjects, states)

    def _blocked_for(
        self, subjects: tuple[Subject, ...], states: list[tuple[int, float]]
    ) -> int | None:
        retry = None
        for subject, (count, seconds_left) in zip(subjects, states, strict=True):
            if count >= self._max and seconds_left > 0:
                self._remember_block(subject.key, seconds_left)
                retry = max(retry or 0, math.ceil(seconds_left))
        return retry

    async def _increment(self, subjects: tuple[Subject, ...]) -> list[tuple[int, float]]:
        now = self._monotonic()
        if self._use_redis(now) and self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    for subject in subjects:
                        pipe.set(subject.key, 0, ex=self._window, nx=True)
                        pipe.incr(subject.key)
                        pipe.pttl(subject.key)
                    answers = await pipe.execute()
                for subject, (_, pttl) in zip(subjects, _triples(answers), strict=True):
                    if pttl == -1:  # no TTL (set by hand?): every key must expire
                        await self._redis.expire(subject.key, self._window)
            except (aredis.RedisError, OSError, TimeoutError) as exc:
                self._redis_failed(exc)
            else:
                self._redis_works()
                return [(count, _seconds(pttl, self._window)) for count, pttl in _triples(answers)]
        return [self._local_increment(s.key, now) for s in subjects]

    def _local_state(self, key: str, now: float) -> tuple[int, float]:
        count, expires = self._local.get(key, (0, now))
        return (count, expires - now) if expires > now else (0, 0.0)

    def _local_increment(self, key: str, now: float) -> tuple[int, float]:
        count, expires = self._local.get(key, (0, now))
        if expires <= now:
            count, expires = 0, now + self._window
        self._local[key] = (count + 1, expires)
        _bound(self._local, now, lambda entry: entry[1])
        return count + 1, expires - now

    def _remember_block(self, key: str, seconds_left: float) -> None:
        now = self._monotonic()
        self._blocked[key] = now + seconds_left
        _bound(self._blocked, now, lambda until: until)

    def _use_redis(self, now: float) -> bool:
        return self._redis is not None and now >= self._redis_down_until

    def _redis_failed(self, exc: BaseException) -> None:
        self._redis_down_until = self._monotonic() + _REDIS_RETRY_SECONDS
        self._count_in_process(f"redis unavailable: {type(exc).__name__}")

    def _redis_works(self) -> None:
        if self._in_process:
            self._in_process = False
            log.info("auth_rate_limit_shared", reason="redis reachable again")

    def _count_in_process(self, reason: str) -> None:
        if not self._in_process:  # once per outage, not once per request
            self._in_process = True
            log.warning(
                "auth_rate_limit_in_process",
                reason=reason,
                detail="failed credentials are counted per process until Redis answers",
            )


def _triples(answers: list[object]) -> list[tuple[int, int]]:
    return [(int(str(answers[i + 1])), int(str(answers[i + 2]))) for i in range(0, len(answers), 3)]


def _seconds(pttl: object, window: int) -> float:
    """Seconds left of a key's TTL (PTTL milliseconds); -1 (none) reads as a whole window."""
    milliseconds = int(str(pttl))
    if milliseconds == -1:
        return float(window)
    return max(milliseconds, 0) / 1000


def _bound(entries: dict[str, V], now: float, expiry: Callable[[V], float]) -> None:
    """Keep `entries` under _MAX_LOCAL_ENTRIES: drop the expired, then the oldest."""
    if len(entries) <= _MAX_LOCAL_ENTRIES:
        return
    for key in [k for k, v in entries.items() if expiry(v) <= now]:
        del entries[key]
    while len(entries) > _MAX_LOCAL_ENTRIES * 3 // 4:
        del entries[next(iter(entries))]
