"""The filter language of ``Store.runs(where=..., order_by=...)``, after MLflow's search syntax.

    metrics.loss < 0.1 AND params.optimizer = 'adam'
    (tags.team IN ('vision', 'nlp') OR name LIKE 'bert-%') AND NOT status = 'crashed'
    metrics.`val/acc`.max >= 0.9      metrics."f1 macro".count > 10

Fields: ``params.KEY``, ``tags.KEY``, ``metrics.KEY`` (the last value) and
``metrics.KEY.min|max|count|last|first_step|last_step``, and the attributes
``id``, ``status``, ``name``, ``experiment``, ``start_time``, ``end_time``,
``world_size`` (optionally written ``attributes.status``). In a many-process run
``metrics.KEY`` is rank 0's; ``ranks.R.metrics.KEY[.AGG]`` and ``ranks.R.status`` read
rank R's (``ranks.3.status = 'crashed'``). A key with characters outside
letters, digits and ``_ / @ - [ ] :`` is quoted with backticks or double quotes.

Params and tags may be nested dicts (``log_params({"opt": {"lr": 0.1}})``): a dotted
path reads into them, ``params.opt.lr`` (``lookup``). A key that itself holds the dots
wins: at each level the longest dotted name that is a key there is tried first, so a
flat ``"opt.lr"`` beside ``{"opt": {"lr": ...}}`` is what ``params.opt.lr`` reads. A
quoted part is one key first, dots and all (``params.`a.b` `` reads the key ``"a.b"``);
only where there is no such key do its dots read into nested dicts, so a name
``flatten`` gives reads the same value quoted or not.

Operators: ``= != < <= > >= LIKE ILIKE IN NOT IN``, combined with AND, OR, NOT
and parentheses. A comparison on a field the run lacks is false (so its NOT is
true); NaN satisfies no comparison and sorts last. Parsing is a small recursive
descent over characters: nothing is ever evaluated as Python.

The time fields (``start_time``, ``end_time``: seconds since the epoch) compare with
numbers, or with ISO dates and date-times as strings (``parse_time``)::

    start_time >= '2026-12-02' AND start_time < '2026-12-02 07:58'
    end_time > '2026-12-02T07:58:00Z'      start_time < '2026-12-02T07:58:00+01:00'

A date-time without an offset is local time, the time zone ``tracklog runs`` prints
times in; a date alone is its midnight. A string that is not a date is a FilterError.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import FilterError

MISSING: Any = object()
ATTRIBUTES = ("id", "status", "name", "experiment", "start_time", "end_time", "world_size")
TIME_FIELDS = ("start_time", "end_time")
AGGREGATES = ("min", "max", "count", "last", "first_step", "last_step")
_KEY_STOP = set(" \t\r\n=!<>(),'\"`.")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)", re.IGNORECASE)

_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"[ ]?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?"
)

MAX_DEPTH = 64  # nested NOTs and parentheses; deeper filters are refused, not a RecursionError
Predicate = Callable[[Any], bool]
Getter = Callable[[Any], Any]


def _get_attr(name: str) -> Getter:
    return lambda run: getattr(run, name, MISSING)


def _get_mapping(section: str, key: str) -> Getter:
    return lambda run: getattr(run, section).get(key, MISSING)


Part = tuple[str, bool]  # one dot-separated part of a path, and whether it was quoted


def lookup(mapping: Any, parts: Sequence[Part]) -> Any:
    """The value a path of parts names in nested dicts, or MISSING.

    Unquoted parts next to each other may be one key with dots in it: at each level the
    longest such dotted name that is a key there is tried first (the literal key wins),
    then shorter ones, down to one part. A quoted part is one key first; only if that
    fails are the dots inside it read like unquoted ones (``"opt.lr"`` quoted still reads
    ``{"opt": {"lr": ...}}`` when there is no key ``"opt.lr"``). Each dict of the tree is
    entered at most once per spelling of the path (its path fixes how many parts are
    consumed), so the search is linear in the size of the mapping.
    """
    if not parts:
        return mapping
    if not isinstance(mapping, dict):
        return MISSING
    name, quoted = parts[0]
    if quoted:
        if name in mapping:
            found = lookup(mapping[name], parts[1:])
            if found is not MISSING:
                return found
        if "." not in name:
            return MISSING
        return lookup(mapping, [(p, False) for p in name.split(".")] + list(parts[1:]))
    # The unquoted parts up to the first quoted one may be one key.
    longest = next((i for i, (_, q) in enumerate(parts) if q), len(parts))
    for n in range(longest, 0, -1):
        key = ".".join(p for p, _ in parts[:n])
        if key in mapping:
            found = lookup(mapping[key], parts[n:])
            if found is not MISSING:
                return found
    return MISSING


def flatten(mapping: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts as one level, each value named by its dotted path: ``{"opt": {"lr":
    0.1}}`` -> ``{"opt.lr": 0.1}``. A name two paths share (a flat ``"opt.lr"`` and
    ``opt`` -> ``lr``) holds the value ``lookup`` reads for it: the literal key's. So
    ``params.<name>`` in a filter reads exactly the value listed here under ``<name>``.
    An empty dict is a value of its own."""
    names: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            names.append(prefix)

    for k, v in mapping.items():
        walk(str(k), v)
    return {n: lookup(mapping, [(p, False) for p in n.split(".")]) for n in dict.fromkeys(names)}


def _get_path(section: str, parts: list[Part]) -> Getter:
    if len(parts) == 1 and "." not in parts[0][0]:  # one plain key: no path to try
        return _get_mapping(section, parts[0][0])
    return lambda run: lookup(getattr(run, section), parts)


def _get_metric(key: str, agg: str, rank: int | None = None) -> Getter:
    def get(run: Any) -> Any:
        if rank is None:
            m = run.metrics.get(key)
        else:
            r = getattr(run, "ranks", {}).get(rank)
            m = None if r is None else r.metrics.get(key)
        return MISSING if m is None else getattr(m, agg)

    return get


def _get_rank_status(rank: int) -> Getter:
    def get(run: Any) -> Any:
        r = getattr(run, "ranks", {}).get(rank)
        return MISSING if r is None else r.status

    return get


def parse_time(text: str) -> float | None:
    """Seconds since the epoch for an ISO 8601 date or date-time, or None if ``text`` is not one.

    ``2026-12-02``, ``2026-12-02 07:58``, ``2026-12-02T07:58:00.5``, each optionally with
    ``Z`` or an offset (``+01:00``, ``+0100``, ``-05``). Without an offset the time is
    local time (as ``datetime.fromtimestamp`` shows times); a date alone is its midnight.
    """
    m = _DATE.fullmatch(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, sec, frac, zulu, sign, off_h, off_m = m.groups()
    tz: dt.tzinfo | None = None
    if zulu:
        tz = dt.timezone.utc
    elif sign:
        if int(off_h) > 23 or int(off_m or 0) > 59:
            return None
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m or 0))
        tz = dt.timezone(-offset if sign == "-" else offset)
    try:
        when = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(sec or 0),
            int((frac or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
        return when.timestamp()
    except (ValueError, OverflowError, OSError):  # 2026-13-45, 25:00, year 0
        return None


FIELD_FORMS = (
    f"params.KEY, tags.KEY, metrics.KEY, metrics.KEY.{'|'.join(AGGREGATES)}, ranks.R.status, "
    f"ranks.R.metrics.KEY or one of {', '.join(ATTRIBUTES)}"
)


class _Parser:
    def __init__(self, text: str, what: str | None = None) -> None:
        self.text = text
        self.what = what  # None for a filter; "sort key" or "column" for a single field
        self.pos = 0
        self.depth = 0
        self.attribute: str | None = None  # the attribute the last field() named, if any

    # -- lexing helpers ------------------------------------------------------------------------

    def fail(self, msg: str, pos: int | None = None) -> FilterError:
        p = self.pos if pos is None else pos
        caret = f"\n  {self.text}\n  {' ' * p}^"
        if self.what is None:
            return FilterError(f"bad filter at position {p}: {msg}{caret}", p)
        at = f" at position {p}" if p else ""
        return FilterError(f"bad {self.what} {self.text!r}{at}: {msg}{caret if p else ''}", p)

    def unknown_field(self, head: str, start: int) -> FilterError:
        if self.what == "column" and start == 0:
            return FilterError(f"unknown column {head!r}: use {FIELD_FORMS}", 0)
        return self.fail(f"unknown field {head!r}; use {FIELD_FORMS}", start)

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.ws()
        return self.pos >= len(self.text)

    def word(self, *words: str) -> str | None:
        """Consume one of ``words`` (case-insensitive, whole word) if it comes next."""
        self.ws()
        for w in words:
            end = self.pos + len(w)
            if self.text[self.pos : end].upper() == w and (
                end >= len(self.text) or not _is_word(self.text[end])
            ):
                self.pos = end
                return w
        return None

    def char(self, c: str) -> bool:
        self.ws()
        if self.text.startswith(c, self.pos):
            self.pos += len(c)
            return True
        return False

    def quoted(self, q: str) -> str:
        start = self.pos
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == q:
                if self.text.startswith(q * 2, self.pos):  # doubled quote = a literal quote
                    out.append(q)
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise self.fail(f"unterminated {q}-quoted text", start)

    # -- grammar -------------------------------------------------------------------------------

    def parse(self) -> Predicate:
        if self.at_end():
            raise self.fail("empty filter")
        pred = self.or_expr()
        if not self.at_end():
            raise self.fail("expected AND, OR or the end of the filter")
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.word("OR"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.word("AND"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def not_expr(self) -> Predicate:
        start = self.pos
        if self.word("NOT"):
            inner = self.nested(start, self.not_expr)
            return lambda r: not inner(r)
        if self.char("("):
            inner = self.nested(start, self.or_expr)
            if not self.char(")"):
                raise self.fail("expected ')'")
            return inner
        return self.comparison()

    def nested(self, start: int, parse: Callable[[], Predicate]) -> Predicate:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"NOT and parentheses nest deeper than {MAX_DEPTH} levels", start)
        try:
            return parse()
        finally:
            self.depth -= 1

    def field(self) -> Getter:
        self.ws()
        start = self.pos
        self.attribute = None
        m = re.compile(r"[A-Za-z_]+").match(self.text, self.pos)
        if not m:
            raise self.fail(f"expected a field: {FIELD_FORMS}")
        head = m.group(0).lower()
        self.pos = m.end()
        if head == "attributes" and self.text.startswith(".", self.pos):
            self.pos += 1
            m = re.compile(r"[A-Za-z_]+").match(self.text, self.pos)
            head = m.group(0).lower() if m else ""
            self.pos = m.end() if m else self.pos
            if head not in ATTRIBUTES:
                raise self.fail(f"unknown attribute; use one of {', '.join(ATTRIBUTES)}", start)
        if head in ATTRIBUTES:
            self.attribute = head
            return _get_attr(head)
        rank = None
        if head == "ranks":
            m = re.compile(r"\.(\d{1,10})\.([A-Za-z_]+)").match(self.text, self.pos)
            if not m:
                raise self.fail("expected ranks.R.status or ranks.R.metrics.KEY, R a rank number")
            rank, head = int(m.group(1)), m.group(2).lower()
            self.pos = m.end()
            if head == "status":
                return _get_rank_status(rank)
            if head not in ("metrics", "metric"):
                raise self.fail("expected ranks.R.status or ranks.R.metrics.KEY", start)
        if head in ("params", "param", "tags", "tag", "metrics", "metric"):
            if not self.text.startswith(".", self.pos):
                raise self.fail(f"expected '.' and a key after {head}")
            self.pos += 1
            if not head.startswith("metric"):
                parts = [self.part()]
                while self.text.startswith(".", self.pos):  # a path into nested dicts
                    self.pos += 1
                    parts.append(self.part())
                return _get_path("params" if head.startswith("param") else "tags", parts)
            key = self.key()
            agg = "last"
            if self.text.startswith(".", self.pos):
                self.pos += 1
                agg_start = self.pos
                m = re.compile(r"[A-Za-z_]+").match(self.text, self.pos)
                agg = m.group(0).lower() if m else ""
                self.pos = m.end() if m else self.pos
                if agg not in AGGREGATES:
                    raise self.fail(
                        f"unknown metric aggregate; use one of {', '.join(AGGREGATES)}", agg_start
                    )
            return _get_metric(key, agg, rank)
        raise self.unknown_field(head, start)

    def key(self) -> str:
        return self.part()[0]

    def part(self) -> Part:
        """One key, or one part of a path: quoted (one key, dots and all) or up to a dot."""
        quoted = self.pos < len(self.text) and self.text[self.pos] in '`"'
        if quoted:
            key = self.quoted(self.text[self.pos])
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in _KEY_STOP:
                self.pos += 1
            key = self.text[start : self.pos]
        if not key:
            raise self.fail("expected a key (quote it with backticks if it has odd characters)")
        return key, quoted

    def value(self) -> Any:
        self.ws()
        if self.pos >= len(self.text):
            raise self.fail("expected a value")
        ch = self.text[self.pos]
        if ch in "'\"":
            return self.quoted(ch)
        for w, v in (("TRUE", True), ("FALSE", False), ("NULL", None)):
            if self.word(w):
                return v
        m = _NUMBER.match(self.text, self.pos)
        if m and (m.end() >= len(self.text) or not _is_word(self.text[m.end()])):
            self.pos = m.end()
            s = m.group(0)
            try:
                return int(s)
            except ValueError:
                return float(s)
        raise self.fail("expected a number, a 'quoted string', TRUE or FALSE")

    def operand(self, time_field: str | None) -> Any:
        """A value; for a time field a date string becomes seconds since the epoch."""
        self.ws()
        start = self.pos
        value = self.value()
        if time_field is None or not isinstance(value, str):
            return value
        t = parse_time(value)
        if t is None:
            raise self.fail(
                f"{time_field} is a time and {value!r} is not a date: use an ISO date such as "
                "'2026-12-02' or '2026-12-02 07:58' (local time unless it ends in Z or an offset "
                "such as +01:00), or a number of seconds since the epoch",
                start,
            )
        return t

    def comparison(self) -> Predicate:
        get = self.field()
        time_field = self.attribute if self.attribute in TIME_FIELDS else None
        self.ws()
        op_pos = self.pos
        negate = bool(self.word("NOT"))
        if self.word("IN"):
            if not self.char("("):
                raise self.fail("expected '(' after IN")
            values = [self.operand(time_field)]
            while self.char(","):
                values.append(self.operand(time_field))
            if not self.char(")"):
                raise self.fail("expected ',' or ')'")
            return _in(get, values, negate)
        like = self.word("LIKE", "ILIKE")
        if like and time_field:
            raise self.fail(
                f"{like} matches text and {time_field} is a time: compare it with < or > and a date", op_pos
            )
        if like:
            self.ws()
            value_pos = self.pos
            pattern = self.value()
            if not isinstance(pattern, str):
                raise self.fail(f"{like} needs a 'quoted' pattern", value_pos)
            return _like(get, pattern, like == "ILIKE", negate)
        if negate:
            raise self.fail("expected IN or LIKE after NOT", op_pos)
        for op in ("<=", ">=", "!=", "<>", "=", "<", ">"):
            if self.char(op):
                return _compare(get, "!=" if op == "<>" else op, self.operand(time_field))
        raise self.fail("expected an operator: = != < <= > >= LIKE ILIKE IN")


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Both sides as the same kind of value, or None when they cannot be compared."""
    if a is MISSING or a is None or b is None:
        return None
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return (a, b) if isinstance(a, bool) and isinstance(b, bool) else None
    if isinstance(a, num) and isinstance(b, num):
        if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
            return None
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    try:  # a str param compared with a number, or the reverse (MLflow users write '0.1')
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(fa) or math.isnan(fb) else (fa, fb)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _compare(get: Getter, op: str, value: Any) -> Predicate:
    fn = _OPS[op]

    def pred(run: Any) -> bool:
        pair = _comparable(get(run), value)
        if pair is None:
            return False
        try:
            return bool(fn(*pair))
        except TypeError:
            return False

    return pred


def _in(get: Getter, values: list[Any], negate: bool) -> Predicate:
    def pred(run: Any) -> bool:
        v = get(run)
        if v is MISSING:
            return False
        hit = any((p := _comparable(v, x)) is not None and p[0] == p[1] for x in values)
        return hit != negate

    return pred


def _like(get: Getter, pattern: str, ci: bool, negate: bool) -> Predicate:
    pat = pattern.casefold() if ci else pattern

    def pred(run: Any) -> bool:
        v = get(run)
        if not isinstance(v, str):
            return False
        return like_match(v.casefold() if ci else v, pat) != negate

    return pred


def like_match(text: str, pattern: str) -> bool:
    """SQL LIKE (``%`` any run, ``_`` one character) in O(len(text) * len(pattern)) at worst.

    The greedy wildcard walk with one backtrack point: a regex ``.*`` per ``%`` can take
    polynomial time on long values read from a log (names and tags have no length cap).
    """
    t = p = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "_" or (pattern[p] != "%" and pattern[p] == text[t])):
            t += 1
            p += 1
        elif p < len(pattern) and pattern[p] == "%":
            star_p, star_t = p, t
            p += 1
        elif star_p >= 0:
            star_t += 1
            t, p = star_t, star_p + 1
        else:
            return False
    while p < len(pattern) and pattern[p] == "%":
        p += 1
    return p == len(pattern)


def parse_filter(text: str) -> Predicate:
    """Compile a filter to a predicate over RunState; raises FilterError with the position."""
    if not isinstance(text, str):
        raise FilterError(f"a filter is a str, got {type(text).__name__}")
    return _Parser(text).parse()


def field_getter(text: str, what: str = "field") -> Getter:
    """A getter for one field such as ``params.lr`` or ``metrics.loss.min``; a FilterError
    names it as a ``what`` ("field", "column", ...)."""
    if not isinstance(text, str):
        raise FilterError(f"a {what} is a str, got {type(text).__name__}")
    p = _Parser(text, what)
    get = p.field()
    if not p.at_end():
        raise p.fail("expected only a field")
    return get


def parse_order(order_by: str | Sequence[str]) -> list[tuple[Getter, bool]]:
    """``"metrics.loss DESC, name"`` (or a list of such) -> [(getter, descending)]."""
    if isinstance(order_by, str):
        items = [order_by]
    elif isinstance(order_by, Sequence) and all(isinstance(x, str) for x in order_by):
        items = list(order_by)
    else:
        raise FilterError(f"order_by is a str or a list of str, got {order_by!r}")
    out = []
    for item in items:
        for part in _split_top(item):
            p = _Parser(part, "sort key")
            get = p.field()
            desc = p.word("DESC") is not None
            if not desc:
                p.word("ASC")
            if not p.at_end():
                raise p.fail("expected ASC, DESC or ','")
            out.append((get, desc))
    return out


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "`\"'":
            quote = ch
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p] or [text]


def sort_runs(runs: list[Any], order: list[tuple[Getter, bool]]) -> list[Any]:
    """Stable multi-key sort; a run missing the field, or with NaN, sorts last either way."""
    for get, desc in reversed(order):
        present, absent = [], []
        for r in runs:
            v = get(r)
            if v is MISSING or v is None or (isinstance(v, float) and math.isnan(v)):
                absent.append(r)
            else:
                present.append((_rank(v), r))
        present.sort(key=lambda pr: pr[0], reverse=desc)
        runs = [r for _, r in present] + absent
    return runs


def _rank(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, (int, float)):
        return (1, v)
    if isinstance(v, str):
        return (2, v)
    return (3, repr(v))
