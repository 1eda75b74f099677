"""Every store operation that writes data writes an audit row, or is listed here with the reason
it does not. The list is checked against the code: a new writing operation fails this test
until it records an audit row (directly, or through a private helper of its module that does),
and an entry here that no longer exists or no longer writes fails it too."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import storage

# Operations that write but are not a change of anyone's record by someone: the machinery that
# moves updates and messages, the clock's own bookkeeping, and Telegram telling us things.
EXEMPT = {
    "audit.record": "it is the audit log",
    "outbox.enqueue": "the outbox's rows; the operation that queues a message is audited",
    "outbox.enqueue_many": "the outbox's rows; the operation that queues messages is audited",
    "outbox.set_payloads": "the outbox's own rows (what to send), no one's record",
    "outbox.claim_due": "the sender claiming work",
    "outbox.mark_sent": "delivery bookkeeping",
    "outbox.mark_blocked": "delivery bookkeeping",
    "outbox.mark_retry": "delivery bookkeeping",
    "outbox.mark_failed": "delivery bookkeeping",
    "updates.claim_update": "de-duplication of Telegram updates",
    "updates.claim_update_with_person": "de-duplication of Telegram updates (reading the person along)",
    "updates.forget_before": "de-duplication housekeeping",
    "updates.store_inbound": "the intake's inbox",
    "updates.drop_inbound": "the intake's inbox",
    "reminders.claim_due_runs": "the scheduler claiming its runs",
    "reminders.execute_run": "the scheduler recording a run (its messages go through the outbox)",
    "reminders.ensure_default_rules": "creates the built-in default rules; changes go through set_rule",
    "notices.set_status_message": "remembers the sender's own status message ids",
    "notices.finish_if_done": "a notice's sending finished (machinery)",
    "notices.release_scheduled": "the scheduler sending a notice whose scheduling was audited",
    "notices.acknowledge": "the recipient's receipt: the delivery row records who and when",
    "people.touch_last_active": "activity timestamp, written at most once per interval",
    "people.seen": "activity timestamp (at most once per interval) and reachable again, on every update",
    "people.mark_blocked": "Telegram said the bot is blocked",
    "people.mark_reachable": "Telegram delivered again",
    "web_auth.create_sign_in_link": "a one-time token; redeeming it is audited",
    "admin_sessions.start": "a web session row; the sign-in that starts it is audited (web.sign_in)",
    "admin_sessions.resume": "a session's last-seen time, or its end when expired (machinery)",
    "admin_sessions.end": "logout: one's own session row goes",
    "admin_sessions.end_all": "called by audited operations (password set, erasure, sign out everywhere)",
    "admin_sessions.purge_expired": "housekeeping of expired session rows",
    "seed.seed_demo": "the offline demo's data",
    "evidence.attach": "the bot keeping the photo the member sent with an entry whose logging is audited",
    # The DingTalk bridge's transport bookkeeping, as the intake's inbox is for Telegram: what
    # people do through it reaches the bot as updates, whose operations are audited.
    "dingtalk.remember": "the bridge's id map (a DingTalk person's Bot API id, name, language)",
    "dingtalk.set_menu": "the digest of the command card last sent to a person",
    "dingtalk.reserve_message_ids": "the bridge's message-id blocks",
    "dingtalk.keep_card": "which bot message a DingTalk card shows",
    "dingtalk.forget_card": "a card's row goes when its message is deleted",
    "dingtalk.forget_cards": "housekeeping of cards older than 90 days",
    "dingtalk.keep_frame": "the bridge's inbox: a DingTalk frame acknowledged once kept",
    "dingtalk.became": "the bridge's inbox: the update id a frame became",
    "dingtalk.confirmed": "the bridge's inbox: the bot confirmed these updates",
    "dingtalk.forget_frame": "the bridge's inbox: a frame that made no update",
    "dingtalk.keep_plain": "which bot message a plain DingTalk robot message shows",
    "dingtalk.forget_plain": "a plain message's row goes when its message is deleted (recalled)",
    "dingtalk.forget_plain_before": "housekeeping of plain messages older than 90 days",
    "dingtalk.keep_outgoing": "the bridge's outbox: the bot's change kept before its ok",
    "dingtalk.passed_on": "the bridge's outbox: DingTalk accepted the change",
}

# What writing looks like in a store operation's source.
WRITES = re.compile(
    r"\bs\.(add|add_all|delete|merge)\(|\.execute\(\s*(update|delete|insert)\(|"
    r"\b(update|delete|insert)\(\w+\)|\bsetattr\(|^\s+\w+(\.\w+)+ = (?!None$)",
    re.M,
)
AUDITS = re.compile(r"\baudit\.record(_now)?\(|\bsubmissions\.freeze\(")


def _is_operation(node: ast.AST) -> bool:
    """A public async function taking the session first: a store operation."""
    if not isinstance(node, ast.AsyncFunctionDef) or node.name.startswith("_") or not node.args.args:
        return False
    first = node.args.args[0]
    return first.arg == "s" or "AsyncSession" in ast.unparse(first.annotation or ast.Constant(""))


OPERATIONS: set[str] = set()


def _operations() -> dict[str, tuple[str, set[str]]]:
    """module.function -> (source, names it calls) for every function in storage/ (private
    helpers included, so what an operation delegates counts); OPERATIONS gets the operations."""
    out: dict[str, tuple[str, set[str]]] = {}
    for info in pkgutil.iter_modules(storage.__path__):
        path = Path(storage.__path__[0]) / f"{info.name}.py"
        if not path.exists():
            continue
        src = path.read_text(encoding="utf-8")
        for node in ast.parse(src).body:
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                calls = {
                    n.func.id
                    for n in ast.walk(node)
                    if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                }
                out[f"{info.name}.{node.name}"] = (ast.get_source_segment(src, node) or "", calls)
                if _is_operation(node):
                    OPERATIONS.add(f"{info.name}.{node.name}")
    return out


def _does(
    ops: dict[str, tuple[str, set[str]]],
    name: str,
    pattern: re.Pattern[str],
    seen: frozenset[str] = frozenset(),
) -> bool:
    """The operation's source matches, or that of a private helper of its module it calls."""
    src, calls = ops[name]
    if pattern.search(src):
        return True
    module = name.split(".")[0]
    return any(
        _does(ops, f"{module}.{c}", pattern, seen | {name})
        for c in calls
        if c.startswith("_") and f"{module}.{c}" in ops and f"{module}.{c}" not in seen
    )


def _audits(ops: dict[str, tuple[str, set[str]]], name: str) -> bool:
    return _does(ops, name, AUDITS)


def _writers(ops: dict[str, tuple[str, set[str]]]) -> list[str]:
    return sorted(n for n in ops if n in OPERATIONS and _does(ops, n, WRITES))


def test_every_writing_operation_writes_an_audit_row() -> None:
    ops = _operations()
    writers = _writers(ops)
    assert len(writers) > 40, writers  # the detection itself still finds the writers
    silent = [n for n in writers if n not in EXEMPT and not _audits(ops, n)]
    assert silent == [], f"store operations that write without an audit row: {silent}"


def test_the_exemptions_are_real_writers() -> None:
    ops = _operations()
    writers = set(_writers(ops))
    stale = sorted(set(EXEMPT) - writers)
    assert stale == [], f"exempt but no longer a writing store operation: {stale}"
    assert not [n for n in EXEMPT if n != "audit.record" and _audits(ops, n)], "exempt yet audited"


def test_the_detection_catches_a_new_silent_writer() -> None:
    """The check is not vacuous: an operation like the real ones, without its audit call, is
    reported."""
    ops = _operations()
    src, calls = ops["pairings.record_exemplar"]
    stripped = src.replace("audit.record(", "noop(")
    ops["pairings.record_exemplar"] = (stripped, calls)
    assert WRITES.search(stripped) and not _audits(ops, "pairings.record_exemplar")
    importlib.import_module("storage.pairings")


def _written_actions() -> set[str]:
    """Action names passed as literals to audit.record or a module's `_audit` helper."""
    found: set[str] = set()
    for path in Path(storage.__path__[0]).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 3:
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name not in ("record", "_audit"):
                continue
            arg = node.args[2]
            options = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
            found |= {o.value for o in options if isinstance(o, ast.Constant) and isinstance(o.value, str)}
    return found


def test_every_action_has_a_label_on_the_audit_page() -> None:
    from content.i18n import catalog

    # Built from variables: listed here by hand.
    actions = _written_actions() | {
        "membership.add",
        "membership.role",
        "person.settings",
        "branch_report.submit",
        "duty_packet.submit",
    }
    assert {"entry.approve", "entry.reject", "commitment.evaluate", "notice.send", "report.submit"} <= actions
    for locale in ("zh", "en"):
        missing = sorted(a for a in actions if f"web.audit.a.{a}" not in catalog(locale))
        assert missing == [], (locale, missing)
