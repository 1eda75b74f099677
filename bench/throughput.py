"""Throughput benchmark: our bot against a bare aiogram echo bot, on the same emulator, in one run.

    python -m bench.throughput [--members 500] [--per-member 10] [--backend both|sqlite|postgres]

500 simulated members each send 10 `/log` quick-form lines (5,000 updates); a member sends the
next line once the bot has answered the previous one, so both bots face the same closed-loop
load of 500 concurrent conversations. Each bot runs in its own process (ours: `branchbot run
--only bot`, which polls, de-duplicates, keeps conversation state in the database and answers
from the catalog; the baseline: bench/echo_bot.py). Reported: updates per second, p50/p95
time from the update entering the emulator to the bot's reply arriving, their ratio, and the
bot process's peak memory (VmHWM). Results go to docs/benchmarks.md between the throughput
markers.

`--scaling` measures instead 1 and 2 bot processes on PostgreSQL with Redis (conversation state
and the chats' order), behind webhooks (`branchbot run --only bot --processes N`), the same load,
and reports the scaling factor and the memory of each process (section "throughput-processes").

For profiling: BENCH_OURS_CMD replaces the arguments that start our bot (e.g. a script that
wraps it with timers), BENCH_DEBUG=1 prints how many calls of each method the emulator got, and
BENCH_LINE replaces the line each member sends ("{i}" is the round), e.g. `/help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bench.doc import machine_line, write_section
from emulator import Emulator
from emulator.state import SimUser
from storage.db import make_engine, utcnow
from storage.migrate import upgrade
from storage.models import Membership, Org, OrgKind, Person, Role

ROOT = Path(__file__).resolve().parent.parent
OURS_TOKEN = "700001:bench-ours-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
ECHO_TOKEN = "700002:bench-echo-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
PG_BASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@dataclass
class Run:
    label: str
    updates: int
    seconds: float
    latencies: list[float]
    peak_rss_mb: float
    cpu_seconds: float
    # Time the process's threads were ready to run but waited for a CPU (the kernel's run
    # queue), summed over its threads: on a loaded machine, why a process that is not busy a
    # full core still did not go faster.
    runnable_seconds: float = 0.0

    @property
    def cpu_ms_per_update(self) -> float:
        return self.cpu_seconds * 1000 / self.updates

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    def pct(self, q: float) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1] * 1000


def _say(text: str) -> None:
    print(text, flush=True)


STORE_ID = 7_000_000_000  # Telegram ids of the members only in the store (the emulator counts from 5e9)
BRANCH_SIZE = 100  # the store's other members come in branches of this many


async def seed(db_url: str, users: list[SimUser], store_members: int = 0) -> None:
    await asyncio.to_thread(upgrade, db_url)
    engine = make_engine(db_url)
    now = utcnow()
    async with engine.begin() as conn:
        for org_id, (name, kind, parent, path) in enumerate(
            [
                ("省社会组织党工委", OrgKind.PROVINCE, None, "/1/"),
                ("市社会组织党工委", OrgKind.COMMITTEE, 1, "/1/2/"),
                ("测试行业协会党支部", OrgKind.BRANCH, 2, "/1/2/3/"),
            ],
            start=1,
        ):
            await conn.execute(
                insert(Org).values(
                    id=org_id,
                    name=name,
                    kind=kind,
                    parent_id=parent,
                    path=path,
                    category="trade" if kind is OrgKind.BRANCH else None,
                    timezone="Asia/Shanghai",
                    created_at=now,
                )
            )
        await conn.execute(
            insert(Person),
            [
                {
                    "id": i + 1,
                    "telegram_id": u.id,
                    "name": u.first_name,
                    "locale": "zh",
                    "consent_at": now,
                    "nudges_paused": False,
                    "created_at": now,
                }
                for i, u in enumerate(users)
            ],
        )
        await conn.execute(
            insert(Membership),
            [
                {"person_id": i + 1, "org_id": 3, "role": Role.MEMBER, "created_at": now}
                for i in range(len(users))
            ],
        )
        # The rest of a province's members, who do not write during the run: the store's size
        # is what a bot process must not carry in memory.
        first_org = 4
        branches = -(-store_members // BRANCH_SIZE)
        if branches:
            await conn.execute(
                insert(Org),
                [
                    {
                        "id": first_org + b,
                        "name": f"党支部{b}",
                        "kind": OrgKind.BRANCH,
                        "parent_id": 2,
                        "path": f"/1/2/{first_org + b}/",
                        "category": "trade",
                        "timezone": "Asia/Shanghai",
                        "created_at": now,
                    }
                    for b in range(branches)
                ],
            )
        base = len(users) + 1
        for start in range(0, store_members, 10_000):
            chunk = range(start, min(store_members, start + 10_000))
            await conn.execute(
                insert(Person),
                [
                    {
                        "id": base + i,
                        "telegram_id": STORE_ID + i,
                        "name": f"党员{i}",
                        "locale": "zh",
                        "consent_at": now,
                        "nudges_paused": False,
                        "created_at": now,
                    }
                    for i in chunk
                ],
            )
            await conn.execute(
                insert(Membership),
                [
                    {
                        "person_id": base + i,
                        "org_id": first_org + i // BRANCH_SIZE,
                        "role": Role.MEMBER,
                        "created_at": now,
                    }
                    for i in chunk
                ],
            )
    await engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runnable_seconds(pid: int) -> float:
    """Time the process's live threads have waited in the kernel's run queue so far (schedstat:
    run time, wait time, slices; nanoseconds). 0 where the kernel keeps no schedstat."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def start_process(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )


# What each member sends ({i}: the round); BENCH_LINE=/help measures a command that only reads.
LINE = os.environ.get("BENCH_LINE", "/log 1 今天 社区志愿服务{i}")


async def member(
    emu: Emulator, bot_id: int, user: SimUser, rounds: int, latencies: list[float] | None
) -> None:
    """One member of the closed loop: a `/log` line, then the next once it is answered (each
    round's latency recorded when `latencies` is given)."""
    loop = asyncio.get_running_loop()
    for i in range(rounds):
        t0 = loop.time()
        await emu.send_text(user, LINE.format(i=i), bot=bot_id)
        await emu.next_message(user, bot=bot_id, timeout=120)
        if latencies is not None:
            latencies.append(loop.time() - t0)


async def warm_up(emu: Emulator, bot_id: int, users: list[SimUser]) -> None:
    """A round for a few members, not measured."""
    await asyncio.gather(*(member(emu, bot_id, u, 1, None) for u in users[:20]))


def rounds_of(per_member: int, rounds: int) -> list[int]:
    """`per_member` lines split into `rounds` parts as even as can be (no empty part)."""
    rounds = max(1, min(rounds, per_member))
    return [per_member // rounds + (1 if i < per_member % rounds else 0) for i in range(rounds)]


async def ready(emu: Emulator, token: str, users: list[SimUser]) -> None:
    """The bot is up and polling (importing aiogram alone can take a minute on a loaded machine),
    then a round for a few members, not measured."""
    bot = emu.bot(token)
    await emu.wait_for(lambda: bot.waiting_polls > 0, 180)
    await warm_up(emu, bot.id, users)


async def drive(
    emu: Emulator,
    token: str,
    users: list[SimUser],
    per_member: int,
    label: str,
    proc: asyncio.subprocess.Process,
) -> Run:
    """One measured stretch: every member sends `per_member` lines, closed loop."""
    bot = emu.bot(token)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    emu.stats.requests.clear()
    start, cpu_start, wait_start = loop.time(), cpu_seconds(proc.pid), runnable_seconds(proc.pid)
    await asyncio.gather(*(member(emu, bot.id, u, per_member, latencies) for u in users))
    seconds, cpu = loop.time() - start, cpu_seconds(proc.pid) - cpu_start
    runnable = runnable_seconds(proc.pid) - wait_start
    rss = peak_rss_mb(proc.pid)
    if os.environ.get("BENCH_DEBUG"):
        # The emulator counts by method, not by bot: the other bot's long polls are in here too.
        _say(f"{label}'s turn: requests of both bots {dict(emu.stats.requests)}")
    return Run(label, len(users) * per_member, seconds, latencies, rss, cpu, runnable)


def combined(runs: list[Run]) -> Run:
    """Stretches of one bot as one run: their updates, time, CPU and latencies summed."""
    return Run(
        runs[0].label,
        sum(r.updates for r in runs),
        sum(r.seconds for r in runs),
        [x for r in runs for x in r.latencies],
        max(r.peak_rss_mb for r in runs),
        sum(r.cpu_seconds for r in runs),
        sum(r.runnable_seconds for r in runs),
    )


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def run_backend(
    backend: str,
    members: int,
    per_member: int,
    tmp: Path,
    store_members: int = 0,
    rounds: int = 4,
    latency_ms: int = 0,
) -> tuple[Run, Run]:
    emu = Emulator()
    await emu.start()
    created_pg: str | None = None
    try:
        if latency_ms:
            # Telegram is not next door: every sendMessage is answered this much later (both bots).
            emu.faults.slow(latency_ms / 1000, method="sendMessage")
        emu.add_bot(OURS_TOKEN, username="bench_ours_bot")
        emu.add_bot(ECHO_TOKEN, username="bench_echo_bot")
        users = [emu.add_user(f"党员{i:03d}", language_code="zh") for i in range(members)]
        if backend == "sqlite":
            db_url = f"sqlite+aiosqlite:///{tmp / 'throughput.db'}"
        else:
            from tests.dbutil import create_pg_database

            db_url = created_pg = await create_pg_database(PG_BASE)
        await seed(db_url, users, store_members)
        env = {**os.environ, "TELEGRAM_API_URL": emu.base_url, "LOG_LEVEL": "WARNING"}

        async with contextlib.AsyncExitStack() as running:  # each one started is stopped
            echo = await start_process(
                ["-m", "bench.echo_bot", emu.base_url, ECHO_TOKEN], env, tmp / "echo.log"
            )
            running.push_async_callback(stop_process, echo)
            ours = await start_process(
                os.environ.get("BENCH_OURS_CMD", "-m bot.cli run --only bot").split(),
                # The gate's pacing to Telegram's 30 messages/s would cap the rate measured here;
                # the echo bot has no gate, and the emulator here enforces no limits.
                {**env, "BOT_TOKEN": OURS_TOKEN, "DATABASE_URL": db_url, "TELEGRAM_LIMITS": "false"},
                tmp / "ours.log",
            )
            running.push_async_callback(stop_process, ours)
            await ready(emu, ECHO_TOKEN, users)
            await ready(emu, OURS_TOKEN, users)
            # The bots take turns, in rounds (echo first in one, ours first in the next), each with
            # the same share of the lines: a machine whose speed drifts during the run (a shared
            # virtual machine's does, by a third within minutes here) slows both alike, so their
            # ratio is not the drift's. The one that is not measured is idle, polling.
            bots = {
                "echo": (ECHO_TOKEN, "aiogram echo bot", echo),
                "ours": (OURS_TOKEN, f"branchbot ({backend})", ours),
            }
            runs: dict[str, list[Run]] = {"echo": [], "ours": []}
            for i, lines in enumerate(rounds_of(per_member, rounds)):
                for key in ("echo", "ours") if i % 2 == 0 else ("ours", "echo"):
                    token, label, proc = bots[key]
                    runs[key].append(await drive(emu, token, users, lines, label, proc))
            echo_run, ours_run = combined(runs["echo"]), combined(runs["ours"])
        if emu.violations:
            raise RuntimeError(f"emulator violations: {emu.violations[:3]}")
        return echo_run, ours_run
    finally:
        await emu.stop()
        if created_pg:
            from tests.dbutil import drop_pg_database

            await drop_pg_database(created_pg, PG_BASE)


AIM = 0.5  # ours as a fraction of the echo bot's rate


def notes(results: dict[str, tuple[Run, Run]]) -> list[str]:
    """What the run's own numbers say about where the difference goes: every figure here comes
    from `results`, so a later run cannot be contradicted by text written for an earlier one."""
    cpu = []
    for backend, (echo, ours) in results.items():
        cores = ours.cpu_seconds / ours.seconds
        # A tiny run can end within one tick of the kernel's CPU clock: no time, and no ratio.
        times = (
            f"{ours.cpu_ms_per_update / echo.cpu_ms_per_update:.1f}×"
            if echo.cpu_seconds
            else "too short to tell"
        )
        cpu.append(
            f"  - {backend}: {ours.cpu_ms_per_update:.2f} ms of CPU per update against the echo bot's "
            f"{echo.cpu_ms_per_update:.2f} ms ({times}), "
            f"the process busy {cores:.0%} of one core while measured and ready to run but waiting "
            f"for a CPU {ours.runnable_seconds / ours.seconds:.0%} of the time (the echo bot: busy "
            f"{echo.cpu_seconds / echo.seconds:.0%}, waiting {echo.runnable_seconds / echo.seconds:.0%})."
        )
    busy = [b for b, (_, ours) in results.items() if ours.cpu_seconds / ours.seconds >= 0.85]
    short = [b for b, (echo, ours) in results.items() if ours.rate / echo.rate < AIM]
    lines = [
        "Where the difference goes:",
        "",
        "- The echo bot parses the update and sends one message. Ours, for each update, records it as",
        "  taken (`processed_updates`), loads the person with their memberships, reads and writes the",
        "  conversation state, parses the line, commits, and answers from the catalog with buttons; polled",
        "  batches are also stored in the inbox before they are confirmed.",
        "- CPU in this run:",
        *cpu,
    ]
    if busy:
        lines.append(
            f"- On {' and '.join(busy)} our process was near one full core: CPU-bound in its one Python "
            "thread, so the rate is about one over the CPU per update."
        )
    idle = [b for b, (_, ours) in results.items() if ours.cpu_seconds / ours.seconds < 0.85]
    if idle:
        lines.append(
            f"- On {' and '.join(idle)} our process was not busy a full core: it waited (on SQLite for "
            "the one connection, on PostgreSQL for the server's answers) or, on a loaded machine, for a CPU."
        )
    lines += [
        "- SQLite has one writer: each update's transaction holds the one connection, so the bot's",
        "  throughput there is at most one over the time a transaction stays open.",
        "- Our bot runs with TELEGRAM_LIMITS=false: the gate would otherwise pace its replies to",
        "  Telegram's 30 messages/s (the echo bot has no gate; this emulator enforces no limits).",
        "- Already in the code: polled batches stored with one cached statement and confirmed once",
        "  stored (instead of re-downloading updates still in flight), 128 updates in flight (the",
        "  process has work while the next batch waits its turn to be stored); the update's claim, the",
        "  person with their grants and conversation, the day's room and the conversation's write as Core",
        "  statements compiled once and run straight on the driver (`storage/direct.py`; on",
        "  PostgreSQL the claim and the person in one statement; on SQLite on the loop's thread,",
        "  inside the transaction that holds the write lock); a quick line's day totals read with the",
        "  person; the conversation written once at commit; a sent keyboard kept as the answer's",
        "  instead of read again; one",
        "  SQLite connection per process, whose BEGIN IMMEDIATE and small commits also run on the",
        "  loop's thread when they need not wait (WAL checkpoints and each other statement in one trip",
        "  to aiosqlite's thread); on PostgreSQL no ping per checkout and no connection beyond the",
        "  pool; only routers with a handler the update could match visited (`bot/routing.py`); plain",
        "  filters awaited on the loop; the Bot API call's fields sent as one JSON body",
        "  (`bot/session.py`); buttons copied from a template, their data packed as strings; each Bot",
        "  API answer model kept; what start-up made frozen out of the collector's way, no cyclic",
        "  garbage per update and the youngest generation at 7,000; a shorter GIL switch interval;",
        "  glibc's malloc left to adjust its mmap threshold (a fresh mapping per socket read otherwise);",
        "  aiogram's Telegram types built on first use, not all at import (`bot/deferred_types.py`:",
        "  the echo bot builds them all, which is most of its peak).",
    ]
    if short:
        lines += [
            f"- Not reached in this run: {AIM:g} on {' and '.join(short)}. Next steps: more bot processes",
            "  behind webhooks on PostgreSQL; aiogram's own cost per update (pydantic models of the update",
            "  and the reply) is what the echo bot pays too.",
        ]
    else:
        lines.append(f"- Reached in this run: {AIM:g} or more on every backend measured.")
    return lines


def render(
    results: dict[str, tuple[Run, Run]],
    members: int,
    per_member: int,
    store_members: int = 0,
    rounds: int = 4,
    latency_ms: int = 0,
) -> str:
    turns = rounds_of(per_member, rounds)
    lines = [
        "## Throughput: `/log` quick form against a bare aiogram echo bot",
        "",
        f"`python -m bench.throughput --members {members} --per-member {per_member}"
        + (f" --store-members {store_members}" if store_members else "")
        + (f" --rounds {rounds}" if rounds != 4 else "")
        + (f" --latency {latency_ms}" if latency_ms else "")
        + f"`. {machine_line()}",
        f"{members} simulated members × {per_member} `/log` lines = {members * per_member:,} updates",
        "per bot; a member sends the next line once the previous one is answered (closed loop). Both bots",
        "poll the same local emulator in the same run; each runs in its own process. They take turns in",
        f"{len(turns)} rounds ({' + '.join(map(str, turns))} lines a member; the echo bot first in the",
        "odd rounds, ours in the even), so a drift in the machine's speed weighs on both alike. Each",
        "member waits on its own chat, so the emulator's work grows with the messages, not with the",
        "members waiting (it shares the machine's two cores with the bot measured).",
        *(
            [
                f"The emulator answered every sendMessage {latency_ms} ms late, as a Telegram farther"
                " away would."
            ]
            if latency_ms
            else []
        ),
        "Latency: from the update entering the emulator to the bot's reply arriving there. CPU: the bot",
        "process's user and system time during the measured part, per update.",
        "",
        "| backend | bot | updates/s | p50 ms | p95 ms | CPU ms/update | peak RSS MB | ratio to echo |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend, (echo, ours) in results.items():
        for r in (echo, ours):
            ratio = f"{r.rate / echo.rate:.2f}" if r is ours else "1.00"
            lines.append(
                f"| {backend} | {r.label} | {r.rate:,.0f} | {r.pct(50):.0f} | {r.pct(95):.0f} | "
                f"{r.cpu_ms_per_update:.2f} | {r.peak_rss_mb:.0f} | {ratio} |"
            )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines += [
        "",
        f"Load average (1, 5, 15 min) at the end: {load}; the machine is shared, so only the ratio",
        "within one run means much.",
        "",
        f"Aim: ours ≥ {AIM:g} of the echo bot's rate on each backend.",
        "",
        *notes(results),
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, tuple[Run, Run]]:
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results: dict[str, tuple[Run, Run]] = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-{uuid.uuid4().hex[:6]}-") as tmp:
        for b in backends:
            _say(f"throughput: {b} ...")
            results[b] = await run_backend(
                b, args.members, args.per_member, Path(tmp), args.store_members, args.rounds, args.latency
            )
            echo, ours = results[b]
            _say(f"  echo {echo.rate:,.0f}/s, ours {ours.rate:,.0f}/s, ratio {ours.rate / echo.rate:.2f}")
    text = render(results, args.members, args.per_member, args.store_members, args.rounds, args.latency)
    _say(text)
    if not args.no_write:
        write_section("throughput", text)
    return results


# --- 1 and 2 bot processes behind webhooks ------------------------------------------------------

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Scaled:
    processes: int
    run: Run
    peak_rss_each: list[float]
    emulator_busy: float  # share of a core the emulator (this process) used while measured
    load: float  # the machine's 1-minute load average when the run started
    idle: float = float("nan")  # share of the machine's CPU time left idle while measured


def machine_cpu() -> tuple[int, int]:
    """(idle, total) clock ticks of all the machine's cores so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def drive_processes(
    emu: Emulator, token: str, users: list[SimUser], per_member: int, pids: list[int]
) -> tuple[Run, list[float], float, float]:
    """The closed-loop load of `drive`, against bot processes `pids` (CPU summed over them)."""
    bot = emu.bot(token)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    await warm_up(emu, bot.id, users)
    start, cpu_start = loop.time(), sum(cpu_seconds(p) for p in pids)
    own, (idle0, total0) = cpu_seconds(os.getpid()), machine_cpu()
    await asyncio.gather(*(member(emu, bot.id, u, per_member, latencies) for u in users))
    seconds = loop.time() - start
    emulator_busy = (cpu_seconds(os.getpid()) - own) / seconds
    idle1, total1 = machine_cpu()
    idle = (idle1 - idle0) / max(1, total1 - total0)
    cpu = sum(cpu_seconds(p) for p in pids) - cpu_start
    each = [peak_rss_mb(p) for p in pids]
    label = f"{len(pids)} bot process{'es' if len(pids) > 1 else ''}"
    return Run(label, len(users) * per_member, seconds, latencies, max(each), cpu), each, emulator_busy, idle


async def run_scaling(members: int, per_member: int, tmp: Path, repeat: int = 2) -> list[Scaled]:
    """1 and 2 processes taking turns, `repeat` times each: on a shared machine the load of others
    moves between runs, and alternating spreads it over both."""
    return [await scale_one(n, members, per_member, tmp) for _ in range(repeat) for n in (1, 2)]


async def scale_one(n: int, members: int, per_member: int, tmp: Path) -> Scaled:
    from tests.dbutil import create_pg_database, drop_pg_database, forget_bot_in_redis

    load = os.getloadavg()[0]
    emu = Emulator()
    await emu.start()
    # A bot id of this run's own: the chats' order in Redis is kept per bot.
    token = f"7{uuid.uuid4().int % 10**8:08d}:bench-scaling-AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    db_url = await create_pg_database(PG_BASE)
    try:
        emu.add_bot(token, username="bench_scaling_bot")
        users = [emu.add_user(f"党员{i:03d}", language_code="zh") for i in range(members)]
        await seed(db_url, users)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "TELEGRAM_API_URL": emu.base_url,
            "LOG_LEVEL": "WARNING",
            "BOT_TOKEN": token,
            "DATABASE_URL": db_url,
            "REDIS_URL": REDIS_URL,
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/tg",
            "WEBHOOK_SECRET": "bench-scaling-secret",
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(port),
            # The update path is measured, not Telegram's 30 messages/s (the emulator has no limits).
            "TELEGRAM_LIMITS": "false",
        }
        args = ["-m", "bot.cli", "run", "--only", "bot"] + (["--processes", str(n)] if n > 1 else [])
        proc = await start_process(args, env, tmp / f"scaling-{n}.log")
        try:
            await emu.wait_for(lambda: emu.stats.requests["setWebhook"] >= n, 180)
            pids = _children(proc.pid) if n > 1 else [proc.pid]
            run, each, emulator_busy, idle = await drive_processes(emu, token, users, per_member, pids)
        finally:
            await stop_process(proc)
        if emu.violations:
            raise RuntimeError(f"emulator violations: {emu.violations[:3]}")
        _say(f"  {run.label}: {run.rate:,.0f}/s, CPU {run.cpu_ms_per_update:.2f} ms/update")
        return Scaled(n, run, each, emulator_busy, load, idle)
    finally:
        await emu.stop()
        await drop_pg_database(db_url, PG_BASE)
        await forget_bot_in_redis(REDIS_URL, int(token.split(":")[0]))


def scaling_factor(results: list[Scaled]) -> float:
    """Mean rate of the 2-process runs over the mean of the 1-process runs."""
    rates = {n: [r.run.rate for r in results if r.processes == n] for n in (1, 2)}
    return statistics.mean(rates[2]) / statistics.mean(rates[1])


def render_scaling(results: list[Scaled], members: int, per_member: int) -> str:
    lines = [
        "## Throughput: 1 and 2 bot processes behind webhooks (PostgreSQL, Redis)",
        "",
        f"`python -m bench.throughput --scaling --members {members} --per-member {per_member}`.",
        machine_line(),
        f"The `/log` load above ({members} members × {per_member} lines, closed loop), delivered by webhook",
        "(the emulator POSTs up to 40 updates at once, as Telegram does) to `branchbot run --only bot",
        "--processes N`: N processes on one port (SO_REUSEPORT), conversation state and the chats' order",
        "in Redis, Telegram's 30 messages/s not paced (`TELEGRAM_LIMITS=false`: the update path is",
        "measured). The emulator, PostgreSQL and Redis run on the same 2-core machine, shared with other",
        "work (its load average when each run started is given). 1 and 2 processes take turns. CPU: the",
        "bot processes' user and system time, summed, per update; busy: that CPU over the run's time, in",
        "cores. Machine idle: the share of all cores' time nobody used while measured (near 0: the",
        "machine's CPU, not the bot, set the pace). Memory: each bot process's peak RSS (VmHWM).",
        "",
        "| run | bot processes | load | updates/s | p50 ms | p95 ms | CPU ms/update | bots busy | "
        "emulator busy | machine idle | peak RSS MB each |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for i, r in enumerate(results, start=1):
        rss = ", ".join(f"{m:.0f}" for m in r.peak_rss_each)
        busy = r.run.cpu_seconds / r.run.seconds
        lines.append(
            f"| {i} | {r.processes} | {r.load:.1f} | {r.run.rate:,.0f} | {r.run.pct(50):.0f} | "
            f"{r.run.pct(95):.0f} | {r.run.cpu_ms_per_update:.2f} | {busy:.2f} | "
            f"{r.emulator_busy:.2f} | {r.idle:.0%} | {rss} |"
        )
    lines += ["", f"Scaling (mean updates/s of 2 processes over 1): **{scaling_factor(results):.2f}**.", ""]
    return "\n".join(lines + scaling_notes(results))


def scaling_notes(results: list[Scaled]) -> list[str]:
    """What this run's own figures say (nothing carried over from an earlier run)."""
    cpu = {n: statistics.mean(r.run.cpu_ms_per_update for r in results if r.processes == n) for n in (1, 2)}
    busy = [r.run.cpu_seconds / r.run.seconds for r in results]
    rss = [m for r in results for m in r.peak_rss_each]
    idle = max(r.idle for r in results)
    lines = [
        f"- CPU per update: {cpu[1]:.2f} ms with one process, {cpu[2]:.2f} ms with two (summed over both).",
        f"- Each bot process peaked at {min(rss):.0f}–{max(rss):.0f} MB; N processes take N times that.",
    ]
    if idle < 0.1:
        lines.append(
            f"- The machine had at most {idle:.0%} of its CPU idle in any run: its cores were taken (the "
            "emulator, PostgreSQL, Redis and other work on the machine), the bot processes together got "
            f"{min(busy):.2f}–{max(busy):.2f} of a core, and a second process found no idle core to use."
        )
    return lines


async def main_scaling(args: argparse.Namespace) -> list[Scaled]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{uuid.uuid4().hex[:6]}-") as tmp:
        _say("throughput: 1 and 2 bot processes on postgres ...")
        results = await run_scaling(args.members, args.per_member, Path(tmp), args.repeat)
    text = render_scaling(results, args.members, args.per_member)
    _say(text)
    if not args.no_write:
        write_section("throughput-processes", text)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=500)
    p.add_argument("--per-member", type=int, default=10)
    p.add_argument("--backend", choices=("both", "sqlite", "postgres"), default="both")
    p.add_argument(
        "--rounds", type=int, default=4, help="turns each bot takes, the lines split evenly among them"
    )
    p.add_argument(
        "--latency", type=int, default=0, help="ms the emulator waits before answering a sendMessage"
    )
    p.add_argument(
        "--scaling", action="store_true", help="1 and 2 bot processes on PostgreSQL with Redis, by webhook"
    )
    p.add_argument("--repeat", type=int, default=2, help="with --scaling: runs of each (taking turns)")
    p.add_argument(
        "--store-members",
        type=int,
        default=0,
        help="members in the store besides those in the run (in branches of 100), for peak memory",
    )
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    if make_url(PG_BASE).get_backend_name() != "postgresql":
        p.error("BENCH_DATABASE_URL must be a PostgreSQL URL")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    asyncio.run(main_scaling(args) if args.scaling else main_async(args))


if __name__ == "__main__":
    main()
