#!/usr/bin/env python3
"""Where the instructions of a call go, by area, side by side.

Reads the two callgrind files that percall.sh leaves for a system (the
N1- and N2-call runs), takes each function's own (exclusive) cost per call
from their difference, and sums those by area of the code: teleport's
frames, sessions, router and codecs, tokio, the allocator, the harness.

usage: teleport-bench/breakdown.py PREFIX [PREFIX ...]
  PREFIX is percall.sh's output without the call count, e.g.
  teleport-bench/target/percall/cg.raw-16-1x64
  teleport-bench/target/percall/cg.teleport_service-16-1x64

Needs callgrind_annotate (valgrind) on the PATH.
"""

import glob
import re
import subprocess
import sys

# First match wins: the order matters where names overlap.
AREAS = [
    ("caller: spare encode buffers", r"teleport::frame::spare"),
    (
        "frames: header encode/decode, framing",
        r"^teleport::frame|HeaderRef|Header::",
    ),
    (
        "body codecs (bincode, serde, UTF-8 checks)",
        r"teleport::codec|bincode|serde|from_utf8|simdutf8|Decode>|Encode>",
    ),
    (
        "server: routing, context, handler future, call log",
        r"teleport::session::inbound|teleport::router|CatchPanic|reusable_box"
        r"|typed_pull|teleport_bench::tp",
    ),
    (
        "caller: call future, reply slot, command queue, slots",
        r"teleport::session::call|reply_slot|commands|slots|send_pull_then"
        r"|teleport::__private|Caller",
    ),
    ("connection task: rounds, outbox, waiting pulls", r"teleport::session"),
    ("raw: framing and connection loops", r"teleport_bench::raw|PollFn"),
    ("load loop (with what it inlines)", r"teleport_bench"),
    (
        "tokio: scheduler, tasks, wake-ups",
        r"tokio::runtime::(scheduler|task|context)|tokio::task|Harness|RawTask"
        r"|with_scheduler|waker|Waker|coop",
    ),
    (
        "tokio: socket I/O and reactor",
        r"tokio::(net|io|runtime::io)|mio::|poll_read_buf|syscall|sendto|recvfrom"
        r"|__libc_send|__libc_recv",
    ),
    ("clock reads and timers", r"time|Instant|clock_gettime|Timespec"),
    (
        "malloc, free, memcpy",
        r"malloc|free|memcpy|memmove|memset|memcmp|__rust_alloc|__rust_dealloc"
        r"|realloc|_int_",
    ),
    ("bytes crate", r"^bytes::"),
    ("raw: hash map of waiting calls", r"hash|HashMap|sip"),
    ("raw: tokio mpsc and oneshot", r"tokio::sync"),
]


def functions(path):
    """Each function's exclusive instruction count in one callgrind file."""
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        name = re.sub(r"\s*\[[^\]]*\]$", "", m.group(2).strip())
        name = re.sub(r"^[^:]*\.(rs|c|S):", "", name)
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def area(name):
    for label, pattern in AREAS:
        if re.search(pattern, name):
            return label
    return "other"


def per_call(prefix):
    runs = sorted(
        (int(p.rsplit(".", 1)[1]), p)
        for p in glob.glob(prefix + ".*")
        if p.rsplit(".", 1)[1].isdigit()
    )
    if len(runs) != 2:
        sys.exit(f"{prefix}: expected the two runs of percall.sh, found {len(runs)}")
    (n1, f1), (n2, f2) = runs
    a, b = functions(f1), functions(f2)
    areas = {}
    for name in set(a) | set(b):
        label = area(name)
        areas[label] = areas.get(label, 0) + (b.get(name, 0) - a.get(name, 0)) / (n2 - n1)
    return areas


def cell(value):
    """A per-call figure, with no "-0" for a rounding of nothing."""
    return f"{value if abs(value) >= 0.5 else 0:,.0f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    prefixes = sys.argv[1:]
    columns = [per_call(p) for p in prefixes]
    names = [p.rsplit("/", 1)[-1].removeprefix("cg.") for p in prefixes]
    labels = [label for label, _ in AREAS] + ["other"]
    labels = [l for l in labels if any(abs(c.get(l, 0)) >= 0.5 for c in columns)]
    labels.sort(key=lambda l: -max(c.get(l, 0) for c in columns))
    print("| area | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for label in labels:
        print(f"| {label} | " + " | ".join(cell(c.get(label, 0)) for c in columns) + " |")
    print("| **total** | " + " | ".join(f"**{sum(c.values()):,.0f}**" for c in columns) + " |")


if __name__ == "__main__":
    main()
