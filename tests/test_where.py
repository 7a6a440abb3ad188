"""The filter language: a table of good filters with their matches, bad ones with positions."""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracklog
from tracklog.read.where import (
    MISSING,
    FilterError,
    field_getter,
    flatten,
    lookup,
    parse_filter,
    parse_order,
    parse_time,
    sort_runs,
)


@pytest.fixture
def store() -> tracklog.Store:
    specs = [
        (
            "a",
            "vision",
            {"lr": 0.1, "opt": "adam", "layers": 3},
            {"team": "cv"},
            {"loss": [0.5, 0.05], "val/acc": [0.9]},
        ),
        ("b", "vision", {"lr": 0.01, "opt": "sgd", "layers": 5}, {"team": "cv"}, {"loss": [0.7, 0.2]}),
        ("bert-base", "nlp", {"lr": "0.001", "opt": "adam"}, {"team": "nlp"}, {"loss": [math.nan]}),
        ("c", "nlp", {"lr": 0.3, "opt": "Adam"}, {}, {"loss": [1.0, 0.09, 0.08], "f1 macro": [0.5]}),
    ]
    for name, exp, params, tags, metrics in specs:
        with tracklog.start_run(exp, name, params=params, tags=tags) as run:
            for key, values in metrics.items():
                for v in values:
                    run.log_metric(key, v)
    crashed = tracklog.start_run("nlp", "d", params={"lr": 0.5})
    from .helpers import crash

    crash(crashed)
    return tracklog.Store()


GOOD = [
    ("metrics.loss < 0.1", {"a", "c"}),
    ("metrics.loss < 0.1 AND params.opt = 'adam'", {"a"}),
    ("metrics.loss >= 0.1 OR params.layers > 4", {"b"}),
    ("NOT metrics.loss < 0.1", {"b", "bert-base", "d"}),  # NaN and missing: NOT of false
    ("params.lr = '0.001'", {"bert-base"}),
    ("params.lr = 0.001", {"bert-base"}),  # a str param compared as a number
    ("params.lr > 0.05", {"a", "c", "d"}),
    ("params.opt IN ('adam', 'Adam')", {"a", "bert-base", "c"}),
    ("params.opt NOT IN ('adam')", {"b", "c"}),
    ("params.opt LIKE 'a%'", {"a", "bert-base"}),
    ("params.opt ILIKE 'a%'", {"a", "bert-base", "c"}),
    ("name LIKE 'bert-%'", {"bert-base"}),
    ("name NOT LIKE '_'", {"bert-base"}),
    ("tags.team = 'cv'", {"a", "b"}),
    ("tags.team != 'cv'", {"bert-base"}),
    ("status = 'crashed'", {"d"}),
    ("attributes.status = 'finished' AND experiment = 'nlp'", {"bert-base", "c"}),
    ("metrics.loss.min <= 0.08", {"a", "c"}),
    ("metrics.loss.max > 0.6", {"b", "c"}),
    ("metrics.loss.count = 3", {"c"}),
    ("metrics.loss.first_step = 0 AND metrics.loss.last_step = 1", {"a", "b"}),
    ("metrics.`val/acc` > 0.5", {"a"}),
    ('metrics."f1 macro".last = 0.5', {"c"}),
    ("(params.opt = 'adam' OR params.opt = 'sgd') AND NOT (tags.team = 'nlp')", {"a", "b"}),
    ("start_time > 0", {"a", "b", "bert-base", "c", "d"}),
    ("metrics.loss != 0.2", {"a", "c"}),  # NaN satisfies nothing, not even !=
    ("params.missing = 1 OR params.layers = 3", {"a"}),
    ("params.layers = 3.0", {"a"}),
    ("name = 'a' or name = 'b'", {"a", "b"}),  # keywords are case-insensitive
]


@pytest.mark.parametrize(("text", "want"), GOOD)
def test_filter_matches(store: tracklog.Store, text: str, want: set[str]) -> None:
    assert {r.name for r in store.runs(where=text)} == want


BAD = [
    ("", 0, "empty"),
    ("metrics.loss <", 14, "expected a value"),
    ("metrics.loss << 1", 14, "expected a number"),
    ("loss < 1", 0, "unknown field"),
    ("params.lr = 'x", 12, "unterminated"),
    ("(params.lr = 1", 14, "expected ')'"),
    ("params.lr = 1 AND", 17, "expected a field"),
    ("params.lr = 1 params.x = 2", 14, "expected AND, OR"),
    ("metrics.loss.mean > 1", 13, "unknown metric aggregate"),
    ("params. = 1", 7, "expected a key"),
    ("params.lr LIKE 3", 15, "LIKE needs a 'quoted' pattern"),
    ("params.lr ~ 3", 10, "expected an operator"),
    ("params.lr IN 1", 13, "expected '('"),
    ("attributes.color = 'x'", 0, "unknown attribute"),
    ("__import__('os').system('x') = 1", 0, "unknown field"),
    ("params.lr NOT = 1", 10, "expected IN or LIKE"),
]


@pytest.mark.parametrize(("text", "pos", "msg"), BAD)
def test_bad_filters_point_at_the_position(text: str, pos: int, msg: str) -> None:
    with pytest.raises(FilterError, match=re.escape(f"position {pos}: {msg}")) as info:
        parse_filter(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, tracklog.TracklogError)
    assert info.value.args[0].splitlines()[-1] == "  " + " " * pos + "^"
    assert info.value.position == pos  # for a UI that points at it itself


def test_order_by_sorts_nan_and_missing_last_both_ways(store: tracklog.Store) -> None:
    asc = [r.name for r in store.runs(order_by="metrics.loss")]
    desc = [r.name for r in store.runs(order_by="metrics.loss DESC")]
    assert asc[:3] == ["a", "c", "b"] and set(asc[3:]) == {"bert-base", "d"}
    assert desc[:3] == ["b", "c", "a"] and set(desc[3:]) == {"bert-base", "d"}


def test_order_by_several_fields_and_limit(store: tracklog.Store) -> None:
    got = [r.name for r in store.runs(order_by=["experiment ASC", "name DESC"], limit=3)]
    assert got == ["d", "c", "bert-base"]


def test_default_order_is_newest_first(store: tracklog.Store) -> None:
    assert [r.name for r in store.runs()] == ["d", "c", "bert-base", "b", "a"]


def test_experiment_argument_filters(store: tracklog.Store) -> None:
    assert {r.name for r in store.runs(experiment="vision")} == {"a", "b"}


def test_parse_order_rejects_junk() -> None:
    with pytest.raises(FilterError, match="ASC, DESC"):
        parse_order("metrics.loss upward")
    assert sort_runs([], parse_order("name")) == []


@pytest.mark.parametrize("text", ["(" * 10_000, "not " * 5_000 + "status = 'x'", "NOT (" * 100 + "id = 'a'"])
def test_deeply_nested_filters_are_refused_with_a_position_not_a_recursion_error(text: str) -> None:
    with pytest.raises(FilterError, match=r"nest deeper than \d+ levels"):
        parse_filter(text)


def test_filters_nested_to_the_limit_still_work(store: tracklog.Store) -> None:
    from tracklog.read.where import MAX_DEPTH

    text = "NOT " * (MAX_DEPTH - 1) + "(name = 'a')"
    assert len(store.runs(where=text)) in (1, len(store.runs()) - 1)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"order_by": 5}, FilterError),
        ({"order_by": ["name", 5]}, FilterError),
        ({"limit": True}, tracklog.ValidationError),
        ({"limit": -1}, tracklog.ValidationError),
        ({"limit": 1.5}, tracklog.ValidationError),
        ({"where": 5}, FilterError),
        ({"experiment": 5}, tracklog.ValidationError),
    ],
)
def test_bad_runs_arguments_are_typed_errors(store: tracklog.Store, kwargs: dict, exc: type) -> None:  # type: ignore[type-arg]
    with pytest.raises(exc):
        store.runs(**kwargs)


@given(
    text=st.text(alphabet="ab%_", max_size=12),
    pattern=st.text(alphabet="ab%_", max_size=8),
)
def test_like_matches_as_sql_like_does(text: str, pattern: str) -> None:
    from tracklog.read.where import like_match

    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    assert like_match(text, pattern) == (re.fullmatch(rx, text, re.DOTALL) is not None)


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time UTC+05:30 (a POSIX TZ string: no tz database needed), so local != UTC."""
    monkeypatch.setenv("TZ", "TLT-05:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


_UTC = dt.timezone.utc
_LOCAL_0758 = dt.datetime(2026, 12, 2, 7, 58, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))


@pytest.mark.parametrize(
    ("literal", "when"),
    [
        ("2026-12-02", _LOCAL_0758.replace(hour=0, minute=0)),  # a date is its local midnight
        ("2026-12-02 07:58", _LOCAL_0758),  # what `tracklog runs` prints, minus the seconds
        ("2026-12-02 07:58:00", _LOCAL_0758),
        ("2026-12-02T07:58:00", _LOCAL_0758),
        ("2026-12-02T07:58:00.250", _LOCAL_0758 + dt.timedelta(milliseconds=250)),
        ("2026-12-02T07:58:00Z", dt.datetime(2026, 12, 2, 7, 58, tzinfo=_UTC)),
        ("2026-12-02T07:58Z", dt.datetime(2026, 12, 2, 7, 58, tzinfo=_UTC)),
        ("2026-12-02 07:58:00+01:00", dt.datetime(2026, 12, 2, 6, 58, tzinfo=_UTC)),
        ("2026-12-02T07:58:00-0500", dt.datetime(2026, 12, 2, 12, 58, tzinfo=_UTC)),
    ],
)
def test_time_fields_compare_with_iso_dates_in_local_time_unless_offset(
    kolkata: None, literal: str, when: dt.datetime
) -> None:
    t = when.timestamp()
    before, at, after = (SimpleNamespace(start_time=t + d, end_time=None) for d in (-1.0, 0.0, 1.0))
    assert parse_time(literal) == t
    gt = parse_filter(f"start_time > '{literal}'")
    assert [gt(r) for r in (before, at, after)] == [False, False, True]
    le = parse_filter(f'attributes.start_time <= "{literal}"')
    assert [le(r) for r in (before, at, after)] == [True, True, False]
    assert parse_filter(f"start_time IN ('{literal}', 0)")(at)
    assert not parse_filter(f"end_time < '{literal}'")(at)  # no end time: false, as for any missing field


def test_a_printed_start_time_reads_back_as_the_same_instant(kolkata: None) -> None:
    from tracklog.cli.render import fmt_time

    t = 1_796_198_280.0  # printed in local time, so it must be read back in local time
    assert parse_time(fmt_time(t)) == t


@pytest.mark.parametrize(
    ("text", "pos", "msg"),
    [
        ("start_time > 'yesterday'", 13, "start_time is a time and 'yesterday' is not a date"),
        ("end_time < '2026-13-01'", 11, "end_time is a time and '2026-13-01' is not a date"),
        ("start_time >= '2026-12-02 25:00'", 14, "start_time is a time and '2026-12-02 25:00' is not"),
        ("start_time = '1700000000'", 13, "start_time is a time and '1700000000' is not"),
        ("start_time IN ('2026-12-02', 'x')", 29, "start_time is a time and 'x' is not"),
        ("start_time LIKE '2026%'", 11, "LIKE matches text and start_time is a time"),
    ],
)
def test_a_time_field_against_a_string_that_is_not_a_date_is_an_error(text: str, pos: int, msg: str) -> None:
    with pytest.raises(FilterError, match=re.escape(f"position {pos}: {msg}")) as info:
        parse_filter(text)
    assert info.value.args[0].splitlines()[-1] == "  " + " " * pos + "^"


def test_other_fields_still_compare_date_like_strings_as_text() -> None:
    run = SimpleNamespace(params={"day": "2026-12-02"}, name="2026-12-02 run")
    assert parse_filter("params.day = '2026-12-02'")(run)
    assert parse_filter("name LIKE '2026-%'")(run)


def test_a_bad_sort_key_or_column_is_named_as_such_not_as_a_filter() -> None:
    from tracklog.read.where import field_getter

    with pytest.raises(FilterError) as info:
        parse_order("bogus")
    assert str(info.value).startswith("bad sort key 'bogus': unknown field 'bogus'; use params.KEY, tags.KEY")
    assert "start_time, end_time" in str(info.value) and "filter" not in str(info.value)
    with pytest.raises(FilterError, match=r"^bad sort key 'metrics.loss DESX' at position 13: expected ASC"):
        parse_order(["name", "metrics.loss DESX"])
    with pytest.raises(FilterError) as info:
        field_getter("error", "column")
    assert str(info.value).startswith("unknown column 'error': use params.KEY, tags.KEY, metrics.KEY, ")
    assert "metrics.KEY.min|max|count|last|first_step|last_step" in str(info.value)
    assert "id, status, name, experiment, start_time, end_time" in str(info.value)
    with pytest.raises(
        FilterError, match=r"^bad column 'metrics\.loss\.mean' at position 13: unknown metric"
    ):
        field_getter("metrics.loss.mean", "column")


def _nested_runs() -> tracklog.Store:
    for name, params in [
        ("n1", {"opt": {"lr": 0.1, "name": "adam"}, "a.b": 1}),
        ("n2", {"opt": {"lr": 0.5}, "opt.lr": 0.01}),  # a flat key literally named "opt.lr"
        ("n3", {"opt": "sgd", "a": {"b": 2}}),
    ]:
        with tracklog.start_run("nested", name, params=params):
            pass
    return tracklog.Store()


def test_dotted_paths_read_nested_dict_params_in_filters_and_sorts() -> None:
    store = _nested_runs()

    def names(where: str) -> set[str | None]:
        return {r.name for r in store.runs(where=where)}

    assert names("params.opt.lr > 0.05") == {"n1"}  # n2's flat "opt.lr" = 0.01 wins over its 0.5
    assert names("params.opt.lr < 0.05") == {"n2"}
    assert names("params.opt.name = 'adam'") == {"n1"} and names("params.opt = 'sgd'") == {"n3"}
    assert names("params.opt.lr.x = 1 OR params.opt.name.x = 1") == set()  # no deeper dict: missing
    assert names("params.`a.b` = 1") == {"n1"}  # quoted: the key "a.b" first
    assert names("params.`a.b` = 2") == {"n3"}  # and where there is none, the nested a -> b
    assert names("params.a.b = 2") == {"n3"} and names("params.a.b = 1") == {"n1"}
    assert names('params.`opt`.lr = 0.5 OR params."opt".lr = 0.1') == {"n1", "n2"}  # quoted, nested
    assert [r.name for r in store.runs(order_by="params.opt.lr DESC")] == ["n1", "n2", "n3"]
    assert field_getter("params.opt.lr", "column")(store.run("n2")) == 0.01


def test_lookup_prefers_the_longest_literal_key_and_falls_back_to_shorter_ones() -> None:
    m = {"a.b": 1, "a": {"b": {"c": 2}}, "x": {"y.z": 3}}

    def parts(text: str) -> list[tuple[str, bool]]:
        return [(p, False) for p in text.split(".")]

    assert lookup(m, parts("a.b")) == 1  # the literal key
    assert lookup(m, parts("a.b.c")) == 2  # "a.b" holds no "c": read through "a" instead
    assert lookup(m, parts("x.y.z")) == 3 and lookup(m, parts("x.y")) is MISSING
    assert lookup(m, [("a.b", True), ("c", False)]) == 2  # "a.b" holds no "c": its dots read on
    shadowed = {"a.b": {"c": 1}, "a": {"b": {"c": 2}}}
    assert lookup(shadowed, parts("a.b.c")) == 1  # the literal "a.b" wins...
    assert lookup(shadowed, [("a", True), ("b", False), ("c", False)]) == 2  # ...quoting reaches past it
    assert lookup({"x": {"y": 1}}, [("x.y", True)]) == 1 and lookup({"x": 1}, [("x.y", True)]) is MISSING
    assert flatten(m) == {"a.b": 1, "a.b.c": 2, "x.y.z": 3}
    assert flatten({"opt.lr": 5, "opt": {"lr": 0.1}, "e": {}}) == {"opt.lr": 5, "e": {}}


@given(
    st.recursive(st.integers(), lambda kids: st.dictionaries(st.sampled_from(["a", "b", "a.b", "b.a"]), kids))
)
def test_flatten_names_each_value_by_the_path_that_reads_it(tree: object) -> None:
    if not isinstance(tree, dict):
        return
    for name, value in flatten(tree).items():
        run = SimpleNamespace(params=tree)
        assert field_getter(f"params.{name}")(run) == value is not MISSING
        assert field_getter(f"params.`{name}`")(run) == value  # quoted or not, the same value
