"""The four families of crash states, and :func:`explore`, which runs them within a budget.

* ``process_crash``: the prefixes of every workload's recording (all, or a sample), each
  also cut inside the next effect when that copies several words (a torn copy).
* ``pairs``: a writer that died mid-commit (between effects or inside one), then the writer
  that repairs it, itself crashing after every prefix of its own recording.
* ``readers``: a reader attached before the workload, and a fresh one, after every effect
  and half way through every copy of several words; also while a writer dies mid-commit and
  the next one repairs what it left.
* ``power_loss``: images a power loss may leave at sampled prefixes, opened by another boot;
  also power losses while a second writer repairs a dead one, and reboots into a power-loss
  image whose recovery is itself interrupted by a crash or by a second power loss.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import mmkv
from mmkv import effects

from . import oracle
from .engine import (
    FLUSH,
    FSYNC_DIR,
    NAMESPACE,
    Effect,
    Image,
    LiveReplay,
    Tracker,
    materialize,
    torn_cuts,
)
from .oracle import Finding, OtherBoot
from .recording import Recording, State, joined
from .workloads import (
    STORE,
    WORKLOADS,
    Workload,
    after_reboot,
    read_target,
    record,
    scratch,
    second_writer,
)


@dataclass(frozen=True)
class Budget:
    """How much to explore; None = everything."""

    crash_prefixes: int | None  # prefixes per recording, process crash
    pair_prefixes: int | None  # prefixes in a dead writer's window, per recording and writer
    power_prefixes: int | None  # prefixes per recording, power loss
    images: int  # power-loss images per prefix (the extremes first)
    pair_power_prefixes: int | None  # dead-writer prefixes per pair explored under power loss
    pair_power_images: int  # power-loss images per prefix of those
    reboots: int  # power-loss images per recording rebooted into, crashed during recovery
    reboot_images: int  # power-loss images per prefix of the recovering process


SAMPLE = Budget(
    crash_prefixes=24,
    pair_prefixes=4,
    power_prefixes=16,
    images=10,
    pair_power_prefixes=2,
    pair_power_images=6,
    reboots=2,
    reboot_images=2,
)
FULL = Budget(
    crash_prefixes=None,
    pair_prefixes=None,
    power_prefixes=None,
    images=64,
    pair_power_prefixes=6,
    pair_power_images=16,
    reboots=8,
    reboot_images=8,
)
_HOW = ("nothing", "everything", "cut", "mix", "random")


def budget_from_env() -> Budget:
    return FULL if os.environ.get("MMKV_SIM_FULL") == "1" else SAMPLE


@dataclass
class Counts:
    process_crash_states: int = 0
    pair_states: int = 0
    reader_states: int = 0
    power_loss_images: int = 0
    reboot_crash_states: int = 0  # process crashes during recovery after a power loss
    violations: list[dict[str, Any]] = field(default_factory=list)


Recs = tuple[tuple[Workload, Recording], ...]


@functools.cache
def recordings() -> Recs:
    """Every workload, recorded once per durability (cached for the process)."""
    return tuple((w, record(w, d)) for w in WORKLOADS for d in w.durabilities)


# ---------------------------------------------------------------------- reporting


def _around(rec: Recording, k: int, width: int = 4) -> list[str]:
    """The effects around the crash point: the first ``k`` are applied."""
    lines = []
    for i in range(max(0, k - width), min(len(rec.effects), k + width)):
        if i == k:
            lines.append(f"      ---- after {k} effects ----")
        lines.append(f"      #{i:<4} {rec.effects[i].describe()}")
    if k >= len(rec.effects):
        lines.append(f"      ---- after all {k} effects ----")
    return lines


def _violation(
    counts: Counts, family: str, rec: Recording, k: int, f: Finding, **extra: Any
) -> None:
    j = rec.acked(k)
    v = {
        "family": family,
        "recording": rec.name,
        "k": k,
        "acknowledged": j,
        "in_flight": rec.labels[j] if j < len(rec.labels) else None,
        "what": f.what,
        "detail": f.detail,
        "read": oracle.summary(f.read),
        "allowed": {name: oracle.diff(f.read, s) for name, s in f.allowed.items()},
        "effects": _around(rec, k),
        **extra,
    }
    counts.violations.append(v)


def format_violation(v: dict[str, Any]) -> str:
    lines = [
        f"[{v['family']}] {v['recording']} k={v['k']}"
        + (f" j={v['j']}" if "j" in v else "")
        + f": {v['what']}: {v['detail']}",
        f"    acknowledged {v['acknowledged']} ops; in flight: {v['in_flight']}",
    ]
    if "j" in v:
        lines.append(
            f"    second writer: acknowledged {v['second_acknowledged']} ops; "
            f"in flight: {v['second_in_flight']}"
        )
    if "image" in v:
        lines.append(f"    image: {v['image']}")
    if v["read"] == "(not read)":
        lines.append(f"    allowed: {', '.join(v['allowed'])}")
    else:
        lines.append(f"    read: {v['read']}")
        for name, d in v["allowed"].items():
            lines.append(f"    vs {name}: {d}")
    lines.append("    effects:")
    lines += v["effects"]
    if "first" in v:
        lines.append(f"    the power loss before the reboot: {v['first']['image']}")
        lines += v["first"]["effects"]
    for title in ("second_recording", "second_effects"):
        if title in v:
            lines.append(f"    {title}:")
            lines += v[title]
    return "\n".join(lines)


# ---------------------------------------------------------------------- sampling


def prefixes(rec: Recording, limit: int | None, rng: random.Random, start: int = 0) -> list[int]:
    """Which prefixes (from ``start``) to crash after: all, or ``limit`` of them, interesting
    ones (either side of a header word, a flush, a namespace effect, an ack) first."""
    n = len(rec.effects)
    if limit is None or limit > n - start:
        return list(range(start, n + 1))
    key = {start, n, *rec.acks}
    for i, e in enumerate(rec.effects):
        if (e.note.startswith("store ") and e.note != "store_many") or e.kind in (
            FLUSH,
            FSYNC_DIR,
            *NAMESPACE,
        ):
            key.update((i, i + 1))
    key = {i for i in key if i >= start}
    chosen = rng.sample(sorted(key), min(limit, len(key)))
    rest = [i for i in range(start, n + 1) if i not in chosen]
    chosen += rng.sample(rest, min(len(rest), limit - len(chosen)))
    return sorted(chosen)


def dead_windows(rec: Recording) -> list[int]:
    """Prefixes where a writer has claimed a generation and not published it."""
    fid = rec.snapshot.names[STORE]
    out: list[int] = []
    claimed = None
    for i, e in enumerate(rec.effects):
        if e.fid != fid:
            continue
        if e.note == "store CLAIMED":
            claimed = i
        elif e.note == "store PUBLISHED" and claimed is not None:
            out.extend(range(claimed + 1, i + 1))
            claimed = None
    return out


# ---------------------------------------------------------------------- the families


def _crash_states(rec: Recording, ks: list[int], counts: Counts, family: str, **extra: Any) -> int:
    """Check the process-crash image of each prefix in ``ks``; how many were checked."""
    keys = oracle.all_keys(rec)
    tracker = Tracker(rec.snapshot)
    checked = 0
    for k in ks:
        tracker.advance(rec.effects, k)
        allowed = oracle.after_crash(rec, k)
        torn: list[tuple[Effect, int] | None] = [None]
        if k < len(rec.effects):  # also inside the next effect, if it copies several words
            torn += [(rec.effects[k], n) for n in torn_cuts(rec.effects[k])]
        for cut in torn:
            image = tracker.crash_image(cut)
            with scratch() as d:
                materialize(image, d)
                f = oracle.check_store(d, rec, allowed, keys)
            checked += 1
            if f is not None:
                name = family if cut is None else f"{family}, torn copy"
                _violation(counts, name, rec, k, f, image=image.note, **extra)
    return checked


def process_crash(recs: Recs, budget: Budget, rng: random.Random, counts: Counts) -> None:
    for _, rec in recs:
        for problem in rec.problems:  # found while recording: wrong without any crash
            f = Finding("recording", problem)
            _violation(counts, "recording", rec, len(rec.effects), f, effects=[])
        ks = prefixes(rec, budget.crash_prefixes, rng)
        counts.process_crash_states += _crash_states(rec, ks, counts, "process crash")


def pairs(recs: Recs, budget: Budget, rng: random.Random, counts: Counts) -> None:
    for w, rec in recs:
        window = dead_windows(rec) if w.pairs else []
        for second in w.pairs:
            ks = window
            if budget.pair_prefixes is not None and len(ks) > budget.pair_prefixes:
                ks = sorted(rng.sample(window, budget.pair_prefixes))
            tracker = Tracker(rec.snapshot)
            for k in ks:
                tracker.advance(rec.effects, k)
                cuts = torn_cuts(rec.effects[k]) if k < len(rec.effects) else []
                torn = [None] + ([(rec.effects[k], rng.choice(cuts))] if cuts else [])
                for cut in torn:  # the first writer died between effects, or inside one
                    _pair(rec, k, tracker.crash_image(cut), second, counts)


def _pair(rec: Recording, k: int, image: Image, second: str, counts: Counts) -> None:
    """The writer ``second`` finds ``image`` (``rec`` died after ``k`` effects) and dies
    after each of its own effects; each of those states is checked as a process crash."""
    allowed = oracle.after_crash(rec, k)
    with scratch() as d:
        materialize(image, d)
        try:
            base: State | str = read_target(d, rec.target)
        except Exception as exc:
            base = f"{type(exc).__name__}: {exc}"
        if base not in allowed.values():
            f = Finding("state", "the dead writer's image", base, allowed)
            _violation(counts, "pairs", rec, k, f, second=second, image=image.note)
            return
        rec2 = second_writer(rec, second, d)
    for problem in rec2.problems:
        f = Finding("second writer", problem)
        _violation(counts, "pairs", rec, k, f, second=second, image=image.note)
    before = len(counts.violations)
    every = list(range(len(rec2.effects) + 1))
    counts.pair_states += _crash_states(rec2, every, counts, "pairs")
    for v in counts.violations[before:]:  # name the first writer's crash too
        v["j"] = v.pop("k")
        v["second_in_flight"] = v.pop("in_flight")
        v["second_acknowledged"] = v.pop("acknowledged")
        v["k"] = k
        v["acknowledged"] = rec.acked(k)
        v["in_flight"] = rec.labels[rec.acked(k)]
        v["second_effects"] = v.pop("effects")
        v["effects"] = _around(rec, k)
        v["recording"] = f"{rec.name} died at k={k} ({image.note}); then {rec2.workload}"


def _reader_states(rec: Recording, counts: Counts) -> None:
    """A reader attached before the first effect, and a fresh one, after every effect."""
    keys = oracle.all_keys(rec)
    with scratch() as d:
        materialize(Image(rec.snapshot.names, rec.snapshot.files, {}), d)
        path = os.path.join(d, rec.target)
        reader = mmkv.Store(path, readonly=True)
        live = LiveReplay(d, rec.snapshot)
        try:
            f = oracle.check_reader(reader, oracle.after_crash(rec, 0), keys)
            if f is not None:
                _violation(counts, "readers", rec, 0, f, reader="attached")
            for i, e in enumerate(rec.effects):
                # Half of a copy of several words first: readers run while writers copy.
                cuts = torn_cuts(e)[1:2]
                steps = [(dataclasses.replace(e, data=e.data[:n]), i) for n in cuts]
                for part, k in [*steps, (e, i + 1)]:
                    live.apply(part)
                    allowed = oracle.after_crash(rec, k)
                    where = {"image": f"{len(part.data)} of {len(e.data)} bytes of #{i}"}
                    f = oracle.check_reader(reader, allowed, keys)
                    if f is not None:
                        _violation(counts, "readers", rec, k, f, reader="attached", **where)
                    with mmkv.Store(path, readonly=True) as fresh:
                        f = oracle.check_reader(fresh, allowed, keys)
                    if f is not None:
                        _violation(counts, "readers", rec, k, f, reader="fresh", **where)
                    counts.reader_states += 1
        finally:
            reader.close()
            live.close()


def _dead_then_repaired(
    w: Workload, rec: Recording, limit: int | None, rng: random.Random, *, surface: bool
) -> Iterator[Recording]:
    """For sampled prefixes ``k`` where ``rec``'s writer died mid-commit, and each second
    writer of ``w``: one recording of both (:func:`joined`)."""
    window = dead_windows(rec) if w.pairs else []
    for second in w.pairs:
        ks = window
        if limit is not None and len(ks) > limit:
            ks = sorted(rng.sample(window, limit))
        for k in ks:
            tracker = Tracker(rec.snapshot)
            tracker.advance(rec.effects, k)
            image = tracker.crash_image()
            with scratch() as d:
                materialize(image, d)
                rec2 = second_writer(rec, second, d)
            yield joined(rec, k, rec2, image.names, surface=surface)


def readers(recs: Recs, budget: Budget, rng: random.Random, counts: Counts) -> None:
    for w, rec in recs:
        if w.readers:
            _reader_states(rec, counts)
    # Readers while a writer dies mid-commit and the next one repairs what it left: they must
    # never see the dead commit (it was not published), nor a torn state during the repair.
    for w, rec in recs:
        for both in _dead_then_repaired(w, rec, budget.pair_prefixes, rng, surface=False):
            _reader_states(both, counts)


def _power_states(
    rec: Recording,
    ks: list[int],
    images: int,
    rng: random.Random,
    counts: Counts,
    boot: OtherBoot | None = None,
    family: str = "power loss",
    **extra: Any,
) -> list[tuple[int, Image, dict[str, State]]]:
    """Check up to ``images`` distinct power-loss images at each prefix in ``ks``; the images
    that passed and had unflushed pages (``(k, image, allowed)``), to reboot into again."""
    boot = boot or OtherBoot()
    keys = oracle.all_keys(rec)
    passed = []
    tracker = Tracker(rec.snapshot)
    for k in ks:
        tracker.advance(rec.effects, k)
        seen: set[tuple[tuple[str, int, int], ...]] = set()
        for n in range(3 * images):
            if len(seen) >= images:
                break
            how = _HOW[n] if n < len(_HOW) else rng.choice(_HOW[2:])
            image = tracker.power_image(rng, how)
            ident = tuple(
                sorted(
                    (name, zlib.crc32(image.files[fid]), len(image.files[fid]))
                    for name, fid in image.names.items()
                )
            )
            if ident in seen:
                continue
            seen.add(ident)
            allowed = oracle.after_power_loss(rec, k, image)
            with scratch() as d:
                materialize(image, d)
                f = oracle.check_store(d, rec, allowed, keys, boot=boot)
            counts.power_loss_images += 1
            if f is not None:
                _violation(counts, family, rec, k, f, image=image.note, **extra)
            elif how not in ("nothing", "everything"):
                passed.append((k, image, allowed))
    return passed


def _reboot_states(
    rec: Recording,
    k: int,
    image: Image,
    allowed: dict[str, State],
    budget: Budget,
    rng: random.Random,
    counts: Counts,
) -> None:
    """Reboot into a power-loss image: the recovering process crashes after every effect of
    its recording (and is rebooted into again), or the power fails again."""
    with scratch() as d:
        materialize(image, d)
        rec2 = after_reboot(d, rec, oracle.REBOOT, list(allowed.values()))
    where = {"image": image.note, "effects": _around(rec, k)}
    for problem in rec2.problems:
        _violation(counts, "power loss", rec, k, Finding("after the reboot", problem), **where)
    if len(rec2.models) < 3:
        return
    keys = oracle.all_keys(rec) | oracle.all_keys(rec2)
    tracker = Tracker(rec2.snapshot)
    label = {"recording": f"{rec.name} lost power at k={k}; then {rec2.workload}"}
    for j in range(len(rec2.effects) + 1):
        tracker.advance(rec2.effects, j)
        with scratch() as d:
            materialize(tracker.crash_image(), d)
            f = oracle.check_store(d, rec2, oracle.after_crash(rec2, j), keys, OtherBoot())
        counts.reboot_crash_states += 1
        if f is not None:
            family = "power loss, then a crash during recovery"
            _violation(counts, family, rec2, j, f, **label, first=where)
    ks = prefixes(rec2, budget.power_prefixes, rng)
    again = OtherBoot(oracle.REBOOT_AGAIN)
    family = "power loss, then another during recovery"
    _power_states(rec2, ks, budget.reboot_images, rng, counts, again, family, **label, first=where)


def power_loss(recs: Recs, budget: Budget, rng: random.Random, counts: Counts) -> None:
    assert OtherBoot().boot_id() != effects.Effects().boot_id(), "the other boot must differ"
    for _, rec in recs:
        ks = prefixes(rec, budget.power_prefixes, rng)
        passed = _power_states(rec, ks, budget.images, rng, counts)
        if rec.target != STORE:
            continue
        # Reboot into some of those images, and crash or lose power again during recovery.
        for k, image, allowed in rng.sample(passed, min(len(passed), budget.reboots)):
            _reboot_states(rec, k, image, allowed, budget, rng, counts)
    # A writer died mid-commit, the next one repaired it, and the power failed meanwhile.
    for w, rec in recs:
        for both in _dead_then_repaired(w, rec, budget.pair_power_prefixes, rng, surface=True):
            ps = prefixes(both, budget.power_prefixes, rng, start=both.dead_at)
            _power_states(both, ps, budget.pair_power_images, rng, counts)


FAMILIES: dict[str, Callable[[Recs, Budget, random.Random, Counts], None]] = {
    "process_crash": process_crash,
    "pairs": pairs,
    "readers": readers,
    "power_loss": power_loss,
}


def explore(mode: str = "all", seed: int = 0, budget: Budget | str = "sample") -> dict[str, Any]:
    """Run one family (``mode``), or ``"all"``, within ``budget`` (a :class:`Budget`,
    ``"sample"`` or ``"full"``); the counts, the violations and the time taken."""
    if isinstance(budget, str):
        budget = {"sample": SAMPLE, "full": FULL}[budget]
    start = time.monotonic()
    counts = Counts()
    recs = recordings()
    for name in FAMILIES if mode == "all" else (mode,):
        FAMILIES[name](recs, budget, random.Random(f"{seed}/{name}"), counts)
    result = asdict(counts)
    result["seconds"] = round(time.monotonic() - start, 2)
    result["budget"] = asdict(budget)
    return result
