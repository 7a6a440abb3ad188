from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import pytest

import tracklog
from tracklog.errors import CorruptLogError, RunNotFoundError, TracklogWarning
from tracklog.log import codec
from tracklog.log import format as fmt


def _run(n: int = 20) -> Path:
    with tracklog.start_run() as run:
        for i in range(n):
            run.log_metric("a", float(i))
    return run.path


def _segment(path: Path) -> Path:
    return next(path.glob("seg-*.tlog"))


def _record_spans(data: bytes) -> list[tuple[int, int]]:
    spans = []
    for item in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)):
        assert type(item) is tuple
        spans.append((item[0] - fmt.FRAME_SIZE, item[1]))
    return spans[1:]  # without the header record


def test_scan_of_a_clean_closed_run() -> None:
    path = _run()
    (report,) = tracklog.scan(path)
    size = _segment(path).stat().st_size
    assert report.records == 22  # run_start, 20 points, run_end
    assert (report.valid_end, report.torn_tail, report.corrupt) == (size, None, [])
    assert report.header is not None and report.header["run_id"] == path.name
    assert 0 < report.header_size < 400


def test_scan_reports_the_exact_torn_tail_offset() -> None:
    seg = _segment(_run())
    data = seg.read_bytes()
    spans = _record_spans(data)
    cut = spans[-1][0] + 5
    seg.write_bytes(data[:cut])
    (report,) = tracklog.scan(seg)
    assert report.torn_tail == spans[-1][0] and report.valid_end == spans[-1][0] and report.corrupt == []


def test_flipped_byte_is_reported_as_the_exact_record_range_and_the_rest_salvaged() -> None:
    seg = _segment(_run())
    data = bytearray(seg.read_bytes())
    spans = _record_spans(bytes(data))
    a, b = spans[5]
    data[a + 14] ^= 1
    seg.write_bytes(bytes(data))
    (report,) = tracklog.scan(seg)
    assert report.corrupt == [(a, b)] and report.torn_tail is None
    with pytest.warns(TracklogWarning, match=f"corrupt bytes {a}..{b}"):
        events = list(tracklog.read_events(seg))
    assert [e.value for e in events if e.kind == "metric"] == [float(i) for i in range(20) if i != 4]


def test_a_zeroed_block_is_one_corrupt_range() -> None:
    seg = _segment(_run(200))
    data = bytearray(seg.read_bytes())
    spans = _record_spans(bytes(data))
    data[1000:1512] = b"\0" * 512
    seg.write_bytes(bytes(data))
    (report,) = tracklog.scan(seg)
    first_bad = max(a for a, _ in spans if a <= 1000)
    first_good = min(a for a, _ in spans if a >= 1512)
    assert report.corrupt == [(first_bad, first_good)]
    lost = sum(1 for a, b in spans if b > 1000 and a < 1512)
    assert report.records == len(spans) - lost


def test_on_corrupt_raise_names_the_file_and_range() -> None:
    seg = _segment(_run())
    data = bytearray(seg.read_bytes())
    a, _ = _record_spans(bytes(data))[3]
    data[a + 13] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError, match=rf"{seg.name}: corrupt bytes {a}\.\."):
        list(tracklog.read_events(seg, on_corrupt="raise"))
    assert len(list(tracklog.read_events(seg, on_corrupt="ignore"))) == 21


def test_a_valid_frame_holding_a_malformed_record_is_corrupt_not_returned(tmp_path: Path) -> None:
    seg = tmp_path / "seg-000001.tlog"
    bad = fmt.frame(msgpack.packb([5, "a", "not-an-int-step", 1.0, 1.0]))
    good = fmt.frame(msgpack.packb([5, "a", 1, 1.0, 1.0]))
    start = codec.encode_segment_start({"run_id": "x"})
    seg.write_bytes(start + bad + good)
    (report,) = tracklog.scan(seg)
    assert report.corrupt == [(len(start), len(start) + len(bad))]
    with pytest.warns(TracklogWarning, match="malformed"):
        events = list(tracklog.read_events(seg))
    assert [(e.key, e.step) for e in events] == [("a", 1)]


def test_a_msgpack_bomb_is_bounded(tmp_path: Path) -> None:
    # An array header claiming 2**32-1 items inside a tiny valid frame.
    bomb = fmt.frame(b"\xdd\xff\xff\xff\xff" + b"\x00" * 8)
    seg = tmp_path / "seg-000001.tlog"
    start = codec.encode_segment_start({"run_id": "x"})
    seg.write_bytes(start + bomb)
    (report,) = tracklog.scan(seg)
    # A valid frame whose payload does not decode: reported, not returned, nothing allocated.
    assert report.corrupt == [(len(start), len(start) + len(bomb))]
    assert list(tracklog.read_events(seg, on_corrupt="ignore")) == []


def test_a_huge_claimed_length_is_never_allocated(tmp_path: Path) -> None:
    seg = tmp_path / "seg-000001.tlog"
    lie = struct.pack("<I", 0xFFFFFFF0)
    seg.write_bytes(
        codec.encode_segment_start({"run_id": "x"}) + lie + fmt.crc(lie).to_bytes(4, "little") + b"\0" * 8
    )
    (report,) = tracklog.scan(seg)
    assert report.records == 0 and report.torn_tail is not None


def test_missing_paths_raise_run_not_found(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError, match="no run directory"):
        tracklog.scan(tmp_path / "nope")


def test_a_text_file_is_not_a_segment(tmp_path: Path) -> None:
    p = tmp_path / "seg-000001.tlog"
    p.write_text("timestamp value step\n")
    with pytest.raises(CorruptLogError, match="not a tracklog segment"):
        tracklog.scan(p)


def test_a_run_directory_reads_all_segments_in_order() -> None:
    with tracklog.start_run(run_id="multi") as run:
        run.log_metric("a", 1.0)
    with tracklog.start_run(run_id="multi", resume=True) as again:
        again.log_metric("a", 2.0)
    reports = tracklog.scan(run.path)
    assert [r.path.name for r in reports] == ["seg-000001.tlog", "seg-000002.tlog"]
    assert [r.header["seq"] for r in reports if r.header] == [1, 2]
    assert [e.value for e in tracklog.read_events(run.path) if e.kind == "metric"] == [1.0, 2.0]


def test_corrupt_log_errors_carry_the_path_and_offset(tmp_path: Path) -> None:
    from tracklog.log import format as fmt

    with tracklog.start_run(run_id="c") as run:
        run.log_metric("a", 1.0)
    seg = run.path / "seg-000001.tlog"
    data = seg.read_bytes()
    ends = [it[1] for it in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)) if type(it) is tuple]
    bad = fmt.frame(codec.pack([5, ["not", "a", "key"], 0, 1.0, 1.0]))
    seg.write_bytes(data[: ends[-2]] + bad + data[ends[-2] :])
    with pytest.raises(CorruptLogError, match="malformed metric record") as info:
        list(tracklog.read_events(run.path, on_corrupt="raise"))
    assert info.value.path == str(seg) and info.value.offset == ends[-2]
    text = tmp_path / "seg-000001.tlog"
    text.write_text("no frames here at all\n")
    with pytest.raises(CorruptLogError) as info:
        tracklog.scan(text)
    assert info.value.path == str(text) and info.value.offset == 0


def test_filter_error_is_in_the_one_error_tree() -> None:
    from tracklog import errors

    assert issubclass(tracklog.FilterError, errors.ValidationError)
    assert tracklog.FilterError is errors.FilterError
