"""How a spec is checked: pydantic models whose first error reads as one line `FILE: KEY: what is wrong`.

A spec key is one field of a `Section`, a pydantic model that forbids unknown keys (`extra="forbid"`).
The field's type says what is allowed; `says(...)` on the type gives the words a user reads when a
value is not (pydantic's own words name Python types, ours name what to write in YAML). A validator
that finds something wrong raises `Problem(words, *key)`. `validate` turns pydantic's first error
into a SpecError naming the file and the key path (`factors.dropout[1]`), so every spec error stays
one line and exit 2 (study.core.errors). Every error names the key and what is allowed, never a
Python type, and unknown keys are errors, never silently ignored (nanoGPT's configurator rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter
from pydantic import ValidationError
from pydantic import WrapValidator, create_model, model_validator
from pydantic_core import PydanticCustomError

from study.config.factors import is_number
from study.core.errors import SpecError

Loc = tuple[str | int, ...]
Words = str | Callable[[Any], str | None]  # "{value} must be ...", or a function of the value


class Problem(ValueError):
    """What a validator found wrong, in the user's words, at `at` below where it runs (`at=()`: right there)."""

    def __init__(self, message: str, *at: str | int) -> None:
        super().__init__(message)
        self.message, self.at = message, at


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a spec file (study, tune or analyze); SpecError if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), "<file>", "no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(str(path), "<yaml>", f"not valid YAML: {exc}") from exc


def validate(schema: Any, raw: Any, source: str, at: Loc = ()) -> Any:
    """`raw` validated by `schema` (a Section or an annotated type); its first problem as a SpecError."""
    try:
        return _adapter(schema).validate_python(raw)
    except ValidationError as exc:
        loc, message = _line(exc.errors()[0])
        raise SpecError(source, key_path(at + loc), message) from None


def key_path(loc: Loc) -> str:
    """('factors', 'dropout', 1) -> 'factors.dropout[1]'; () -> '<top level>'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "<top level>"


class Section(BaseModel):
    """One spec section (or a whole spec file): a key is a field; an unknown key is an error.

    `shape` is what the section says when it is not a mapping (or, with `nonempty`, an empty one);
    `unknown(key)` what it says about a key it does not have. A field's `description` completes
    "is required" when a required key is missing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")
    shape: ClassVar[str] = "must be a mapping of keys to values"
    nonempty: ClassVar[bool] = False

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.alias or name for name, f in cls.model_fields.items())

    def given(self, raw: dict) -> dict[str, Any]:
        """The values of the keys `raw` sets, in its order, under their names in the spec."""
        names = {f.alias or name: name for name, f in type(self).model_fields.items()}
        return {str(k): getattr(self, names[str(k)]) for k in raw}

    @classmethod
    def unknown(cls, key: Any) -> str:
        return f"unknown key; allowed keys: {', '.join(cls.keys())}"

    @model_validator(mode="wrap")
    @classmethod
    def _in_words(cls, raw: Any, handler: Callable[[Any], Any]) -> Any:
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, dict) or (cls.nonempty and not raw):
            raise PydanticCustomError("spec", cls.shape)
        try:
            return handler({str(k): v for k, v in raw.items()})  # YAML's `1:` is the key "1"
        except ValidationError as exc:
            raise _reworded(exc, cls._own_words) from None

    @classmethod
    def _own_words(cls, error: dict) -> str | None:
        if len(error["loc"]) != 1:
            return None
        if error["type"] == "extra_forbidden":
            return cls.unknown(error["loc"][0])
        if error["type"] == "missing":
            field = next(f for n, f in cls.model_fields.items() if (f.alias or n) == error["loc"][0])
            return "is required" + (f": {field.description}" if field.description else "")
        return None


def section(name: str, base: type[Section], types: dict[str, Any]) -> type[Section]:
    """A Section whose keys are known only once a spec is read (its hyperparameters, its factors); every key is
    optional (None when absent) and any name may be a key (`json`, `copy`: pydantic's fields are aliased)."""
    fields = {f"key_{i}": (kind, Field(None, alias=key)) for i, (key, kind) in enumerate(types.items())}
    return create_model(name, __base__=base, **fields)


def says(words: Words, whole: bool = False) -> WrapValidator:
    """Annotated metadata: an error of the value itself (with `whole`, also of its items) reads `words`;
    `{value}` in them stands for the value as written (its repr). A Problem keeps its own words."""
    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            text = words(value) if callable(words) else words.replace("{value}", repr(value))
            raise _reworded(exc, lambda error: None if error["loc"] and not whole else text, whole) from None
    return WrapValidator(wrap)


def check(rule: Callable[[Any], Any]) -> AfterValidator:
    """Annotated metadata: `rule(value)` after the type's own checks; it returns the value or raises Problem."""
    return AfterValidator(rule)


def integer(low: int, words: Words | None = None) -> Any:
    """An integer >= low (not a boolean, not 2.0)."""
    return Annotated[StrictInt, Field(ge=low), says(words or f"{{value}} must be an integer >= {low}")]


def choice(values: tuple[str, ...]) -> Any:
    """One of `values` (names written as text)."""
    return Annotated[Literal[values], says(f"{{value}} is not allowed; allowed values: {', '.join(values)}")]


Boolean = Annotated[StrictBool, says("{value} must be a boolean (true or false)")]
Text = Annotated[StrictStr, says("must be a string")]
# A study's name: its MLflow experiment, its Optuna study and its report folder.
Name = Annotated[StrictStr, Field(pattern=r"^[\w-]+\Z"),
                 says("{value} must be a non-empty string of letters, digits, '-' or '_'")]


def seed_list(minimum: int = 1, example: str = "[0, 1, 2]") -> Any:
    """A list of distinct seeds >= 0, at least `minimum` of them, as a tuple."""
    need = ("must be a non-empty list of integers >= 0, e.g. " + example if minimum == 1
            else f"{{value}} must be a list of at least {minimum} seeds of integers >= 0, e.g. {example}")
    return Annotated[tuple[integer(0), ...], Field(min_length=minimum), check(_distinct), says(need)]


def finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _distinct(values: tuple) -> tuple:
    if len(set(values)) != len(values):
        raise Problem(f"{list(values)} has duplicates; each seed once")
    return values


def _line(error: dict) -> tuple[Loc, str]:
    """One pydantic error as (key path, words): a Problem's own, at its place; else the words it carries."""
    found = (error.get("ctx") or {}).get("error")
    if isinstance(found, Problem):
        return tuple(error["loc"]) + found.at, found.message
    return tuple(error["loc"]), error["msg"]


def _reworded(exc: ValidationError, own: Callable[[dict], str | None], whole: bool = False) -> ValidationError:
    """`exc` with each error's words replaced by `own(error)` where it has some (a Problem keeps its own), the
    unknown keys first; with `whole`, every error is the value's own (its place is the value's)."""
    lines = []
    for error in sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden"):
        loc, message = _line(error)
        if not isinstance((error.get("ctx") or {}).get("error"), Problem):
            message = own(error) or message
            loc = () if whole else loc
        lines.append({"type": PydanticCustomError("spec", message), "loc": loc, "input": error["input"]})
    return ValidationError.from_exception_data("spec", lines)


_BUILT: dict[str, Any] = {}


def cached(key: tuple, build: Callable[[], Any]) -> Any:
    """`build()` once per `key` (models built at run time: pydantic takes milliseconds to build one). The key is
    compared by its repr, where True, 1 and 1.0 differ."""
    text = repr(key)
    if text not in _BUILT:
        _BUILT[text] = build()
    return _BUILT[text]


@lru_cache(maxsize=256)
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)
