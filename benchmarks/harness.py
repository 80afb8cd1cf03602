"""Stores built once per session, the rounds of a workload, and running them in a child process.

A workload is a function ``make(stores, peer, **params) -> Rounds``: it prepares the store and
returns what one timed round runs, the untimed setup before each round, and the checks made
after the last one. Every peer runs it in a child process started for the benchmark (``spawn``),
which builds the workload with the same code and times each round itself, with
``time.perf_counter`` around the same call; the rates come from those times. The pure-Python
and the old mmkv need a process of their own anyway (one process holds one mmkv), and a fresh
process for every peer keeps the benchmark's own heap out of everyone's garbage collections (a
transaction of 100 000 puts was up to 30 % slower inside the pytest process).
``MMKV_BENCH_IN_CHILD=0`` runs the peers that can share the benchmark's process in it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import workloads
from .peers import PEERS, Handle, loaded_mmkv, open_peer
from .workloads import VALUE_SIZE, Job, Workers, fill

#: ``MMKV_BENCH_IN_CHILD=0`` runs the rounds of the peers that can share the benchmark's process
#: in it (default: every peer in a child process of its own).
IN_CHILD = os.environ.get("MMKV_BENCH_IN_CHILD", "1") not in ("", "0")

Template = tuple[str, int, int]  # (storage, keys, value size)


class Stores:
    """Creates stores under one directory; preloaded ones are copies of per-session templates.

    Loading 100 000 keys into the slowest peers takes seconds, so each (storage, size) is
    loaded once, closed, and copied (a directory copy) for every benchmark that needs it. The
    templates of a peer that needs a process of its own are built in one
    (:func:`in_peer_process`). A child process gets the parent's templates (:meth:`state`) and
    hands back those it built.
    """

    def __init__(
        self, root: Path, templates: dict[Template, str] | None = None, *, prefix: str = ""
    ) -> None:
        self.root = Path(root)
        self.templates: dict[Template, str] = dict(templates or {})
        self.prefix = prefix
        self.serial = 0

    def state(self) -> dict[str, Any]:
        """What a child process needs to make a :class:`Stores` of its own (:meth:`child`)."""
        return {"root": str(self.root), "templates": dict(self.templates)}

    @classmethod
    def child(cls, state: dict[str, Any]) -> Stores:
        """The stores of a child process: the parent's templates, its own directory names."""
        return cls(Path(state["root"]), state["templates"], prefix=f"c{os.getpid()}-")

    def adopt(self, templates: Mapping[Template, str]) -> None:
        """Take over the templates a child process built."""
        for spec, directory in templates.items():
            self.templates.setdefault(spec, directory)

    def new_directory(self, label: str) -> str:
        """A path that does not exist yet, for a new store."""
        self.serial += 1
        return str(self.root / f"{label}-{self.prefix}{self.serial}")

    def template(self, name: str, n_keys: int, value_size: int = VALUE_SIZE) -> str:
        """The directory of a closed store of peer ``name``'s storage holding keys
        ``0 .. n_keys-1`` at version 0 (built on first use; never modified)."""
        cls = PEERS[name]
        spec = (cls.storage, n_keys, value_size)
        if spec not in self.templates:
            directory = self.root / "templates" / f"{cls.storage}-{n_keys}-{value_size}"
            if directory.exists():  # a child built it but died before handing it back
                shutil.rmtree(directory)
            in_peer_process(name, build_store, name, str(directory), n_keys, value_size)
            self.templates[spec] = str(directory)
        return self.templates[spec]

    def copy(self, name: str, n_keys: int, *, value_size: int = VALUE_SIZE) -> str:
        """A fresh directory holding a closed store of peer ``name`` with keys 0 .. n_keys-1."""
        template = self.template(name, n_keys, value_size)
        directory = self.new_directory(name)
        shutil.copytree(template, directory)
        return directory

    def preloaded(
        self, name: str, n_keys: int, *, value_size: int = VALUE_SIZE, **options: Any
    ) -> Handle:
        """A store of peer ``name`` holding keys ``0 .. n_keys-1``, open with ``options``."""
        if PEERS[name].in_memory:
            handle = open_peer(name, self.new_directory(name), **options)
            fill(handle, n_keys, value_size=value_size)
            return handle
        return open_peer(name, self.copy(name, n_keys, value_size=value_size), **options)

    def remove(self, directory: str) -> None:
        """Delete a store's directory."""
        shutil.rmtree(directory, ignore_errors=True)


class CallJob(Job):
    """Calls ``function(*args)`` in a child process, once per round, and answers its result."""

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.function, self.args = function, args

    def run(self) -> Any:
        return self.function(*self.args)

    def close(self) -> None:
        pass


def in_peer_process(peer: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, called in this process, or in a child process of its own when
    ``peer`` needs one and this is the benchmark's process (a worker process runs one peer
    only, so it calls ``function`` itself); ``function`` must then be a module-level
    function."""
    if PEERS[peer].child_only and not workloads.in_worker():
        with Workers([(CallJob, {"function": function, "args": args})]) as workers:
            return workers.run()[0]
    return function(*args)


def build_store(
    peer: str,
    directory: str,
    n_keys: int,
    value_size: int = VALUE_SIZE,
    chunk: int = 10_000,
    options: dict[str, Any] | None = None,
) -> None:
    """Create a store of ``peer`` in ``directory`` holding keys ``0 .. n_keys-1`` (``chunk``
    keys per transaction), opened with ``options``, and close it."""
    handle = open_peer(peer, directory, **(options or {}))
    try:
        fill(handle, n_keys, value_size=value_size, chunk=chunk)
    finally:
        handle.close()


@dataclass
class Rounds:
    """What a workload times: ``rounds`` calls of ``run``, each doing ``ops`` operations after
    an untimed ``setup``; then ``check`` (untimed; it may return more ``extra_info``), then
    ``close``. ``units`` maps a rate's label to the work of one round (default ops/s)."""

    run: Callable[[], object]
    ops: int
    rounds: int
    setup: Callable[[], None] | None = None
    check: Callable[[], dict[str, Any] | None] | None = None
    close: Callable[[], None] | None = None
    units: Mapping[str, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> dict[str, Any]:
        """Run the checks; the extra information of the benchmark."""
        info = dict(self.info)
        if self.check is not None:
            info.update(self.check() or {})
        return info

    def rates(self, median: float) -> dict[str, float]:
        """Each unit's amount over the median round time."""
        return {label: amount / median for label, amount in (self.units_or_ops()).items()}

    def units_or_ops(self) -> Mapping[str, float]:
        """The units, ops/s by default."""
        return self.units or {"ops/s": self.ops}


class RoundsJob(Job):
    """A workload's rounds in a child process. Commands: ``setup``, ``go`` (one round, timed
    here: answers its seconds), ``finish`` (checks; answers the extra information and the
    templates this process built)."""

    def __init__(
        self, make: Callable[..., Rounds], peer: str, stores: dict[str, Any], params: Any
    ) -> None:
        self.stores = Stores.child(stores)
        self.known = dict(self.stores.templates)
        self.rounds = make(self.stores, peer, **params)

    def describe(self) -> dict[str, Any]:
        rounds = self.rounds
        return {
            "ops": rounds.ops,
            "rounds": rounds.rounds,
            "units": dict(rounds.units_or_ops()),
            "setup": rounds.setup is not None,
        }

    def call(self, command: str) -> Any:
        if command == "setup":
            assert self.rounds.setup is not None
            self.rounds.setup()
            return None
        if command == "go":
            start = time.perf_counter()
            self.rounds.run()
            return time.perf_counter() - start
        if command == "finish":
            built = {k: v for k, v in self.stores.templates.items() if k not in self.known}
            info = self.rounds.finish()
            info["mmkv_loaded"] = loaded_mmkv()
            return {"info": info, "templates": built}
        raise ValueError(f"unknown command {command!r}")

    def close(self) -> None:
        if self.rounds.close is not None:
            self.rounds.close()


def run_rounds(
    benchmark: Any, stores: Stores, peer: str, make: Callable[..., Rounds], **params: Any
) -> None:
    """Time the rounds of workload ``make`` for ``peer`` and record its rates (ops per round
    over the median round time) in ``extra_info["rates"]``, in this process or in a child."""
    info = benchmark.extra_info
    if PEERS[peer].child_only or IN_CHILD:
        job = {"make": make, "peer": peer, "stores": stores.state(), "params": params}
        with Workers([(RoundsJob, job)]) as workers:
            spec = workers.ready[0]
            seconds: list[float] = []

            def setup() -> None:
                workers.call(0, "setup")

            def run() -> None:
                seconds.append(workers.call(0, "go"))

            benchmark.pedantic(
                run,
                setup=setup if spec["setup"] else None,
                rounds=spec["rounds"],
                iterations=1,
                warmup_rounds=0,
            )
            finished = workers.call(0, "finish")
        stores.adopt(finished["templates"])
        info.update(finished["info"])
        info["timed_in"] = "child process"
        info["child_seconds"] = seconds
        info["ops_per_round"] = spec["ops"]
        median = statistics.median(seconds)
        info["rates"] = {label: amount / median for label, amount in spec["units"].items()}
        return
    rounds = make(stores, peer, **params)
    try:
        benchmark.pedantic(
            rounds.run, setup=rounds.setup, rounds=rounds.rounds, iterations=1, warmup_rounds=0
        )
        info.update(rounds.finish())
        info["timed_in"] = "benchmark process"
        if peer.startswith("mmkv"):
            info["mmkv_loaded"] = loaded_mmkv()
        info["ops_per_round"] = rounds.ops
        median = median_seconds(benchmark)
        if median:
            info["rates"] = rounds.rates(median)
    finally:
        if rounds.close is not None:
            rounds.close()


def median_seconds(benchmark: Any) -> float | None:
    """The median round time, or None when timing is disabled (``--benchmark-disable``)."""
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats is not None and stats.stats.data else None
