"""The config schema: each key is declared once, on the frozen dataclass field that holds it.

A field made with ``setting()`` (or ``section()`` for a nested mapping) carries its default, its
bounds or choices and a one-line doc. The type comes from the field's annotation (``float | None``
accepts ``null``; ``tuple[float, ...]`` is a list of numbers; a ``Path`` is resolved against the
config file's folder; a dataclass is a nested section).
From that one declaration:

- ``Reader`` validates parsed YAML: unknown keys, types (a bool is not a number), bounds, choices,
  ``null``, durations, number lists, colours, paths; every error is collected in a ``Checker``
  and named by file and key, e.g. ``p.yaml: at 'mask.method': 'blurr' is not one of: blur,
  pixelate, fill``. Rules between keys are small functions the caller passes in (``checks``),
  run on each section after its keys are read.
- ``sample_yaml`` writes a commented sample (profiles/default.yaml is that text).
- ``markdown_table`` writes the key tables of docs/ (anonymizer.config_docs).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any
from urllib.parse import urlsplit

from anonymizer.errors import ConfigError

SCHEMA = "anonymizer.schema"  # the metadata key of a field's Setting


@dataclass(frozen=True)
class Setting:
    """One key's declaration (see ``setting``)."""

    doc: str
    details: str = ""
    key: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    kind: str | None = None
    required: bool = False
    example: str | None = None
    shown_default: str | None = None
    # Sections only.
    flatten: bool = False
    group: str | None = None
    notes: Mapping[str, str] | None = None


def setting(
    default: Any = MISSING,
    *,
    doc: str,
    details: str = "",
    key: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
    kind: str | None = None,
    required: bool = False,
    example: str | None = None,
    shown_default: str | None = None,
) -> Any:
    """Declare one config key as a dataclass field.

    Args:
        default: the value an omitted key takes (none for a ``required`` key).
        doc: one line; the sample's comment and, without ``details``, the docs table's meaning.
        details: the docs table's meaning when it needs more than the sample's comment.
        key: the YAML key when it differs from the field's name (``after`` -> ``after_s``).
        minimum, maximum: inclusive bounds of a number (of each number of a list).
        choices: the allowed values (of a URL: its schemes).
        kind: what the annotation cannot say: ``duration`` (``30s``, ``24h``, ``30d`` or seconds),
            ``hostport`` (``HOST:PORT``), ``url``,
            ``custom`` (read by the caller's own function; declared here for the docs).
        required: the key must be present.
        example: shown (commented out) in the sample instead of a ``null`` default.
        shown_default: the docs table's default when the value alone does not say it.
    """
    meta = Setting(doc, details, key, minimum, maximum, choices, kind, required, example, shown_default)
    if default is MISSING:
        return field(metadata={SCHEMA: meta})
    return field(default=default, metadata={SCHEMA: meta})


def section(
    factory: Callable[[], Any] | None,
    *,
    doc: str = "",
    details: str = "",
    key: str | None = None,
    flatten: bool = False,
    group: str | None = None,
    notes: Mapping[str, str] | None = None,
) -> Any:
    """Declare a nested mapping (a dataclass) as a field.

    Args:
        factory: returns the section's default (None: the section is absent by default).
        flatten: its keys sit in the parent mapping (the daemon's ``broker`` keys).
        group: sections of one parent sharing a group (faces, plates) share the docs table's
            rows, as ``<group>.key`` with each one's default.
        notes: the sample's comments for this section instead of its keys' docs, by dotted key
            (a second section of the same class repeats no comment but where it differs).
    """
    meta = Setting(doc, details, key, flatten=flatten, group=group, notes=notes)
    if factory is None:
        return field(default=None, metadata={SCHEMA: meta})
    return field(default_factory=factory, metadata={SCHEMA: meta})


# --------------------------------------------------------------------------- errors


class Checker:
    """Collects errors while reading a mapping; shared by the profile and the daemon config."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.source}: at '{path}': {message}")

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ConfigError("\n".join(self.errors))

    def section(self, data: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.error(path or "<top>", f"expected a mapping, got {type(data).__name__}")
            return {}
        unknown = sorted(set(map(str, data)) - allowed)
        for key in unknown:
            self.error(join(path, key), f"unknown key; allowed keys: {', '.join(sorted(allowed))}")
        return data

    def get(
        self,
        data: dict[str, Any],
        path: str,
        key: str,
        default: Any,
        kind: type | tuple[type, ...],
        *,
        choices: tuple[Any, ...] | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        convert: Callable[[Any], Any] | None = None,
    ) -> Any:
        full = join(path, key)
        if key not in data or data[key] is None and default is None:
            return default
        value = data[key]
        if convert is not None:
            try:
                value = convert(value)
            except (TypeError, ValueError) as exc:
                self.error(full, str(exc))
                return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a profile that says `crf: true` is a mistake.
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.error(full, f"expected {names}, got {value!r}")
            return default
        if choices is not None and value not in choices:
            self.error(full, f"{value!r} is not one of: {', '.join(map(str, choices))}")
            return default
        if minimum is not None and value < minimum:
            self.error(full, f"{value!r} is below the minimum {minimum}")
            return default
        if maximum is not None and value > maximum:
            self.error(full, f"{value!r} is above the maximum {maximum}")
            return default
        return value


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------- value kinds

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any) -> float:
    """Given '30s', '24h', '30d', '0' or a number, return seconds. Raise ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 24h or 30d, got {value!r}")  # noqa: TRY004 - the key's error
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 30s, 24h or 30d, got {value!r}")
    number, unit = match.groups()
    return float(number) * (_UNITS[unit] if unit else 1)


def format_duration(seconds: float) -> str:
    """Given seconds, return the shortest exact '6h', '30d', '90s' (what ``parse_duration`` reads)."""
    for unit, size in _UNITS.items():
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _float_list(value: Any, low: float | None, high: float | None) -> tuple[float, ...]:
    def fits(v: Any) -> bool:
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        return number and (low is None or v >= low) and (high is None or v <= high)

    if not isinstance(value, list) or not value or not all(fits(v) for v in value):
        raise ValueError(f"expected a non-empty list of numbers between {low} and {high}, got {value!r}")
    return tuple(float(v) for v in value)


def _color(value: Any) -> tuple[int, int, int]:
    if not (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        raise ValueError(f"expected [R, G, B] with values 0-255, got {value!r}")
    return tuple(value)  # type: ignore[return-value]


def parse_host_port(c: Checker, path: str, value: Any, example: str) -> tuple[str, int] | None:
    """Given HOST:PORT, return (host, port); record an error and return None otherwise."""
    if not isinstance(value, str) or ":" not in value:
        c.error(path, f"expected HOST:PORT such as {example}, got {value!r}")
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        c.error(path, f"expected HOST:PORT with a port 1-65535, got {value!r}")
        return None
    return host.strip("[]"), int(port)


def check_url(c: Checker, path: str, value: Any, schemes: tuple[str, ...]) -> str | None:
    """Validate a broker or backend URL; the error never repeats the URL (it may hold a password)."""
    if value is None:  # the daemon's `broker: null`: no broker
        return None
    if not isinstance(value, str) or not value.strip():
        c.error(path, f"expected a URL such as redis://127.0.0.1:6379/0, got {type(value).__name__}")
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        c.error(path, "not a valid URL (check the port)")
        return None
    if parts.scheme not in schemes:
        # Named only when it is one: urlsplit reads `user:password@host` as the scheme `user`.
        named = f"scheme {parts.scheme!r}" if value.startswith(f"{parts.scheme}://") else "the scheme"
        c.error(path, f"{named} is not one of: {', '.join(schemes)}")
        return None
    if not parts.hostname and not parts.path.startswith("/") and parts.scheme != "redis+socket":
        c.error(path, "the URL names no host")
        return None
    return value


# --------------------------------------------------------------------------- schema walking


@dataclass(frozen=True)
class Key:
    """One declared key as the walkers see it: the field, its declaration and its resolved type."""

    name: str  # the dataclass field
    key: str  # the YAML key
    meta: Setting
    base: Any  # the annotation without None: int, float, str, bool, Path, tuple[...], a dataclass
    nullable: bool
    field: dataclasses.Field

    @property
    def section(self) -> type | None:
        """The nested section's class (also of a list of sections), or None for a plain value."""
        if dataclasses.is_dataclass(self.base):
            return self.base
        args = typing.get_args(self.base)
        if typing.get_origin(self.base) is tuple and len(args) == 2 and args[1] is Ellipsis:
            return args[0] if dataclasses.is_dataclass(args[0]) else None
        return None

    @property
    def is_duration(self) -> bool:
        """Seconds, written as a number or as ``30s``, ``5m``, ``2h``, ``1d``: a key declared so,
        and every number key named ``*_s`` (one syntax for every duration; issue 25 found
        ``settle_s: 30s`` refused while ``retention.after: 30s`` was accepted)."""
        if self.meta.kind is not None:
            return self.meta.kind == "duration"
        return self.base is float and self.key.endswith("_s")

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.base) is tuple and self.section is not None

    def default(self, defaults: Any) -> Any:
        """This key's default: from the section's default instance, else from the field."""
        if defaults is not None:
            return getattr(defaults, self.name)
        if self.field.default is not MISSING:
            return self.field.default
        if self.field.default_factory is not MISSING:
            return self.field.default_factory()
        return None


_KEYS: dict[type, tuple[Key, ...]] = {}


def keys_of(cls: type) -> tuple[Key, ...]:
    """The declared keys of a schema dataclass, in field order (fields without ``setting`` are not keys)."""
    if cls not in _KEYS:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            meta = f.metadata.get(SCHEMA)
            if meta is None:
                continue
            hint = hints[f.name]
            args = typing.get_args(hint)
            nullable = isinstance(hint, UnionType) and NoneType in args
            base = next(a for a in args if a is not NoneType) if nullable else hint
            out.append(Key(f.name, meta.key or f.name, meta, base, nullable, f))
        _KEYS[cls] = tuple(out)
    return _KEYS[cls]


def yaml_keys(cls: type) -> set[str]:
    """The keys a mapping of this section may hold (a flattened section's keys included)."""
    out: set[str] = set()
    for k in keys_of(cls):
        if k.meta.flatten and k.section is not None:
            out |= yaml_keys(k.section)
        else:
            out.add(k.key)
    return out


# A rule between keys: (checker, the raw mapping, its path, the values read, the section's
# defaults) -> whether the section is built; it may change ``values`` and record errors.
Check = Callable[[Checker, dict[str, Any], str, dict[str, Any], Any], bool | None]


class Reader:
    """Validates parsed YAML against a schema dataclass, collecting every error in ``checker``."""

    def __init__(
        self, checker: Checker, *, base_dir: Path | None = None, checks: Mapping[type, Check] | None = None
    ) -> None:
        self.c = checker
        self.base_dir = base_dir
        self.checks = dict(checks or {})

    def read(self, cls: type, raw: Any, path: str = "", defaults: Any = None) -> Any:
        """Given a raw mapping, return an instance of ``cls``, or None where it could not be built."""
        d = self.c.section(raw, path, yaml_keys(cls))
        return self._build(cls, d, path, defaults)

    def _build(self, cls: type, d: dict[str, Any], path: str, defaults: Any) -> Any:
        values: dict[str, Any] = {}
        for k in keys_of(cls):
            default = k.default(defaults)
            sub = k.section
            if sub is not None and k.meta.flatten:
                values[k.name] = self._build(sub, d, path, default)
            elif sub is not None and k.is_list:
                values[k.name] = self._list(k, d, path)
            elif sub is not None:
                if k.key in d and d[k.key] is None and k.nullable:
                    values[k.name] = None
                else:
                    values[k.name] = self.read(sub, d.get(k.key), join(path, k.key), default)
            else:
                values[k.name] = self.value(k, d, path, default)
        check = self.checks.get(cls)
        if check is not None and check(self.c, d, path, values, defaults) is False:
            return None
        if any(values[k.name] is None and not k.nullable and k.meta.kind != "custom" for k in keys_of(cls)):
            return None  # a required key is missing or invalid: its error is recorded
        return cls(**values)

    def _list(self, k: Key, d: dict[str, Any], path: str) -> tuple[Any, ...]:
        where = join(path, k.key)
        if k.key not in d:
            if k.meta.required:
                self.c.error(where, "required key is missing")
            return ()
        raw = d[k.key]
        if not isinstance(raw, list) or not raw:
            self.c.error(where, f"expected a non-empty list of {k.key}")
            return ()
        sub = k.section
        assert sub is not None
        required = [x.key for x in keys_of(sub) if x.meta.required]
        out = []
        for i, item in enumerate(raw):
            item_path = f"{where}[{i}]"
            if item is None or item == {}:
                noun = k.key.removesuffix("s")  # folders -> "a folder mapping"
                self.c.error(item_path, f"expected a {noun} mapping with {', '.join(required)}")
                continue
            built = self.read(sub, item, item_path)
            if built is not None:
                out.append(built)
        return tuple(out)

    def value(self, k: Key, d: dict[str, Any], path: str, default: Any) -> Any:
        """Read one plain key of ``d``: its value, or ``default`` (absent or invalid; errors recorded)."""
        c, m, full = self.c, k.meta, join(path, k.key)
        if k.key not in d:
            if m.required:
                c.error(full, "required key is missing")
            return default
        raw = d[k.key]
        if m.kind == "custom":
            return raw
        if raw is None and k.nullable:
            return None
        if raw is None and m.required:  # else read as absent: no error, then no section built
            c.error(full, "required key is null")
            return None
        bounds = {"minimum": m.minimum, "maximum": m.maximum}
        if k.is_duration:
            return c.get(d, path, k.key, default, float, convert=parse_duration, **bounds)
        if m.kind == "hostport":
            if raw is False and k.nullable:
                return None  # `metrics: false`: off
            return parse_host_port(c, full, raw, m.example or "127.0.0.1:8080")
        if m.kind == "url":
            return check_url(c, full, raw, m.choices or ())
        if k.base is Path:  # resolved against the config file's folder
            return self._path(full, c.get(d, path, k.key, None, str))
        base = k.base
        if base is str and m.choices and "off" in m.choices:
            # YAML 1.1 reads an unquoted `off` as false: a key whose choices include "off" takes it so.
            return c.get(d, path, k.key, default, str, convert=lambda v: "off" if v is False else v, choices=m.choices)
        if base is bool or base is str or base is int:
            return c.get(d, path, k.key, default, base, choices=m.choices, **bounds)
        if base is float:
            value = c.get(d, path, k.key, default, (int, float), choices=m.choices, **bounds)
            return None if value is None else float(value)
        if base == tuple[float, ...]:
            return c.get(d, path, k.key, default, tuple, convert=lambda v: _float_list(v, m.minimum, m.maximum))
        if base == tuple[int, int, int]:
            return c.get(d, path, k.key, default, tuple, convert=_color)
        raise TypeError(f"{k.name}: no reader for {base!r}")

    def _path(self, full: str, value: str | None) -> Path | None:
        if value is None:
            return None
        if not value.strip():
            self.c.error(full, "expected a path, got an empty string")
            return None
        p = Path(value).expanduser()
        if not p.is_absolute() and self.base_dir is not None:
            p = self.base_dir / p
        return p.resolve()


# --------------------------------------------------------------------------- sample and docs

COMMENT_COLUMN = 25  # the "#" of a comment stands in column 27


def _scalar(k: Key, value: Any) -> str:
    """``value`` as the sample writes it (YAML that reads back to the same value)."""
    if k.is_duration and value is not None:
        return format_duration(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    if isinstance(value, str):
        import yaml

        # Quoted where YAML would read it as something else ('null', 'yes', '1.0').
        return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 4.0 -> 4: read back as a number all the same
    return repr(value)


def _comment(k: Key) -> str:
    choices = " | ".join(map(str, k.meta.choices)) if k.meta.choices and k.meta.kind != "url" else ""
    return ": ".join(part for part in (choices, k.meta.doc) if part)


def _line(indent: int, text: str, comment: str) -> str:
    line = " " * indent + text
    if not comment:
        return line
    return f"{line:<{COMMENT_COLUMN}} # {comment}" if len(line) < COMMENT_COLUMN else f"{line} # {comment}"


def sample_yaml(cls: type, instance: Any, header: str = "") -> str:
    """Given a schema dataclass and its defaults, return a commented YAML sample of every key."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    _sample_lines(cls, instance, 0, None, "", lines)
    return "\n".join(lines).rstrip("\n") + "\n"


def _sample_lines(
    cls: type, instance: Any, indent: int, notes: Mapping[str, str] | None, prefix: str, lines: list[str]
) -> None:
    after_section = False
    for k in keys_of(cls):
        value = getattr(instance, k.name)
        # A section with ``notes`` (plates) comments only where they are given.
        comment = _comment(k) if notes is None else notes.get(prefix + k.key, "")
        is_section = k.section is not None and not k.is_list and value is not None
        if indent == 0 and lines and (is_section or after_section):
            lines.append("")  # top-level sections stand apart
        after_section = is_section
        if is_section:
            lines.append(_line(indent, f"{k.key}:", comment))
            if notes is None:
                _sample_lines(k.section, value, indent + 2, k.meta.notes, "", lines)  # type: ignore[arg-type]
            else:
                _sample_lines(k.section, value, indent + 2, notes, f"{prefix}{k.key}.", lines)  # type: ignore[arg-type]
        elif value is None and k.meta.example is not None:
            lines.append(_line(indent, f"# {k.key}: {k.meta.example}", comment))
        else:
            lines.append(_line(indent, f"{k.key}: {_scalar(k, value)}", comment))


def _allowed(k: Key) -> str:
    m = k.meta
    if m.kind == "custom":
        return ""
    if m.choices and m.kind == "url":
        text = "URL: " + ", ".join(f"`{s}://`" for s in m.choices)
    elif m.choices:
        text = ", ".join(f"`{c}`" for c in m.choices)
    elif k.is_duration:
        text = "duration (`30s`, `24h`, `30d`)" + _bounds(m, " ")
    elif m.kind == "hostport":
        text = "`HOST:PORT`"
    elif k.base is Path:
        text = "path"
    elif k.base is bool:
        text = "`true`, `false`"
    elif k.base is int:
        text = "integer" + _bounds(m, " ")
    elif k.base is float:
        text = "number" + _bounds(m, " ")
    elif k.base == tuple[float, ...]:
        text = "list of numbers" + _bounds(m, " ")
    elif k.base == tuple[int, int, int]:
        text = "`[R, G, B]`, 0-255"
    else:
        text = "text"
    return text + (", `null`" if k.nullable and m.kind != "hostport" else "")


def _bounds(m: Setting, sep: str) -> str:
    if m.minimum is not None and m.maximum is not None:
        return f"{sep}{m.minimum:g}-{m.maximum:g}"
    if m.minimum is not None:
        return f"{sep}>= {m.minimum:g}"
    if m.maximum is not None:
        return f"{sep}<= {m.maximum:g}"
    return ""


def _shown(k: Key, value: Any) -> str:
    if k.meta.shown_default is not None:
        return k.meta.shown_default
    if k.meta.required:
        return "required"
    if value is None:
        return "–"
    return f"`{_scalar(k, value)}`"


Row = tuple[str, str, str, str]  # key, default, allowed, meaning


def _rows(cls: type, instance: Any, prefix: str) -> list[Row]:
    def value_of(k: Key) -> Any:
        return getattr(instance, k.name) if instance is not None else k.default(None)

    rows: list[Row] = []
    groups_done: set[str] = set()
    for k in keys_of(cls):
        meaning = k.meta.details or k.meta.doc
        sub = k.section
        if sub is not None and k.meta.flatten:
            rows += _rows(sub, value_of(k), prefix)
        elif sub is not None and k.is_list:
            rows.append((f"{prefix}{k.key}[]", "required" if k.meta.required else "", "list", meaning))
            rows += _rows(sub, None, f"{prefix}{k.key}[].")
        elif sub is not None and k.meta.group:
            # faces and plates: one row per key, with each one's default where they differ
            if k.meta.group not in groups_done:
                groups_done.add(k.meta.group)
                members = [m for m in keys_of(cls) if m.meta.group == k.meta.group]
                tables = [_rows(sub, value_of(m), f"{prefix}<{k.meta.group}>.") for m in members]
                for same in zip(*tables):
                    defaults = list(dict.fromkeys(r[1] for r in same))
                    rows.append((same[0][0], " / ".join(defaults), same[0][2], same[0][3]))
        elif sub is not None:
            if meaning:
                rows.append((f"{prefix}{k.key}", "", "", meaning))
            rows += _rows(sub, value_of(k), f"{prefix}{k.key}.")
        else:
            rows.append((f"{prefix}{k.key}", _shown(k, value_of(k)), _allowed(k), meaning))
    return rows


def markdown_table(cls: type, instance: Any = None, prefix: str = "") -> str:
    """Given a schema dataclass (and its defaults), return a markdown table of every key."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key, default, allowed, meaning in _rows(cls, instance, prefix):
        cells = (f"`{key}`", default, allowed, meaning)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
