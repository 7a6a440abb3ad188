"""Coverage-guided fuzzing of the reader and the fold with atheris (libFuzzer).

    python tools/fuzz_reader.py -runs=100000 [corpus_dir]

Any input must end in a tracklog exception or a clean stop: anything else (another
exception, a hang, a crash) is a finding. Seeds are real segments, so mutations start
from valid logs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
with atheris.instrument_imports():
    import tracklog
    from tracklog.log.codec import decode_bulk
    from tracklog.log.reader import SegmentReport, walk_segment
    from tracklog.state.fold import FoldState

import numpy as np

_PATH = Path("fuzz.tlog")


def one_input(data: bytes) -> None:
    try:
        report = SegmentReport(_PATH)
        records = [obj for _, obj in walk_segment(_PATH, data, report)]
        FoldState().apply(records).run_state(None)
        if len(data) > 30:
            starts = np.array([0, len(data) // 2], dtype=np.int64)
            ends = np.array([len(data) // 2, len(data)], dtype=np.int64)
            decode_bulk(data, starts, ends)  # single points and one-call rows
    except tracklog.TracklogError:
        pass


def seeds(directory: Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        with tracklog.start_run(root=d, run_id="s", params={"p": 1}) as run:
            for i in range(20):
                run.log_metric("a", float(i))
            run.log_metrics({"b": 1.0, "c": 2.0})
        (directory / "seed-1").write_bytes(next(run.path.glob("seg-*.tlog")).read_bytes())


if __name__ == "__main__":
    corpus = Path(sys.argv[-1]) if len(sys.argv) > 1 and not sys.argv[-1].startswith("-") else None
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        seeds(corpus)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
