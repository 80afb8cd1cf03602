"""Fixtures of the benchmark suite: peers that skip with a reason, preloaded stores copied from
templates built once per session, and the timing function that records ops/s."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .peers import PEERS, Handle, backend_name, open_peer
from .workloads import VALUE_SIZE, fill


def require(
    name: str,
    *,
    shared: bool = False,
    durable: bool = False,
    on_disk: bool = False,
    compactable: bool = False,
) -> type[Handle]:
    """The adapter of peer ``name``; skips the benchmark, saying why, when it cannot run."""
    cls = PEERS[name]
    if cls.module == "mmkv":
        try:
            import mmkv
        except ImportError as error:
            pytest.skip(f"mmkv is not importable ({error}): the mmkv peer is skipped")
        if not hasattr(mmkv, "Store"):
            pytest.skip("mmkv has no Store yet (the engine has not landed): mmkv peer skipped")
    elif cls.module is not None:
        pytest.importorskip(
            cls.module, reason=f"{cls.module} is not installed: the {name} peer is skipped"
        )
    if shared and cls.not_shared:
        pytest.skip(f"{name}: {cls.not_shared}")
    if durable and cls.not_durable:
        pytest.skip(f"{name}: {cls.not_durable}")
    if on_disk and cls.in_memory:
        pytest.skip(f"{name}: nothing is stored on disk, so there is nothing to open or compact")
    if compactable and cls.not_compactable:
        pytest.skip(f"{name}: {cls.not_compactable}")
    return cls


class Stores:
    """Creates stores under one directory; preloaded ones are copies of per-session templates.

    Loading 100 000 keys into the slowest peers takes seconds, so each (storage, size) is
    loaded once, closed, and copied (a directory copy) for every benchmark that needs it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.templates: dict[tuple[str, int, int], Path] = {}
        self.serial = 0

    def new_directory(self, label: str) -> str:
        """A path that does not exist yet, for a new store."""
        self.serial += 1
        return str(self.root / f"{label}-{self.serial}")

    def _template(self, cls: type[Handle], n_keys: int, value_size: int) -> Path:
        spec = (cls.storage, n_keys, value_size)
        if spec not in self.templates:
            directory = self.root / "templates" / f"{cls.storage}-{n_keys}-{value_size}"
            handle = open_peer(cls.name, str(directory))
            try:
                fill(handle, n_keys, value_size=value_size)
            finally:
                handle.close()
            self.templates[spec] = directory
        return self.templates[spec]

    def copy(self, name: str, n_keys: int, *, value_size: int = VALUE_SIZE) -> str:
        """A fresh directory holding a closed store of peer ``name`` with keys 0 .. n_keys-1."""
        cls = PEERS[name]
        directory = self.new_directory(name)
        shutil.copytree(self._template(cls, n_keys, value_size), directory)
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


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """The session's store factory (its directory is removed at the end of the session)."""
    root = tmp_path_factory.mktemp("stores")
    yield Stores(root)
    shutil.rmtree(root, ignore_errors=True)


def measure(
    benchmark: Any,
    run: Callable[[], object],
    *,
    ops: int,
    rounds: int,
    setup: Callable[[], None] | None = None,
    units: Mapping[str, float] | None = None,
) -> None:
    """Time ``rounds`` calls of ``run``, each doing ``ops`` operations after an untimed
    ``setup``, and record the rates in ``extra_info["rates"]``.

    ``units`` maps a rate's label to the amount of work of one round (default
    ``{"ops/s": ops}``); each rate is that amount divided by the median round time.
    """
    benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info["ops_per_round"] = ops
    median = median_seconds(benchmark)
    if median:
        rates = benchmark.extra_info.setdefault("rates", {})
        for label, amount in (units or {"ops/s": ops}).items():
            rates[label] = amount / median


def median_seconds(benchmark: Any) -> float | None:
    """The median round time, or None when timing is disabled (``--benchmark-disable``)."""
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats is not None and stats.stats.data else None


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    """Record what the report needs to state the method: CPU count and peer versions."""
    versions: dict[str, str] = {"sqlite": __import__("sqlite3").sqlite_version}
    for module in ("mmkv", "lmdb", "diskcache", "semidbm", "msgpack", "pytest_benchmark"):
        try:
            imported = __import__(module)
        except ImportError:
            continue
        version = getattr(imported, "__version__", None) or getattr(imported, "version", None)
        if version is not None:
            versions[module] = (
                ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
            )
    versions["dbm"] = backend_name()
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["peer_versions"] = versions
    machine_info["platform"] = platform.platform()
