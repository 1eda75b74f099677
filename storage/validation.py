"""Turn pydantic validation failures into the store's own error, with a catalog key."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from storage.errors import Invalid

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], /, **data: Any) -> M:
    """Validate `data` as `model`; on failure raise `Invalid` naming the first bad field.

    A field may choose its own message key through `json_schema_extra={"error_key": "..."}`;
    otherwise the key is "error.invalid", with the field's name as its `field` parameter.
    """
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "input"
        info = model.model_fields.get(field)
        extra = (
            info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        )
        key = extra.get("error_key") if extra else None
        ctx = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(v, int | float | str)}
        raise Invalid(str(key) if key else "error.invalid", field=field, **ctx) from None
