"""Run a command with PostgreSQL and Redis started once around it (`make mutation-integration`).

    python tests/mutation_servers.py COMMAND [ARG...]

Starts the embedded PostgreSQL and Redis of server/embedded.py in a fresh temporary directory,
runs COMMAND with DATABASE_URL and REDIS_URL pointing at them (tests/conftest.py then uses
them instead of starting servers of its own), stops both and removes the directory, and exits
with COMMAND's exit code. So a mutation run pays one server start, not one per mutant. The
servers live in this process, not in the command's: the mutation runner forks a worker per
mutant, and none of them may hold (or stop) a server.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from server.embedded import EmbeddedPostgres, EmbeddedRedis


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    return asyncio.run(_serve(argv))


async def _serve(argv: list[str]) -> int:
    # Short path: unix socket paths are limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="rcd-mut-", dir="/tmp") as tmp:
        postgres, redis = EmbeddedPostgres(Path(tmp) / "pg"), EmbeddedRedis(Path(tmp) / "redis")
        database_url = await postgres.start()
        try:
            redis_url = await redis.start()
            try:
                env = os.environ | {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
                command = await asyncio.create_subprocess_exec(*argv, env=env)
                try:
                    return await command.wait()
                finally:
                    if command.returncode is None:  # interrupted: stop it before the servers
                        command.terminate()
                        await command.wait()
            finally:
                await redis.stop()
        finally:
            await postgres.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
