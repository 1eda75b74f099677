"""aiogram's Telegram types are built on first use in a `branchbot` process (bot/deferred_types.py),
with the schema aiogram's own rebuild gives them (issue 11, memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import aiogram.types
from pydantic import BaseModel

from bot.deferred_types import _rebuilds_recorded, _TypesFinder, defer_aiogram_type_builds


def _run(probe: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300, env=env
    )


def _last_json(out: subprocess.CompletedProcess[str]) -> object:
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_BUILT = """
import json
import bot  # first, as in `branchbot`
import aiogram.types as t
from pydantic import BaseModel

def built():
    return sorted(n for n in t.__all__ if isinstance(getattr(t, n), type)
                  and issubclass(getattr(t, n), BaseModel) and getattr(t, n).__pydantic_complete__)

before = built()
update = t.Update.model_validate({"update_id": 7, "message": {"message_id": 1, "date": 1,
    "chat": {"id": 5, "type": "private"}, "from": {"id": 5, "is_bot": False, "first_name": "A"},
    "text": "/log 2"}})
print(json.dumps([before, built(), update.message.text, update.message.chat.id]))
"""


def test_aiogram_types_are_not_built_at_import_but_on_first_use() -> None:
    before, after, text, chat = _last_json(_run(_BUILT))  # type: ignore[misc]
    assert before == []
    # Validating an update builds Update only; the types it nests are built into its schema.
    assert after == ["Update"]
    assert (text, chat) == ("/log 2", 5)


# Every type's JSON schema (canonical: definitions by name, not by object id), built by aiogram's
# eager rebuild in one process and on first use, in reverse order, in the other.
_SCHEMAS = """
import json, sys, warnings
warnings.simplefilter("ignore")  # Default(...) values have no JSON form
if sys.argv[1] == "deferred":
    import bot
import aiogram.types as t
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

class Schema(GenerateJsonSchema):
    def handle_invalid_for_json_schema(self, schema, error_info):  # InputFile and the like
        return {"not-json": error_info}

names = [n for n in t.__all__ if isinstance(getattr(t, n), type) and issubclass(getattr(t, n), BaseModel)]
if sys.argv[1] == "deferred":
    names.reverse()
out = {}
for name in names:
    cls = getattr(t, name)
    complete = cls.__pydantic_complete__
    cls.__pydantic_validator__.validate_python  # the first use builds it
    out[name] = [complete, cls.__pydantic_complete__, cls.model_json_schema(schema_generator=Schema)]
print(json.dumps(out, sort_keys=True))
"""


def test_every_type_built_on_first_use_has_the_schema_aiogram_builds() -> None:
    procs = {
        mode: subprocess.Popen(
            [sys.executable, "-c", _SCHEMAS, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for mode in ("eager", "deferred")
    }
    results: dict[str, Any] = {}
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[mode] = _last_json(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    eager, deferred = results["eager"], results["deferred"]
    assert len(eager) > 300 and eager.keys() == deferred.keys()
    assert all(was for was, _, _ in eager.values())  # aiogram built them all at import
    assert not any(was for was, _, _ in deferred.values())  # none built at import here
    assert all(now for _, now, _ in deferred.values())
    differing = [name for name in eager if eager[name][2] != deferred[name][2]]
    assert differing == []


# A type nested in a method's answer before it is ever used on its own (the answer's model is
# built first), and a frame that uses a type first while it has locals named like aiogram's types.
_NESTED_AND_SHADOWED = """
import json
import bot
from aiogram.methods.base import Response
from aiogram.types import Message

message = {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"},
           "from": {"id": 6, "is_bot": False, "first_name": "A"}, "text": "hi",
           "reply_markup": {"inline_keyboard": [[{"text": "ok", "callback_data": "x:1"}]]}}
answer = Response[Message].model_validate({"ok": True, "result": message})
built_by_answer = Message.__pydantic_complete__

def first_use():
    Chat = "not a type"
    User = int
    return Message.model_validate(message)

m = first_use()
print(json.dumps([built_by_answer, answer.result.reply_markup.inline_keyboard[0][0].callback_data,
                  type(m.chat).__name__, type(m.from_user).__name__, m.from_user.id]))
"""


def test_a_type_nested_first_and_a_first_use_beside_shadowing_locals() -> None:
    built_by_answer, data, chat, user, user_id = _last_json(_run(_NESTED_AND_SHADOWED))  # type: ignore[misc]
    assert built_by_answer is False
    assert data == "x:1"
    assert (chat, user, user_id) == ("Chat", "User", 6)


# Subclasses written elsewhere (none in this repository yet): a TelegramObject of one's own with
# a field type named like one of aiogram's, a subclass of Message with a field of its own, and an
# explicit rebuild that relies on the caller's names, as pydantic documents. Deferred, each must
# come out as aiogram's eager build makes it.
_SUBCLASSES_MODULE = """
from __future__ import annotations
from pydantic import BaseModel
from aiogram.types import Message, TelegramObject

class Report(TelegramObject):
    where: Location  # this module's Location, not aiogram's
    msg: Message

class Location(BaseModel):
    room: str

class Tagged(Message):
    tag: Tag

class Tag(BaseModel):
    name: str
"""

_SUBCLASSES = """
import json, sys
if sys.argv[1] == "deferred":
    import bot
import subclasses
from aiogram.types import TelegramObject

chat = {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"}}
report = subclasses.Report.model_validate({"where": {"room": "A1"}, "msg": chat})
tagged = subclasses.Tagged.model_validate({**chat, "tag": {"name": "x"}})

def explicit():
    class Later(TelegramObject):
        x: "Thing"
    class Thing(TelegramObject):
        y: int
    return Later.model_rebuild(), Later.model_validate({"x": {"y": 3}}).x.y

print(json.dumps([type(report.where).__module__, report.where.room, type(report.msg.chat).__name__,
                  type(tagged.tag).__module__, tagged.chat.id, *explicit()]))
"""


def test_subclasses_of_aiogram_types_written_elsewhere_build_as_eagerly(tmp_path) -> None:
    (tmp_path / "subclasses.py").write_text(_SUBCLASSES_MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    outputs = {mode: _last_json(_run(_SUBCLASSES, mode, env=env)) for mode in ("eager", "deferred")}
    assert outputs["eager"] == ["subclasses", "A1", "Chat", "subclasses", 5, True, 3]
    assert outputs["deferred"] == outputs["eager"]


def test_other_rebuilds_while_aiogram_types_import_still_find_their_callers_names() -> None:
    # While `aiogram.types` runs, every model's `model_rebuild` passes through the recorder: one
    # frame more between pydantic and the caller whose local names it looks up.
    class Early(BaseModel):
        x: Later

    class Later(BaseModel):
        y: int

    with _rebuilds_recorded() as recorded:
        assert Early.model_rebuild() is True
    assert recorded == []
    assert Early.model_validate({"x": {"y": 2}}).x.y == 2


def test_nothing_is_deferred_once_aiogram_is_loaded() -> None:
    # This process imported aiogram (the suite's conftest loads `bot` first, so its types are
    # deferred here too); a second call installs nothing.
    assert "aiogram.types" in sys.modules and aiogram.types.Update is not None
    assert defer_aiogram_type_builds() is False
    assert not any(isinstance(f, _TypesFinder) for f in sys.meta_path)


def test_the_suite_runs_with_deferred_types() -> None:
    # What the end-to-end tests exercise is what `branchbot` runs: tests/conftest.py imports
    # `bot` before anything imports aiogram.
    assert "model_rebuild" in vars(aiogram.types.TelegramObject)
