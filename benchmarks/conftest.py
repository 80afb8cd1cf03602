"""Fixtures of the benchmark suite: peers that skip with a reason, preloaded stores copied from
templates built once per session (:class:`harness.Stores`), and the timing of multi-process
workloads (the single-process ones use :func:`harness.run_rounds`)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .harness import Stores, median_seconds, run_rounds
from .peers import BASELINE, PEERS, Handle, backend_name

__all__ = ["Stores", "measure", "require", "run_rounds"]


def require(
    name: str,
    *,
    shared: bool = False,
    durable: bool = False,
    on_disk: bool = False,
    compactable: bool = False,
    api: str | None = None,
) -> type[Handle]:
    """The adapter of peer ``name``; skips the benchmark, saying why, when it cannot run
    (``api``: the atomic operation the workload needs)."""
    cls = PEERS[name]
    if cls.module == "mmkv":
        try:
            import mmkv
        except ImportError as error:
            pytest.skip(f"mmkv is not importable ({error}): the {name} peer is skipped")
        core = getattr(cls, "core", "compiled")
        if core == "compiled" and getattr(mmkv, "CORE", None) != "compiled":
            pytest.skip(f"{name}: this process runs mmkv's {getattr(mmkv, 'CORE', '?')} core")
        if core == "0.1":
            if BASELINE is None:
                pytest.skip(f"{name}: MMKV_BENCH_BASELINE names no checkout of mmkv 0.1")
            if not os.path.exists(os.path.join(BASELINE, "mmkv", "__init__.py")):
                pytest.skip(f"{name}: no mmkv package under MMKV_BENCH_BASELINE={BASELINE}")
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
    if api is not None and api in cls.lacks:
        pytest.skip(f"{name}: {cls.lacks[api]}")
    return cls


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
    machine_info["mmkv_core"] = getattr(sys.modules.get("mmkv"), "CORE", None)
    machine_info["mmkv_baseline"] = _git_describe(BASELINE) if BASELINE else None
    machine_info["mmkv_tree"] = _git_describe(str(Path(__file__).resolve().parent.parent))
    machine_info["loadavg_start"] = _LOAD_AT_START
    machine_info["loadavg_end"] = list(os.getloadavg())


_LOAD_AT_START = list(os.getloadavg())


def _git_describe(directory: str) -> dict[str, Any] | None:
    """The commit checked out in ``directory`` and whether its tree has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", directory, "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        return None
    modified = [line.strip() for line in status.splitlines() if line.strip()]
    return {"path": directory, "commit": head or None, "modified": modified}


@pytest.fixture(autouse=True)
def _record_load(benchmark: Any) -> Iterator[None]:
    """Record the load average (1, 5, 15 min) before and after every benchmark: a row whose
    load was high was measured on a disturbed machine."""
    before = list(os.getloadavg())
    yield
    benchmark.extra_info["loadavg_before"] = before
    benchmark.extra_info["loadavg_after"] = list(os.getloadavg())
