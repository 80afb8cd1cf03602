"""Chaos: two writers, two readers and a SIGKILL on one store file, everything at once.

Each run spawns two writer processes doing a seeded random mix (single puts of small, str and
~20 KB values under str, bytes and non-ASCII keys, deletes, group transactions, nested blocks,
``update()``, rolled-back transactions (some large enough to be flushed to the file before
the rollback), short ttls, read-modify-write counter increments, explicit ``compact()`` on top of
the automatic one, closing and reopening without ``max_bytes``) and two readers (a read-only
store with a tiny read cache and a writable store that only reads, both reopening now and then)
checking every read. Twice a writer is SIGKILLed at a seeded moment and a new writer takes
its place; the survivor must carry on without a LockTimeout. At the end the parent checks the
file against the writers' logs of acknowledged operations (see ``chaos_workers.py``).

The interleaving of processes is not reproducible, but the seed fixes every choice each process
makes; a failure prints the seed and ``MMKV_STRESS_SEED=<seed>`` replays the same choices.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

import chaos_workers as cw
import pytest

import mmkv

#: Seconds the writers run from the go signal.
DURATION = 9.0
#: When the writers are killed, as fractions of DURATION (one seeded moment in each window).
KILL_WINDOWS = [(0.15, 0.45), (0.5, 0.8)]
#: The bound of the bounded store: about ten ~20 KB values, so eviction runs constantly.
MAX_BYTES = 200_000
#: Bounds on every wait for a child (generous: the machine is shared).
START_TIMEOUT = 60.0
FINISH_TIMEOUT = DURATION + 60.0

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


@dataclass
class Op:
    """One operation of a writer's log."""

    writer: int
    seq: int
    record: dict[str, Any]
    acked: bool

    @property
    def t0(self) -> float:
        return float(self.record["t0"])

    @property
    def t1(self) -> float:
        return float(self.record["t1"])

    def effects(self) -> dict[str, str]:
        """What the operation does to each key it touches: ``put``, ``ttl`` (a put with a
        ttl) or ``del``."""
        r = self.record
        op = r["op"]
        if op == "put":
            return {r["k"]: "put"}
        if op == "ttl":
            return {r["k"]: "ttl"}
        if op == "del":
            return {r["k"]: "del"}
        if op == "ctr":
            return {r["k"]: "put"}
        if op == "gput":
            out = dict.fromkeys(r["keys"] + r["extras"], "put")
            out.update(dict.fromkeys(r["dels"], "del"))
            return out
        if op == "gdel":
            return dict.fromkeys(r["keys"], "del")
        return {}  # rollback, compact, reopen


@dataclass
class WriterLog:
    """A writer's acknowledged operations and the one it may have been killed in."""

    writer: int
    acked: dict[int, Op] = field(default_factory=dict)
    unacked: list[Op] = field(default_factory=list)


def read_log(path: Path, writer: int) -> WriterLog:
    begun: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed writer may be cut short
        if "b" in record:
            begun[record["b"]] = record
        else:
            begun[record["e"]].update(record)
    log = WriterLog(writer)
    for seq, record in begun.items():
        op = Op(writer, seq, record, "e" in record)
        if op.acked:
            log.acked[seq] = op
        else:
            log.unacked.append(op)
    return log


class Child:
    """A spawned child running a ``chaos_workers`` role; its result comes back in a file."""

    def __init__(self, ctx: SpawnContext, tmp: Path, name: str, role: str, **kwargs: Any) -> None:
        self.name = name
        self.result_path = tmp / f"{name}.result.json"
        self.process: SpawnProcess = ctx.Process(
            target=cw.run_child,
            args=(role, kwargs, str(self.result_path)),
            name=name,
            daemon=True,
        )
        self.process.start()

    def join(self, timeout: float) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(30.0)
            raise AssertionError(f"{self.name} did not finish within {timeout} s (killed)")

    def kill(self) -> None:
        self.process.kill()
        self.process.join(30.0)
        assert not self.process.is_alive(), f"{self.name} survived SIGKILL"

    def result(self) -> Any:
        """The child's return value; AssertionError with its traceback if it failed."""
        assert self.result_path.exists(), (
            f"{self.name} exited with code {self.process.exitcode} without a result"
        )
        outcome = json.loads(self.result_path.read_text())
        if not outcome["ok"]:
            raise AssertionError(f"--- child {self.name} failed ---\n{outcome['error']}")
        assert self.process.exitcode == 0, f"{self.name} exited with {self.process.exitcode}"
        return outcome["value"]


def wait_ready(children: list[Child], events: list[Any]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not all(event.is_set() for event in events):
        for child in children:
            if not child.process.is_alive():
                child.result()  # raises with the child's traceback
                raise AssertionError(f"{child.name} exited before it was ready")
        assert time.monotonic() < deadline, "children did not all become ready"
        time.sleep(0.01)


def run_chaos(tmp_path: Path, seed: int, max_bytes: int | None, ttl_ops: bool = True) -> None:
    """Run the processes, then check everything; fail with every problem found at once."""
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(f"{seed}-parent")
    path = str(tmp_path / "chaos.mmkv")
    with mmkv.Store(path, max_bytes=max_bytes):
        pass  # the read-only reader needs the file to exist

    go, stop = ctx.Event(), ctx.Event()
    ready = [ctx.Event() for _ in range(4)]
    durability = ["sync" if rng.random() < 0.3 else "async" for _ in range(2 + len(KILL_WINDOWS))]
    children: list[Child] = []

    def start_writer(w: int, duration: float, ready: Any, go: Any) -> Child:
        child = Child(
            ctx,
            tmp_path,
            f"writer{w}",
            "writer",
            path=path,
            writer_id=w,
            seed=f"{seed}-writer-{w}",
            log_path=str(tmp_path / f"writer{w}.log"),
            max_bytes=max_bytes,
            durability=durability[w],
            duration=duration,
            ready=ready,
            go=go,
            ttl_ops=ttl_ops,
        )
        children.append(child)
        return child

    try:
        writers = {w: start_writer(w, DURATION, ready[w], go) for w in (0, 1)}
        readers = [
            Child(
                ctx,
                tmp_path,
                f"reader{r}",
                "reader",
                path=path,
                seed=f"{seed}-reader-{r}",
                readonly=r == 0,
                # The read-only reader's cache is tiny, so it is cleared over and over.
                cache_bytes=64 << 10 if r == 0 else 32 << 20,
                max_bytes=max_bytes,
                hard_end_at=time.monotonic() + START_TIMEOUT + FINISH_TIMEOUT,
                ready=ready[2 + r],
                go=go,
                stop=stop,
            )
            for r in (0, 1)
        ]
        children.extend(readers)
        wait_ready(children, ready)
        go.set()
        started = time.monotonic()

        # Phase two: SIGKILL a writer at two seeded moments; each time a new writer takes its
        # place and the other must carry on.
        killed: list[int] = []
        for low, high in KILL_WINDOWS:
            time.sleep(max(0.0, started + rng.uniform(low, high) * DURATION - time.monotonic()))
            victim = rng.choice(sorted(w for w in writers if w not in killed))
            writers[victim].kill()
            killed.append(victim)
            replacement_ready, replacement_go = ctx.Event(), ctx.Event()
            remaining = max(0.5, DURATION - (time.monotonic() - started))
            new = len(writers)
            writers[new] = start_writer(new, remaining, replacement_ready, replacement_go)
            wait_ready([writers[new]], [replacement_ready])
            replacement_go.set()

        survivors = [w for w in writers if w not in killed]
        for w in survivors:
            writers[w].join(FINISH_TIMEOUT)
        # Let every ttl run out while the readers keep checking, so the final state is fixed.
        time.sleep(cw.MAX_TTL + 0.2)
        stop.set()
        for child in readers:
            child.join(FINISH_TIMEOUT)
    finally:
        stop.set()
        go.set()
        for child in children:
            if child.process.is_alive():
                child.process.kill()
            child.process.join(30.0)

    problems: list[str] = []
    results: dict[str, Any] = {}
    for child in [*(writers[w] for w in survivors), *readers]:
        try:
            results[child.name] = child.result()
        except AssertionError as exc:
            problems.append(str(exc))

    # A writer that was killed or failed may have one operation begun and not acknowledged,
    # which may or may not have committed.
    logs = {w: read_log(tmp_path / f"writer{w}.log", w) for w in writers}
    maybes: list[Op] = []
    for w, log in logs.items():
        outcome = results.get(f"writer{w}")
        if outcome is not None:
            if log.unacked or len(log.acked) != outcome["ops"]:
                problems.append(f"writer{w}'s log disagrees with its {outcome['ops']} operations")
            # Not a timing assertion: any machine does a few dozen operations in seconds (a
            # late replacement writer may have had less than a second).
            if outcome["ops"] <= (10 if w < 2 else 0):
                problems.append(f"writer{w} did almost nothing: {outcome}")
        elif len(log.unacked) > 1 or (
            log.unacked and log.unacked[0].seq != max(log.acked, default=0) + 1
        ):
            problems.append(f"writer{w} left {[op.seq for op in log.unacked]} unacknowledged")
        maybes.extend(log.unacked)

    for n in range(2):
        outcome = results.get(f"reader{n}")
        if outcome is None:
            continue
        if outcome["reads"] == 0:
            problems.append(f"reader{n} checked no value at all")
        for kind, entry in outcome["violations"].items():
            problems.append(f"reader{n}: {kind} ({entry['count']}x), first: {entry['first']}")
        problems.extend(check_observations(f"reader{n}", logs, maybes, outcome["observed"]))

    problems.extend(check_final_state(path, logs, maybes, max_bytes))
    with mmkv.Store(path, readonly=True) as db:
        evictions = db.stats()["evictions"]
    seen = {
        (writer, seq)
        for outcome in results.values()
        for _, writer, seq in outcome.get("observed", ())
    }
    print(
        f"cut short: {[(op.writer, op.seq, op.record['op']) for op in maybes]}, "
        f"seen committed by a reader: {[op.seq for op in maybes if (op.writer, op.seq) in seen]}"
    )
    print(
        f"acknowledged ops {[len(log.acked) for log in logs.values()]}, killed {killed}, "
        f"durability {durability}, reader loops "
        f"{[results.get(f'reader{n}', {}).get('loops') for n in range(2)]}, "
        f"evictions {evictions}"
    )
    if problems:
        raise AssertionError(f"{len(problems)} problems:\n\n" + "\n\n".join(problems))


def find_op(logs: dict[int, WriterLog], maybes: list[Op], writer: int, seq: int) -> Op | None:
    log = logs.get(writer)
    if log is not None and seq in log.acked:
        return log.acked[seq]
    for op in maybes:
        if (op.writer, op.seq) == (writer, seq):
            return op
    return None


def check_observations(
    who: str, logs: dict[int, WriterLog], maybes: list[Op], observed: list[list[Any]]
) -> list[str]:
    """Every value a reader saw was put by an acknowledged write (or one a kill cut short)."""
    problems = []
    for name, writer, seq in observed:
        op = find_op(logs, maybes, writer, seq)
        if op is None:
            problems.append(f"{who} saw {name} from writer{writer} op {seq}, which no log has")
        elif op.effects().get(name) not in ("put", "ttl"):
            problems.append(
                f"{who} saw {name} from writer{writer} op {seq}, which did not put it: {op.record}"
            )
    return problems[:20]


def allowed_outcomes(
    name: str, logs: dict[int, WriterLog], maybes: list[Op]
) -> list[tuple[Op, str]]:
    """The operations whose effect on ``name`` may be its final state.

    The final state is the effect of the last commit that touched the key: the last
    acknowledged operation of some writer on it, unless another writer's operation on it began
    after that one returned (then it committed later), or an operation a kill cut short, if it
    committed.
    """
    lasts: list[tuple[Op, str]] = []
    for log in logs.values():
        for seq in sorted(log.acked, reverse=True):
            effect = log.acked[seq].effects().get(name)
            if effect is not None:
                lasts.append((log.acked[seq], effect))
                break
    options = [
        (op, effect)
        for op, effect in lasts
        if not any(other.t0 > op.t1 for other, _ in lasts if other is not op)
    ]
    options.extend((op, op.effects()[name]) for op in maybes if name in op.effects())
    return options


def check_final_state(
    path: str, logs: dict[int, WriterLog], maybes: list[Op], max_bytes: int | None
) -> list[str]:
    """The file after the run: sound, within its bound, and what the logs say it must hold."""
    evicting = max_bytes is not None
    universe = cw.all_keys()
    problems: list[str] = []
    with mmkv.Store(path) as db:
        try:
            db.verify()
        except mmkv.CorruptionError as exc:
            problems.append(f"verify() after the run: {exc!r}")
        stats = db.stats()
        if evicting and (stats["max_bytes"] != max_bytes or stats["live_bytes"] > max_bytes):
            problems.append(f"the bound {max_bytes} does not hold at the end: {stats}")
        final = db.get_many(universe)
        present = set(final)
        listed = list(db)
        if len(listed) != len(set(listed)) or set(listed) != present:
            problems.append(
                f"iteration {sorted(map(cw.krepr, listed))} != get_many "
                f"{sorted(map(cw.krepr, present))}"
            )
        if not len(db) == stats["keys"] == len(present):
            problems.append(f"len() {len(db)}, stats() {stats}, {len(present)} keys present")

    for key in universe:
        name = cw.krepr(key)
        options = allowed_outcomes(name, logs, maybes)
        if key in final:
            try:
                v = cw.check_value(key, final[key])
            except AssertionError as exc:
                problems.append(f"{name} at the end: {exc}")
                continue
            if v.ttl:
                problems.append(f"{name}: a put whose ttl ran out is still there: {v}")
            if not any(
                (op.writer, op.seq) == (v.writer, v.seq) and effect in ("put", "ttl")
                for op, effect in options
            ):
                problems.append(
                    f"{name}: holds writer{v.writer} op {v.seq}, not one of the last writes "
                    f"{[(op.writer, op.seq, effect) for op, effect in options]}"
                )
        elif not evicting and options and all(effect == "put" for _, effect in options):
            problems.append(
                f"{name}: missing, but its last acknowledged writes all put it: "
                f"{[op.record for op, _ in options]}"
            )

    for group in range(cw.GROUP_COUNT):
        found = {key: final[key] for key in cw.group_keys(group) if key in final}
        try:
            versions = {(v.writer, v.seq) for v in (cw.check_value(k, found[k]) for k in found)}
        except AssertionError:
            continue  # reported above
        if len(versions) > 1:
            problems.append(f"group {group} ends with mixed versions {versions}")
        if not evicting and len(found) not in (0, cw.GROUP_SIZE):
            problems.append(f"group {group} ends partly written: {sorted(map(cw.krepr, found))}")

    if not evicting:
        # Read-modify-write increments in transactions lose no update: every acknowledged
        # increment got its own count, and the final count is the number of increments that
        # committed (the acknowledged ones, plus any that a kill cut short after its commit).
        counts = [
            op.record["res"]
            for log in logs.values()
            for op in log.acked.values()
            if op.record["op"] == "ctr"
        ]
        cut_short = sum(op.record["op"] == "ctr" for op in maybes)
        last = 0
        if cw.COUNTER in final:
            try:
                last = cw.check_value(cw.COUNTER, final[cw.COUNTER]).count
            except AssertionError:
                pass  # reported above; the count check below then fails too
        if (
            len(set(counts)) != len(counts)
            or not set(counts) <= set(range(1, last + 1))
            or not len(counts) <= last <= len(counts) + cut_short
        ):
            problems.append(
                f"counter lost updates: ends at {last} after {len(counts)} acknowledged "
                f"increments (+{cut_short} cut short) with counts {sorted(counts)}"
            )

    with mmkv.Store(path, readonly=True) as db:
        try:
            db.verify()
        except mmkv.CorruptionError as exc:
            problems.append(f"read-only verify() after the run: {exc!r}")
    return problems


def test_writers_readers_and_killed_writers_on_an_unbounded_store_lose_and_tear_nothing(
    tmp_path: Path, seed: int
) -> None:
    """Everything at once on a store without max_bytes: reads stay valid, nothing acked is lost."""
    run_chaos(tmp_path, seed, max_bytes=None)


def test_writers_readers_and_killed_writers_on_a_bounded_store_keep_the_bound_and_tear_nothing(
    tmp_path: Path, seed: int
) -> None:
    """Everything at once on a store with max_bytes: reads stay valid, the bound always holds."""
    run_chaos(tmp_path, seed, max_bytes=MAX_BYTES)


def test_killed_writers_on_a_bounded_store_without_ttl_keys_keep_the_bound_and_tear_nothing(
    tmp_path: Path, seed: int
) -> None:
    """The same with no ttl puts: single puts then evict on their fused path, and are killed
    there too."""
    run_chaos(tmp_path, seed, max_bytes=MAX_BYTES, ttl_ops=False)
