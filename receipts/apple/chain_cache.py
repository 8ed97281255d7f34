"""A bounded LRU of verified Apple certificate chains, for offline verification.

With online checks off, `SignedDataVerifier` re-verifies the whole x5c chain on every JWS
(≈1.5 ms; three times per notification). The outcome of that chain check depends on the
chain bytes, the trusted roots (fixed per verifier) and the effective date only through the
certificates' validity periods. So a chain once verified is served from the cache whenever
the new effective date lies inside the intersection of the validity periods of every
certificate that could take part in the path (leaf, intermediate, every trusted root that
could issue the intermediate). Anything else — a new chain, a date outside the window,
online checks — goes to the library unchanged, so decisions are identical to the library's.
Failures are never cached.
"""

from __future__ import annotations

import base64
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509


class ChainVerifier(Protocol):
    """The part of the library's `_ChainVerifier` that `SignedDataVerifier` calls."""

    def verify_chain(
        self, certificates: list[str], perform_online_checks: bool, effective_date: int
    ) -> str:
        """The leaf's public key once the x5c chain verifies against the trusted roots at
        `effective_date` (seconds since the epoch); raises otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class _Entry:
    public_key: str
    not_before: int  # seconds since the epoch, inclusive
    not_after: int  # seconds since the epoch, inclusive

    def contains(self, moment: int) -> bool:
        return self.not_before <= moment <= self.not_after


def _seconds(when: datetime) -> int:
    return math.floor(when.timestamp())


class CachingChainVerifier:
    """Wraps a library `_ChainVerifier`; serves offline verifications of known chains.

    OpenSSL accepts a certificate at time t when notBefore <= t <= notAfter, t in whole
    seconds (pyOpenSSL truncates the date it is given); that is the window used here, and
    the differential test pins both edges.
    """

    def __init__(
        self, inner: ChainVerifier, root_certificates: Sequence[bytes], maxsize: int = 64
    ) -> None:
        self._inner = inner
        self._roots = [_load_der(der) for der in root_certificates]
        self._maxsize = maxsize
        self._entries: OrderedDict[tuple[str, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()  # verification may run on executor threads

    def __getattr__(self, name: str) -> object:
        # Anything else the library reads from its chain verifier (enable_strict_checks, …).
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def verify_chain(
        self, certificates: list[str], perform_online_checks: bool, effective_date: int
    ) -> str:
        """Return the leaf's public key (PEM) exactly as the library would, or raise as it would."""
        if perform_online_checks:
            return self._inner.verify_chain(certificates, perform_online_checks, effective_date)
        key = tuple(certificates)
        moment = self._moment(effective_date)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and moment is not None and entry.contains(moment):
                self._entries.move_to_end(key)
                return entry.public_key
        public_key = self._inner.verify_chain(certificates, perform_online_checks, effective_date)
        window = self._window(certificates)
        if window is not None:
            with self._lock:
                self._entries[key] = _Entry(public_key, *window)
                self._entries.move_to_end(key)
                while len(self._entries) > self._maxsize:
                    self._entries.popitem(last=False)
        return public_key

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _moment(effective_date: float) -> int | None:
        try:
            return math.floor(effective_date)
        except (TypeError, ValueError, OverflowError):
            return None

    def _window(self, certificates: Sequence[str]) -> tuple[int, int] | None:
        """The time window in which every certificate of every candidate path is valid."""
        try:
            leaf = _load_der(base64.b64decode(certificates[0], validate=True))
            intermediate = _load_der(base64.b64decode(certificates[1], validate=True))
        except (ValueError, IndexError):
            return None
        issuers = [r for r in self._roots if r.subject == intermediate.issuer]
        if not issuers:
            return None  # cannot tell which root the library used: do not cache
        path = [leaf, intermediate, *issuers]
        start = max(_seconds(c.not_valid_before_utc) for c in path)
        end = min(_seconds(c.not_valid_after_utc) for c in path)
        return (start, end) if start <= end else None


def _load_der(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)
