"""aiogram's Telegram types are built on first use, not all at import (issue 11, memory).

aiogram declares its types with pydantic's `defer_build`, then forces a rebuild of every one at
the end of `aiogram.types`: 77 MB of validators and serializers here (166 MB of RSS after
`import aiogram`, 89 MB without), each holding its own copy of the schemas it nests, for some 400
types a bot mostly never receives. Here that forced rebuild is skipped. pydantic then builds a
type, with the same schema, the first time it validates, constructs or nests it: in the namespace
aiogram's rebuild would have used (`TelegramObject.model_rebuild` supplies it), and with the names
the types' modules import for type checkers only put into those modules (for a type nested in a
model outside `aiogram.types`, such as a method's answer).

This must run before anything imports aiogram; once aiogram is loaded it does nothing. It relies
on `model_rebuild`'s private keywords (`_types_namespace`, `_parent_namespace_depth`), as aiogram
does; tests/bot/test_deferred_types.py compares every type with aiogram's eager build.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

_TYPES = "aiogram.types"


def defer_aiogram_type_builds() -> bool:
    """Install the deferral for this process; False if aiogram's types are already loaded."""
    if _TYPES in sys.modules or any(isinstance(f, _TypesFinder) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _TypesFinder())
    return True


class _TypesFinder(MetaPathFinder):
    """Finds `aiogram.types` as the path finder would, and runs its module under `_rebuilds_recorded`."""

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name != _TYPES:
            return None
        sys.meta_path.remove(self)  # once only
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _DeferringLoader(spec.loader)
        return spec


class _DeferringLoader(Loader):
    def __init__(self, inner: Loader) -> None:
        self._inner = inner

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _rebuilds_recorded() as recorded:
            self._inner.exec_module(module)
        if not recorded:
            return
        namespace = recorded[0][1]  # aiogram passes one namespace to every type
        for cls, _ in recorded:
            _give_names(sys.modules[cls.__module__], namespace)
        _rebuild_in(module.TelegramObject, frozenset(cls for cls, _ in recorded), namespace)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, …
        return getattr(self._inner, name)


@contextmanager
def _rebuilds_recorded() -> Iterator[list[tuple[type, Mapping[str, Any]]]]:
    """While `aiogram.types` runs: its `model_rebuild(_types_namespace=…)` of a type still
    deferred records the namespace instead of building; any other rebuild goes through."""
    from pydantic import BaseModel

    original = BaseModel.__dict__["model_rebuild"]
    recorded: list[tuple[type, Mapping[str, Any]]] = []

    def model_rebuild(cls: type[BaseModel], **kwargs: Any) -> bool | None:
        namespace = kwargs.get("_types_namespace")
        if (
            namespace is not None
            and not kwargs.get("force")
            and cls.__module__.startswith(_TYPES + ".")
            and not cls.__pydantic_complete__
        ):
            recorded.append((cls, namespace))
            return None
        return _through(original, cls, kwargs)

    BaseModel.model_rebuild = classmethod(model_rebuild)  # type: ignore[method-assign,assignment]
    try:
        yield recorded
    finally:
        BaseModel.model_rebuild = original  # type: ignore[method-assign]


def _rebuild_in(base: type, deferred: frozenset[type], namespace: Mapping[str, Any]) -> None:
    """A deferred type's build (pydantic calls `model_rebuild` on first use) resolves its
    annotations in aiogram's namespace, as aiogram's own rebuild would have, instead of in the
    namespace of whichever frame a few levels up happened to use the type first (a local named
    `Chat` there would otherwise be taken for the type).

    Any other subclass of `base` (one of ours, or aiogram's outside `aiogram.types`) rebuilds as
    pydantic would, in its own module and its caller's names; one that extends a deferred type
    also finds the names of the fields it inherits in aiogram's namespace, below its own (an
    eager build would have resolved those before the subclass existed)."""
    from pydantic import BaseModel

    original = BaseModel.__dict__["model_rebuild"]

    def model_rebuild(cls: type[BaseModel], **kwargs: Any) -> bool | None:
        if kwargs.get("_types_namespace") is None:
            if cls in deferred:
                kwargs["_types_namespace"] = namespace
            elif any(ancestor in deferred for ancestor in cls.__mro__[1:]):
                depth = kwargs.get("_parent_namespace_depth", 2)
                caller = sys._getframe(depth - 1).f_locals if depth > 0 else {}
                module = sys.modules.get(cls.__module__)
                own = vars(module) if module is not None else {}
                kwargs["_types_namespace"] = {**namespace, **own, **caller}
        return _through(original, cls, kwargs)

    base.model_rebuild = classmethod(model_rebuild)  # type: ignore[attr-defined]


def _through(original: Any, cls: type, kwargs: dict[str, Any]) -> bool | None:
    """pydantic's own `model_rebuild`, called from a wrapper: it finds the caller's names
    `_parent_namespace_depth` frames up (when given no namespace), one frame more from here."""
    depth = kwargs.get("_parent_namespace_depth", 2)
    result: bool | None = original.__get__(None, cls)(**{**kwargs, "_parent_namespace_depth": depth + 2})
    return result


def _give_names(module: ModuleType, namespace: Mapping[str, Any]) -> None:
    """The names a type's module imports for type checkers only, so that pydantic finds them in
    the module when it builds the type later, directly or nested in another. A name the module
    already has is left as it is."""
    scope = vars(module)
    for name, value in namespace.items():
        scope.setdefault(name, value)
