"""A bot process reads its sockets without mapping fresh memory for each read (issue 11).

asyncio reads a socket into a new 256 KB buffer and shrinks it to what came. glibc serves a
block that big with mmap until it has seen one freed, then from its heap. A bot process used to
fix that threshold (for 1-2 MB less peak memory): every read of the database's and the Bot API's
answers then cost a mapping, a shrink, an unmapping and fresh pages, about 10% of a PostgreSQL
bot's CPU per update (docs/benchmarks.md). This runs `branchbot run`'s own start with the
serving replaced by such reads, and counts the page faults they take."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")

READS = 400

# Serving replaced by READS round trips over a local socket pair, each answer a few hundred
# bytes (as the database's and the Bot API's are); prints the minor page faults per read.
_PROBE = """
import argparse, asyncio, ctypes, os, resource, socket, sys
os.environ.update(BOT_TOKEN="1:x", DATABASE_URL=sys.argv[1])
import bot.run_cli, bot.runtime

async def reads(*_a, **_kw):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    got = asyncio.Queue()

    class Reader(asyncio.Protocol):
        def data_received(self, data):
            got.put_nowait(len(data))

    await loop.connect_accepted_socket(Reader, a)
    b.setblocking(False)
    for _ in range(20):  # the first reads settle malloc's threshold
        await loop.sock_sendall(b, b"x" * 300)
        await got.get()
    # A heap with little free room at its top, as a bot's under load: a read's buffer cannot be
    # carved from free room left by start-up.
    ctypes.CDLL(None).malloc_trim(0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(READS):
        await loop.sock_sendall(b, b"x" * 300)
        await got.get()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / READS)

READS = int(sys.argv[2])
bot.runtime.serve_forever = reads
bot.run_cli.setup_logging = lambda _level: None
sys.exit(bot.run_cli._run(argparse.Namespace(only=["bot"], processes=1, reuse_port=False)))
"""


def test_a_bot_process_reads_its_sockets_without_fresh_pages() -> None:
    # PostgreSQL's settings: the process that used to fix the threshold (never connected here).
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "postgresql+asyncpg://nobody@127.0.0.1:1/none", str(READS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    faults_per_read = float(out.stdout.strip().splitlines()[-1])
    # With a fresh mapping per read each one faults in at least a page.
    assert faults_per_read < 0.2
