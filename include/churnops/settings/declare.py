"""How a setting is declared, read and checked: one dataclass field per setting.

``setting(...)`` is a dataclass field whose metadata names the environment variable and
carries the help text, the bounds and, where the default depends on other settings, how
to derive it. The field's type says how the value is written (``Literal`` for choices).
``build`` reads a tree of such dataclasses from an environment; ``check`` is what each
dataclass's ``__post_init__`` runs, so a value built in code obeys the same bounds as one
read from the environment. ``churnops.settings.docs`` writes the README table and
``.env.example`` from the same fields.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

SETTING = "churnops.setting"
DERIVED = "churnops.derived"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A CHURNOPS_* variable has a value the pipeline cannot use."""


class Loading:
    """What a derived default may look at: the environment and the settings read so far
    (top-level values and whole sections by their field name, the current section's
    values so far in :attr:`this`)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.done: dict[str, Any] = {}
        self.this: dict[str, Any] = {}

    def given(self, name: str) -> bool:
        """Whether the environment sets ``name`` (an empty value counts as unset)."""
        return bool((self.env.get(name) or "").strip())

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["done"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclasses.dataclass(frozen=True)
class Setting:
    """One ``CHURNOPS_*`` variable: everything loading, checks and docs need to know."""

    env: str
    help: str
    # Bounds of a number (``above``: exclusive lower bound).
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    # A type the generic readers do not know: ``parse(env_name, raw)`` (raises
    # SettingsError) and ``show(value)``, the text a user would write for it.
    parse: Callable[[str, str], Any] | None = None
    show: Callable[[Any], str] | None = None
    # A default that depends on settings read before: ``derive(loading)``, and the same
    # rule in words for the docs.
    derive: Callable[[Loading], Any] | None = None
    default_text: str | None = None
    # Never printed: not in reprs, docs or errors.
    secret: bool = False
    # What an unknown choice is called in errors (default: the field name in words).
    noun: str | None = None
    # What a ``parse``d value accepts, in words, for the docs.
    allowed: str | None = None

    def rule(self) -> str | None:
        """The bounds in words (``must be at least 1``), or None without bounds."""
        low, high, above = self.minimum, self.maximum, self.above
        if above is not None:
            if high is not None:
                return f"must be in ({above:g}, {high:g}]"
            return "must be positive" if above == 0 else f"must be above {above:g}"
        if low is not None and high is not None:
            return f"must be in [{low:g}, {high:g}]"
        if low is not None:
            return "must not be negative" if low == 0 else f"must be at least {low:g}"
        if high is not None:
            return f"must be at most {high:g}"
        return None

    def breaks_bounds(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
        )


def setting(
    env: str,
    default: Any = dataclasses.MISSING,
    *,
    help: str,  # noqa: A002 - the declaration's own word for it
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    parse: Callable[[str, str], Any] | None = None,
    show: Callable[[Any], str] | None = None,
    derive: Callable[[Loading], Any] | None = None,
    default_text: str | None = None,
    secret: bool = False,
    noun: str | None = None,
    allowed: str | None = None,
    repr: bool = True,  # noqa: A002 - dataclasses.field's own word
) -> Any:
    """A dataclass field read from the environment variable ``env``."""
    if derive is not None and default_text is None:
        raise TypeError(f"{env}: a derived default needs default_text for the docs")
    declared = Setting(
        env,
        help,
        minimum,
        maximum,
        above,
        parse,
        show,
        derive,
        default_text,
        secret,
        noun,
        allowed,
    )
    return dataclasses.field(
        default=default, repr=repr and not secret, metadata={SETTING: declared}
    )


def derived(rule: Callable[[Loading], Any], default: Any = dataclasses.MISSING) -> Any:
    """A field no variable sets: computed from the settings read before it."""
    return dataclasses.field(default=default, metadata={DERIVED: rule})


def declared_fields(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Setting, Any]]:
    """The settings of one dataclass: (field, declaration, resolved type)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        declared = field.metadata.get(SETTING)
        if declared is not None:
            yield field, declared, hints[field.name]


def sections(cls: type) -> Iterator[tuple[str, type]]:
    """The nested setting dataclasses of ``cls`` (field name, class), in field order."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if _is_section(hints[field.name]):
            yield field.name, hints[field.name]


def choices_of(hint: Any) -> tuple[str, ...] | None:
    """The allowed values of a ``Literal`` type (or an optional one), else None."""
    hint = _without_none(hint)
    if typing.get_origin(hint) is Literal:
        return tuple(str(choice) for choice in typing.get_args(hint))
    return None


def _without_none(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def parse_value(declared: Setting, hint: Any, raw: str) -> Any:
    """``raw`` (non-empty) as the setting's type; SettingsError naming variable and value."""
    name = declared.env
    if declared.parse is not None:
        return declared.parse(name, raw)
    hint = _without_none(hint)
    choices = choices_of(hint)
    shown = "(hidden)" if declared.secret else repr(raw)
    if choices is not None:
        if raw not in choices:
            raise SettingsError(f"{name}={shown} is not one of {', '.join(choices)}")
        return raw
    if hint is bool:
        lowered = raw.strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise SettingsError(f"{name}={shown} is not a boolean (true/false)")
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name}={shown} is not a whole number") from None
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{name}={shown} is not a number") from None
    if hint is dt.date:
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise SettingsError(f"{name}={shown} is not a date (YYYY-MM-DD)") from None
    if hint is Path:
        return Path(raw)
    if hint is str:
        return raw
    raise TypeError(f"{name}: no reader for {hint!r}; declare parse= and show=")


def read(declared: Setting, hint: Any, loading: Loading, default: Any) -> Any:
    """The setting's value in ``loading.env``: parsed and within its bounds, or its default."""
    raw = (loading.env.get(declared.env) or "").strip()
    if not raw:
        return declared.derive(loading) if declared.derive is not None else default
    value = parse_value(declared, hint, raw)
    rule = declared.rule()
    if rule is not None and declared.breaks_bounds(value):
        raise SettingsError(f"{declared.env}={raw} {rule}")
    return value


def build(cls: type, loading: Loading, top: bool = True) -> Any:
    """An instance of the settings dataclass ``cls`` from ``loading.env``: declared fields
    from their variables, nested dataclasses recursively, derived fields by their rule.
    The top level's values (the profile, whole sections) are kept for later derivations."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    outer, loading.this = loading.this, values
    # A level's own settings first (the profile), then its sections in field order: a
    # section's derived defaults may use the sections before it.
    ordered = sorted(dataclasses.fields(cls), key=lambda f: _is_section(hints[f.name]))
    try:
        for field in ordered:
            hint = hints[field.name]
            if _is_section(hint):
                values[field.name] = build(hint, loading, top=False)
            elif SETTING in field.metadata:
                declared = field.metadata[SETTING]
                default = None if declared.derive else _default_of(field)
                values[field.name] = read(declared, hint, loading, default)
            elif DERIVED in field.metadata:
                values[field.name] = field.metadata[DERIVED](loading)
            else:
                continue
            if top:
                loading.done[field.name] = values[field.name]
    finally:
        loading.this = outer
    return cls(**values)


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _default_of(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"{field.name}: a setting without a default needs derive=")


def check(instance: Any) -> None:
    """Bounds and choices of every declared field of ``instance`` (its ``__post_init__``):
    ``TrainParams.recall_target must be in (0, 1]``."""
    owner = type(instance).__name__
    for field, declared, hint in declared_fields(type(instance)):
        value = getattr(instance, field.name)
        choices = choices_of(hint)
        if choices is not None and value is not None and value not in choices:
            noun = declared.noun or field.name.replace("_", " ")
            raise SettingsError(f"unknown {noun} {value!r}; known: {', '.join(choices)}")
        rule = declared.rule()
        if rule is not None and declared.breaks_bounds(value):
            raise SettingsError(f"{owner}.{field.name} {rule}")


def show_value(declared: Setting, hint: Any, value: Any) -> str:
    """``value`` as a user would write it in the variable."""
    if declared.show is not None:
        return declared.show(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def allowed_text(declared: Setting, hint: Any) -> str:
    """What the variable accepts, in words (the README's "allowed" column)."""
    if declared.allowed is not None:
        return declared.allowed
    choices = choices_of(hint)
    if choices is not None:
        return " / ".join(f"`{choice}`" for choice in choices)
    kind = _without_none(hint)
    words = {
        bool: "true / false",
        int: "whole number",
        float: "number",
        dt.date: "YYYY-MM-DD",
        Path: "path",
    }.get(kind, "text")
    low, high, above = declared.minimum, declared.maximum, declared.above
    if above is not None:
        bounds = f"in ({above:g}, {high:g}]" if high is not None else f"> {above:g}"
    elif low is not None:
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
    else:
        bounds = f"<= {high:g}" if high is not None else ""
    return f"{words} {bounds}" if bounds else words
