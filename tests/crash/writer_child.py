"""A training-loop stand-in run as a child process by the crash tests.

argv: root run_id durability mode resume(0/1) start_step
Writes "<i>\n" to stdout after each log call returns (the acknowledgement),
then loops until killed (or until 10**6 iterations; "finite" closes at 2000).
"""

import sys

import tracklog

root, run_id, durability, mode, resume, start = sys.argv[1:7]
run = tracklog.start_run(
    "crash",
    root=root,
    run_id=run_id,
    durability=durability,
    resume=resume == "1",
    resume_step=int(start) if resume == "1" else None,
    tags={"mode": mode},
)
out = sys.stdout
for i in range(int(start), 10**6):
    if mode == "single":
        run.log_metric("loss", float(i), step=i)
    elif mode == "multi":
        run.log_metrics({"a": float(i), "b": -float(i), "c": 0.5}, step=i)
    elif mode == "raise" and i == 50:
        raise ValueError("boom at 50")
    elif mode == "exit" and i == 50:
        sys.exit(0)
    elif mode == "finite" and i == 2000:
        run.close()
        break
    else:
        run.log_metric("loss", float(i), step=i)
    out.write(f"{i}\n")
    out.flush()
