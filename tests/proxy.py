"""A TCP proxy on 127.0.0.1 in front of a real server, to cut and restore the connection.

Used to make PostgreSQL (or a store fake) genuinely unreachable: `down()` drops every
open connection and refuses new ones; `up()` accepts again.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit


class TcpProxy:
    def __init__(self, target_host: str | None, target_port: int, unix_path: str | None) -> None:
        self._host = target_host
        self._port = target_port
        self._unix = unix_path
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @classmethod
    def for_postgres(cls, url: str) -> TcpProxy:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        port = parts.port or int(query.get("port", ["5432"])[0])
        if "host" in query and query["host"][0].startswith("/"):
            return cls(None, port, f"{query['host'][0]}/.s.PGSQL.{port}")
        return cls(parts.hostname or "127.0.0.1", port, None)

    def postgres_url(self, url: str) -> str:
        """`url` rewritten to go through this proxy."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{self.port}", query=""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def up(self) -> None:
        if self._server is None:
            await self.start()

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._unix is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
            else:
                assert self._host is not None
                up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()
        self._writers.discard(dst)
