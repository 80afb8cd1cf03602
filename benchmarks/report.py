"""Print the results of a benchmark run as tables: every workload's rate for every peer, the
ratios between mmkv's three peers and py-lmdb (above 1: the first is faster), the space the
fills took, and the cache workload's latencies.

Usage::

    python benchmarks/report.py [bench.json] [--markdown]

Without a file it reads the newest run saved by ``--benchmark-autosave`` under
``.benchmarks/``. The file is the JSON written by pytest-benchmark; each benchmark of this
suite records its rates (``extra_info["rates"]``: label -> value per second) and, for the cache
workload, latency percentiles (``extra_info["latency_us"]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: Column order; peers that did not run are left out.
PEER_ORDER = [
    "dict", "mmkv", "mmkv-py", "mmkv-0.1", "lmdb", "lmdb-1txn", "sqlite", "diskcache",
    "diskcache-fanout", "semidbm", "dbm",
]  # fmt: skip

#: Row order of the workloads (groups not listed follow, in the order they ran).
GROUP_ORDER = [
    "get-hit-repeat", "get-hit-once", "get-hit-over-cache", "get-miss-repeat", "get-miss-once",
    "get-large-repeat", "get-large-over-cache", "put", "fill", "put-batch", "put-large",
    "put-durable", "put-durable-concurrent", "mix-90-9-1", "1-writer-2-readers", "open",
    "reopen-after-overwrite", "compact", "cache-90-9-1", "memoize-hit", "incr", "add",
    "add-present", "setdefault-hit",
]  # fmt: skip

#: How a parameter is shown in a workload's name.
PARAM_FORMATS = {
    "n_keys": "{} keys",
    "n_ops": "{} puts/txn",
    "n_puts": "{} puts",
    "value_size": "{} values",
    "processes": "{} proc",
    "call": "{}",
    "cache": "cache {}",
    "order": "{}",
}

#: The ratio columns: (numerator peer, denominator peer, column title). A ratio over lmdb
#: falls back to lmdb-1txn (marked *) where per-operation lmdb did not run.
RATIOS = [
    ("mmkv", "lmdb", "mmkv/lmdb"),
    ("mmkv-py", "lmdb", "py/lmdb"),
    ("mmkv-0.1", "lmdb", "0.1/lmdb"),
    ("mmkv-py", "mmkv-0.1", "py/0.1"),
    ("mmkv", "mmkv-py", "mmkv/py"),
    ("mmkv", "diskcache", "mmkv/diskcache"),
]


def latest_autosave(roots: Iterable[Path]) -> Path | None:
    """The newest JSON file under ``<root>/.benchmarks/`` for the first root that has one."""
    for root in roots:
        saved = sorted(
            (root / ".benchmarks").glob("*/*.json"), key=lambda path: path.stat().st_mtime
        )
        if saved:
            return saved[-1]
    return None


def human(number: float) -> str:
    """A short form of a count: 950, 12.3k, 4.56M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            return f"{number / limit:.3g}{suffix}"
    return f"{number:.3g}"


def size(number: int) -> str:
    """A byte count in KiB when it is a whole number of them."""
    return f"{number // 1024} KiB" if number >= 1024 and number % 1024 == 0 else f"{number} B"


def workload_name(group: str, params: dict[str, Any]) -> str:
    """The group followed by its parameters other than the peer."""
    parts = [group]
    for name, param in params.items():
        if name == "peer":
            continue
        if isinstance(param, str):
            shown = param
        else:
            shown = size(param) if name == "value_size" else human(param)
        parts.append(PARAM_FORMATS.get(name, name + "={}").format(shown))
    return " ".join(parts)


def rates_of(bench: dict[str, Any]) -> dict[str, float]:
    """The rates a benchmark recorded, or ops/s computed from its median round time."""
    info = bench.get("extra_info", {})
    if info.get("rates"):
        return dict(info["rates"])
    median = bench.get("stats", {}).get("median")
    ops = info.get("ops_per_round")
    return {"ops/s": ops / median} if ops and median else {}


def ordered(benchmarks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The benchmarks by GROUP_ORDER, keeping the run's order within a group."""

    def rank(bench: dict[str, Any]) -> int:
        group = bench.get("group") or ""
        return GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)

    return sorted(benchmarks, key=rank)


def collect(data: dict[str, Any]) -> tuple[list[str], dict[tuple[str, str], dict[str, float]]]:
    """Rows keyed by (workload, rate label) in first-seen order, each a dict peer -> rate."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for bench in ordered(data.get("benchmarks", [])):
        params = bench.get("params") or {}
        peer = params.get("peer")
        if peer is None:
            continue
        name = workload_name(bench.get("group") or bench["name"], params)
        for label, rate in rates_of(bench).items():
            rows.setdefault((name, label), {})[peer] = rate
    present = {peer for row in rows.values() for peer in row}
    peers = [peer for peer in PEER_ORDER if peer in present]
    peers += sorted(present - set(peers))
    return peers, rows


def ratio(row: dict[str, float], mine: str, theirs: str) -> str:
    """``mine``'s rate over ``theirs`` (over lmdb-1txn's, marked *, when ``theirs`` is lmdb and
    per-operation lmdb did not run)."""
    rate = row.get(mine)
    if rate is None:
        return "-"
    if row.get(theirs):
        return f"{rate / row[theirs]:.2f}"
    if theirs == "lmdb" and row.get("lmdb-1txn"):
        return f"{rate / row['lmdb-1txn']:.2f}*"
    return "-"


def table(header: Sequence[str], body: Sequence[Sequence[str]], markdown: bool) -> str:
    """A plain-text table (first column left-aligned, the others right-aligned) or Markdown."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths]), *map(line, body)])


def rates_table(data: dict[str, Any], markdown: bool) -> str:
    """Every workload's rate per peer."""
    peers, rows = collect(data)
    header = ["workload", "unit", *peers]
    body = [
        [name, label, *(human(row[peer]) if peer in row else "-" for peer in peers)]
        for (name, label), row in rows.items()
    ]
    return table(header, body, markdown)


def ratios_table(data: dict[str, Any], markdown: bool) -> str:
    """The ratios of :data:`RATIOS` for every workload that has at least one of them."""
    _, rows = collect(data)
    header = ["workload", "unit", *(title for _, _, title in RATIOS)]
    body = []
    for (name, label), row in rows.items():
        cells = [ratio(row, mine, theirs) for mine, theirs, _ in RATIOS]
        if any(cell != "-" for cell in cells):
            body.append([name, label, *cells])
    return table(header, body, markdown)


def space_table(data: dict[str, Any], markdown: bool) -> str | None:
    """Disk bytes over live bytes (mmkv) and over the payload (every peer that says), after
    each fill and after its overwrite of every key."""
    body = []
    for bench in ordered(data.get("benchmarks", [])):
        info = bench.get("extra_info", {})
        space = info.get("space")
        params = dict(bench.get("params") or {})
        if not space:
            continue
        peer = params.pop("peer", "?")
        row = [workload_name(bench.get("group") or bench["name"], params), peer]
        for moment in ("after_fill", "after_overwrite"):
            numbers = space.get(moment) or {}
            live = numbers.get("disk_per_live")
            payload = numbers.get("disk_per_payload")
            row += [f"{live:.2f}" if live else "-", f"{payload:.2f}" if payload else "-"]
            row.append(f"{numbers['disk_bytes'] / 1e6:.1f}" if "disk_bytes" in numbers else "-")
        overwrite = info.get("overwrite_puts_per_second")
        row.append(human(overwrite) if overwrite else "-")
        body.append(row)
    if not body:
        return None
    header = ["workload", "peer", "fill disk/live", "fill disk/payload", "fill MB",
              "overwrite disk/live", "overwrite disk/payload", "overwrite MB",
              "overwrite puts/s"]  # fmt: skip
    return table(header, body, markdown)


def latency_table(data: dict[str, Any], markdown: bool) -> str | None:
    """Median / P99 / max latency per operation (microseconds) of the cache workload."""
    header = ["workload", "peer", "ops/s", "hits"]
    for operation in ("get", "put", "delete"):
        header += [f"{operation} med", f"{operation} p99", f"{operation} max"]
    body = []
    for bench in ordered(data.get("benchmarks", [])):
        info = bench.get("extra_info", {})
        latency = info.get("latency_us")
        params = bench.get("params") or {}
        if not latency:
            continue
        row = [
            workload_name(bench.get("group") or bench["name"], params),
            str(params.get("peer", "?")),
            human(rates_of(bench).get("ops/s", 0.0)),
            f"{info.get('hit_ratio', 0.0):.0%}",
        ]
        for operation in ("get", "put", "delete"):
            numbers = latency.get(operation, {})
            row += [f"{numbers.get(name, 0.0):.1f}" for name in ("median", "p99", "max")]
        body.append(row)
    return table(header, body, markdown) if body else None


def latency_ratio_table(data: dict[str, Any], markdown: bool) -> str | None:
    """Each other peer's cache-workload latency over mmkv's, per process count (above 1: mmkv
    is faster), for the median and P99 of get and put."""
    latencies: dict[tuple[str, str], dict[str, Any]] = {}
    for bench in ordered(data.get("benchmarks", [])):
        latency = bench.get("extra_info", {}).get("latency_us")
        params = dict(bench.get("params") or {})
        if not latency or "peer" not in params:
            continue
        peer = params.pop("peer")
        latencies[(workload_name(bench.get("group") or bench["name"], params), peer)] = latency
    columns = [("get", "median"), ("get", "p99"), ("put", "median"), ("put", "p99")]
    header = [
        "workload",
        "peer / mmkv",
        *(f"{op} {'med' if s == 'median' else s}" for op, s in columns),
    ]
    body = []
    for (name, peer), latency in latencies.items():
        mine = latencies.get((name, "mmkv"))
        if peer == "mmkv" or mine is None:
            continue
        row = [name, peer]
        for operation, statistic in columns:
            theirs = latency.get(operation, {}).get(statistic)
            ours = mine.get(operation, {}).get(statistic)
            row.append(f"{theirs / ours:.2f}" if theirs and ours else "-")
        body.append(row)
    return table(header, body, markdown) if body else None


def memoize_summary(data: dict[str, Any]) -> str | None:
    """The memoized hit's rate next to the plain get's, and their time per call (memo / get)."""
    rates: dict[str, float] = {}
    for bench in data.get("benchmarks", []):
        params = bench.get("params") or {}
        if bench.get("group") == "memoize-hit" and "call" in params:
            rate = rates_of(bench).get("ops/s")
            if rate:
                rates[params["call"]] = rate
    if "memoized" not in rates or "get" not in rates:
        return None
    return (
        f"memoized hits {human(rates['memoized'])}/s, plain gets of the same keys"
        f" {human(rates['get'])}/s: time per call memoized / get ="
        f" {rates['get'] / rates['memoized']:.2f}"
    )


def machine_summary(data: dict[str, Any]) -> str:
    """One line naming the machine, Python and the peers' versions."""
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw") or machine.get("processor") or "?"
    versions = ", ".join(f"{k} {v}" for k, v in sorted(machine.get("peer_versions", {}).items()))
    lines = [
        f"{machine.get('python_implementation', 'Python')} {machine.get('python_version', '?')}"
        f" on {machine.get('platform', machine.get('system', '?'))}, {cpu},"
        f" {machine.get('cpu_count', '?')} CPUs; {data.get('datetime', '')}",
        versions,
    ]
    for label, field in (("mmkv tree", "mmkv_tree"), ("mmkv-0.1 from", "mmkv_baseline")):
        tree = machine.get(field)
        if tree:
            changed = f", {len(tree['modified'])} files modified" if tree.get("modified") else ""
            lines.append(f"{label}: {tree['path']} at {str(tree.get('commit'))[:10]}{changed}")
    start, end = machine.get("loadavg_start"), machine.get("loadavg_end")
    if start and end:
        shown = ", ".join(f"{x:.2f}" for x in start), ", ".join(f"{x:.2f}" for x in end)
        lines.append(f"load average (1, 5, 15 min) at the start {shown[0]}; at the end {shown[1]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report; exit status 1 when there is no benchmark data to read."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="?", type=Path, help="pytest-benchmark JSON file")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    path = args.json or latest_autosave([Path.cwd(), Path(__file__).resolve().parent.parent])
    if path is None or not path.exists():
        print("no benchmark data: pass a --benchmark-json file or run with "
              "--benchmark-autosave first", file=sys.stderr)  # fmt: skip
        return 1
    data = json.loads(path.read_text())
    print(f"{path}\n{machine_summary(data)}\n")
    print("Rates (higher is better).\n")
    print(rates_table(data, args.markdown))
    print("\nRatios of rates (above 1: the first is faster); py is mmkv-py, 0.1 is mmkv-0.1;")
    print("* compared with lmdb-1txn, where per-operation lmdb did not run.\n")
    print(ratios_table(data, args.markdown))
    space = space_table(data, args.markdown)
    if space is not None:
        print("\nSpace after a fill by single puts and after overwriting every key once:")
        print("disk/live is mmkv's stats() file_bytes / live_bytes; disk/payload is the file")
        print("size (mmkv file_bytes, lmdb data.mdb) over 116 bytes of key and value a key.\n")
        print(space)
    latency = latency_table(data, args.markdown)
    if latency is not None:
        print("\nCache workload: latency per operation in microseconds, all processes.\n")
        print(latency)
    ratios = latency_ratio_table(data, args.markdown)
    if ratios is not None:
        print("\nCache workload: each peer's latency over mmkv's (above 1: mmkv is faster).\n")
        print(ratios)
    memo = memoize_summary(data)
    if memo is not None:
        print("\nMemoized hit: " + memo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
