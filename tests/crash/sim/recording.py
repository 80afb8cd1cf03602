"""A recording: a workload run once under the recorder, with its model; and :func:`joined`,
which makes one recording of a writer that died and the writer that came after it."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from .engine import Effect, Snapshot

#: A store's contents, ``{key: value}``; None when there is no store at the path.
State = dict[Any, Any] | None


@dataclass
class Recording:
    """A workload run once under the recorder: the directory before, the effects, the model."""

    workload: str
    durability: str
    target: str  # the name of the store the oracle reads (the store, or recover's output)
    bounded: bool  # max_bytes is set: a sentinel put may evict
    snapshot: Snapshot
    effects: list[Effect]
    acks: list[int]  # acks[i]: effects recorded when the (i+1)-th operation returned
    labels: list[str]
    models: list[State]  # models[i]: the contents after i acknowledged operations
    problems: list[str] = field(default_factory=list)  # found while recording
    durable: list[int] = field(default_factory=list)  # i: model[i] is on disk once acknowledged
    dead_at: int = 0  # joined recordings: the first writer died after this many effects
    # Beyond the models, states a crash may also leave while ``acked(k)`` is the key: a
    # commit whose writer died unacknowledged may surface after a power loss until the next
    # writer's first acknowledged write (see :func:`joined`); a reboot's recovery may settle on
    # any state the power loss allowed until its open returns.
    extra: dict[int, list[State]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.workload}/{self.durability}"

    def acked(self, k: int) -> int:
        """Operations acknowledged at or before the first ``k`` effects."""
        return bisect.bisect_right(self.acks, k)


def joined(
    first: Recording, k: int, second: Recording, names: dict[str, int], *, surface: bool
) -> Recording:
    """One recording of ``first`` dying after ``k`` effects and ``second`` then running on
    what it left (``names``: the directory at ``k``), so that a power loss can fall anywhere
    in the second writer's recording with the first writer's unflushed pages still pending.
    ``surface``: the dead commit may still surface (after a power loss, until the second
    writer's first acknowledged write; never for a reader)."""
    fids = {fid: names[name] for name, fid in second.snapshot.names.items()}
    used = set(first.snapshot.files) | {e.fid for e in first.effects}
    fresh = itertools.count(max(used) + 1)
    effects = list(first.effects[:k])
    for e in second.effects:
        if e.fid >= 0 and e.fid not in fids:
            fids[e.fid] = next(fresh)
        effects.append(dataclasses.replace(e, fid=fids[e.fid]) if e.fid >= 0 else e)
    j = first.acked(k)
    dead = first.models[j + 1 : j + 2] if surface else []
    return Recording(
        workload=f"{first.workload} died at k={k}; then {second.workload}",
        durability=first.durability,
        target=first.target,
        bounded=first.bounded,
        snapshot=first.snapshot,
        effects=effects,
        acks=first.acks[:j] + [k + a for a in second.acks],
        labels=first.labels[:j] + second.labels,
        models=first.models[: j + 1] + second.models[1:],
        durable=[i for i in first.durable if i <= j] + [j + i for i in second.durable],
        extra={j: dead, j + 1: dead} if second.labels[:1] == ["open"] else {j: dead},
        dead_at=k,
    )
