"""A writer that keeps an invariant, for copies taken while it runs, and the model to check them.

Run as a script, it moves amounts between ``ACCOUNTS`` accounts of a store, one transaction per
move, so the balances always sum to ``TOTAL``; after each commit it appends the commit's
generation and the move to a log. :func:`state_at` replays that log, so a copy that claims to be
generation ``G`` can be compared with what the store held at ``G``, key for key.

    python transfers.py STORE LOG STOP_FILE
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ACCOUNTS = 20
TOTAL = 100 * ACCOUNTS
SCRIPT = Path(__file__).resolve()


def account(i: int) -> str:
    return f"acct:{i:02d}"


def seed_store(path: Path, padding: int = 0, padding_bytes: int = 2048) -> dict[str | bytes, Any]:
    """A store with the accounts at 100 each and ``padding`` bytes keys that never change
    (they make the copy take long enough to overlap many commits); the state written."""
    import mmkv

    state: dict[str | bytes, Any] = {account(i): 100 for i in range(ACCOUNTS)}
    state.update({f"pad:{i:05d}".encode(): os.urandom(padding_bytes) for i in range(padding)})
    with mmkv.open(path, auto_compact=False) as db:
        db.update(state)
    return state


def child_env() -> dict[str, str]:
    """The environment for child processes: the mmkv this test process imported."""
    import mmkv

    env = dict(os.environ)
    root = str(Path(mmkv.__path__[0]).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def start(store: Path, log: Path, stop: Path) -> subprocess.Popen[bytes]:
    """Start the writer; returns once it has committed its first move."""
    command = [sys.executable, str(SCRIPT), str(store), str(log), str(stop)]
    child = subprocess.Popen(command, env=child_env())
    deadline = time.monotonic() + 30
    while not (log.exists() and log.stat().st_size > 0):
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the writer did not start")
        time.sleep(0.01)
    return child


def stop_writer(child: subprocess.Popen[bytes], stop: Path) -> None:
    stop.touch()
    assert child.wait(timeout=30) == 0


def moves(log: Path) -> list[tuple[int, float, int, int, int]]:
    """``(generation, time, from, to, amount)`` of every committed move, in commit order."""
    out = []
    for line in log.read_text().splitlines():
        gen, at, src, dst, amount = line.split()
        out.append((int(gen), float(at), int(src), int(dst), int(amount)))
    return out


def state_at(initial: dict[str | bytes, Any], log: Path, generation: int) -> dict[str | bytes, Any]:
    """What the store held at ``generation``: the initial state and every move up to it."""
    state = dict(initial)
    for gen, _, src, dst, amount in moves(log):
        if gen <= generation:
            state[account(src)] -= amount
            state[account(dst)] += amount
    return state


def main(store: str, log: str, stop: str) -> None:
    import mmkv

    rng = random.Random(os.getpid())
    with mmkv.open(store, auto_compact=False) as db, open(log, "a") as out:
        while not os.path.exists(stop):
            src, dst = rng.sample(range(ACCOUNTS), 2)
            amount = rng.randint(1, 10)
            with db.transaction():
                db[account(src)] -= amount
                db[account(dst)] += amount
            # The only writer: the generation now is the one this transaction committed.
            out.write(f"{db.generation} {time.time()} {src} {dst} {amount}\n")
            out.flush()


if __name__ == "__main__":
    main(*sys.argv[1:4])
