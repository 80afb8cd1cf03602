"""The compiled core (``mmkv._core``) against the pure-Python reference it speeds up.

Each compiled function either gives exactly the reference's answer or hands the case back
(returns None) for the reference to answer, so these tests hold every compiled answer to the
reference's over normal stores (where the compiled core must answer every case itself, or the
comparison would prove nothing), damaged files (where it must never crash, read outside the
mapping or give an answer the reference would not), and whole files written by each core.
"""

from __future__ import annotations

import mmap
import os
import random
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import format as fmt
from mmkv.core import compiled
from mmkv.errors import CorruptionError
from mmkv.mmfile import Mapping
from mmkv.txn import probe as reference_probe_fn
from mmkv.view import View, find
from mmkv.view import read as view_read

pytestmark = pytest.mark.skipif(
    compiled is None, reason="the compiled core is not built, or MMKV_PURE_PYTHON=1"
)


def reference_view(view: View) -> View:
    """The same state read through a mapping without the compiled core: the reference path."""
    plain = Mapping.__new__(Mapping)
    plain.mm = view.mm
    plain.size = view.limit
    plain.words = memoryview(view.mm).cast("Q")
    plain.core = None
    return View(view.file, plain, view.meta, view.slot, view.geom)


def reference_read(view: View, kt: int, kb: bytes, now: float | None) -> Any:
    """("value", answer) or ("absent",) or ("corrupt",) from the pure-Python read."""
    try:
        answer = view_read(reference_view(view), kt, kb, now)
    except CorruptionError:
        return ("corrupt",)
    return ("absent",) if answer is None else ("value", answer)


def compiled_read(view: View, kt: int, kb: bytes, now: float | None) -> Any:
    base, mask, shift = view.geom
    answer = view.core.read(base, mask, shift, view.log_end, kt, kb, now)
    if answer is None:
        return ("handed back",)
    return ("absent",) if answer is False else ("value", answer)


def workload(db: mmkv.Store, rng: random.Random, n: int) -> list[tuple[int, bytes]]:
    """Puts (some with a ttl, some already expired), overwrites, deletes and transactions; the
    keys written, as (key type, key bytes)."""
    keys: list[str | bytes] = [f"k{i}" for i in range(300)] + [b"b%d" % i for i in range(60)]
    for _ in range(n):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.1:
            db.pop(key, None)
        elif roll < 0.15:
            with db.transaction():
                for _ in range(rng.randrange(1, 20)):
                    db.put(rng.choice(keys), rng.randbytes(rng.randrange(0, 300)))
        else:
            ttl = rng.choice([None, None, None, 3600.0])
            value: Any = rng.choice(
                [rng.randbytes(rng.randrange(0, 2000)), "text", {"n": rng.random()}, [1, 2]]
            )
            db.put(key, value, ttl=ttl)
    return [fmt_key(k) for k in keys] + [(1, b"never"), (0, b"never"), (1, b"")]


def fmt_key(key: str | bytes) -> tuple[int, bytes]:
    return (fmt.KEY_STR, key.encode()) if isinstance(key, str) else (fmt.KEY_BYTES, key)


def test_crc32_is_zlib_crc32_for_every_length_alignment_and_start() -> None:
    """Table and carry-less-multiplication code paths, around every boundary they have."""
    rng = random.Random(3)
    data = rng.randbytes(5000)
    for n in [*range(0, 200), 255, 256, 257, 511, 512, 1023, 4096, 4999]:
        for at in (0, 1, 3, 7):
            start = rng.randrange(2**32)
            chunk = data[at : at + n]
            assert compiled.crc32(chunk, start) == zlib.crc32(chunk, start), (n, at)


def test_encode_record_and_chain_step_make_the_reference_bytes() -> None:
    """encode_record is format.encode_record (and returns its crc); chain_step is format's."""
    rng = random.Random(4)
    for _ in range(2000):
        kind = rng.choice(fmt.KINDS)
        kt, vt = rng.randrange(2), rng.randrange(3)
        kb, vb = rng.randbytes(rng.randrange(0, 40)), rng.randbytes(rng.randrange(0, 300))
        gen, prev, h = rng.randrange(2**40), rng.randrange(2**40) * 8, rng.randrange(2**32)
        exp = rng.choice([0.0, rng.random() * 2e9])
        record, crc = compiled.encode_record(kind, kt, vt, gen, prev, h, kb, vb, exp)
        assert record == fmt.encode_record(kind, kt, kb, h, vt, vb, gen, prev, exp)
        assert crc == int.from_bytes(record[:4], "little")
        chain, size = rng.randrange(2**32), rng.randrange(2**40)
        assert compiled.chain_step(chain, crc, size) == fmt.chain_step(chain, crc, size)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reads_answer_as_the_reference_at_every_kept_state(tmp_path: Path, seed: int) -> None:
    """Views kept at several states (older ones see newer records past their log_end and walk
    back): for every key, present, deleted, expired or never written, the compiled read gives
    the reference's answer. Through the newest view it answers every case itself; an older
    view's mapping may end before a newer record, which it hands back."""
    rng = random.Random(seed)
    now_values = [1.0, 9e18, None]  # None: the clock (3600 s ttls are live there)
    with mmkv.open(tmp_path / "s.mmkv", auto_compact=False, cache_bytes=0) as db:
        keys = workload(db, rng, 200)
        views = []
        for _ in range(5):
            views.append(db._s.current())
            workload(db, rng, 150)
        views.append(db._s.current())
        handed_back = 0
        answered = 0
        for view in views:
            for kt, kb in keys:
                for now in now_values:
                    mine = compiled_read(view, kt, kb, now)
                    theirs = reference_read(view, kt, kb, now)
                    if mine == ("handed back",):
                        # Only because the key's newest record lies past this view's mapping.
                        _, off, _ = find(reference_view(view), kt, kb, zlib.crc32(kb, kt))
                        assert off + fmt.RECORD_SIZE + len(kb) > view.limit, (kt, kb, off)
                        assert view is not views[-1], (kt, kb, now)
                        handed_back += 1
                        continue
                    answered += 1
                    assert mine == theirs, (view, kt, kb, now)
        assert answered > handed_back, (answered, handed_back)


def test_a_read_without_now_judges_expiry_at_the_clock(tmp_path: Path) -> None:
    """``now=None`` (what a get passes): the compiled core reads the clock for a record with
    an expiry, and answers as the reference does before and after that expiry."""
    with mmkv.open(tmp_path / "s.mmkv", cache_bytes=0) as db:
        db.put("soon", b"v", ttl=0.5)
        db.put("later", b"w", ttl=3600)
        db["never"] = b"x"
        view = db._s.current()
        keys = [(fmt.KEY_STR, k) for k in (b"soon", b"later", b"never")]
        before = [compiled_read(view, kt, kb, None) for kt, kb in keys]
        assert [answer[0] for answer in before] == ["value", "value", "value"]
        time.sleep(0.6)
        after = [compiled_read(view, kt, kb, None) for kt, kb in keys]
        assert after == [("absent",), before[1], before[2]]
        assert after == [reference_read(view, kt, kb, None) for kt, kb in keys]


def test_the_writer_probe_answers_as_the_reference(tmp_path: Path) -> None:
    """Map.probe is txn.probe for a writer: slot, offset, live size, has-ttl."""
    rng = random.Random(9)
    with mmkv.open(tmp_path / "s.mmkv", auto_compact=False) as db:
        keys = workload(db, rng, 400)
        view = db._s.current()
        plain = reference_view(view)
        base, mask, shift = view.geom
        for kt, kb in keys:
            h = zlib.crc32(kb, kt)
            mine = view.core.probe(base, mask, shift, view.log_end, kt, kb, h)
            assert mine is not None
            assert tuple(mine) == tuple(reference_probe_fn(plain, kt, kb, h))


@pytest.mark.parametrize("seed", range(6))
def test_damaged_files_never_get_an_answer_the_reference_would_not_give(
    tmp_path: Path, seed: int
) -> None:
    """Random bytes flipped in the index and the log: the compiled read never crashes and
    never reads outside the mapping; whenever it answers, the reference answers the same (or
    finds the damage); otherwise it hands the case back."""
    rng = random.Random(seed)
    path = tmp_path / "s.mmkv"
    with mmkv.open(path, auto_compact=False) as db:
        keys = workload(db, rng, 300)
        meta = db._s.current().meta
    data = bytearray(path.read_bytes())
    start, end = fmt.HEADER_SIZE, meta.log_end
    for _ in range(rng.randrange(5, 60)):
        at = rng.randrange(start, end)
        data[at] ^= 1 << rng.randrange(8)
    damaged = tmp_path / "damaged.mmkv"
    damaged.write_bytes(bytes(data))
    with open(damaged, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    core = compiled.Map(mm)
    geom = (meta.index_offset + fmt.RECORD_SIZE) // 8, meta.index_capacity - 1
    shift = 33 - meta.index_capacity.bit_length()
    answered = 0
    for kt, kb in keys + [(1, rng.randbytes(8)) for _ in range(200)]:
        mine = core.read(geom[0], geom[1], shift, meta.log_end, kt, kb, 1.0)
        if mine is None:
            continue
        answered += 1
        # The reference, on the same bytes (its own mapping of the damaged file).
        with mmkv.open(damaged, readonly=True, cache_bytes=0) as ref:
            view = reference_view(ref._s.current())
            try:
                theirs = view_read(view, kt, kb, 1.0)
            except CorruptionError:
                theirs = "corrupt"
        if theirs == "corrupt":
            continue  # the reference found damage the compiled core did not need to look at
        assert (None if mine is False else mine) == theirs, (kt, kb)
    assert answered, "the compiled core answered nothing: the test tests little"
    core.release()
    mm.close()


def test_the_compiled_put_commits_every_put_the_python_fused_path_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fill of new keys, each its own put: the compiled ``put_alone`` makes every put that
    grows neither the index nor the file, up to the load ``mmkv.index.fits`` allows. The
    Python fused path encodes its record with ``mmkv.writer._encode``; it runs only when the
    compiled core hands a put back (growing the file is the Python path's job)."""
    from mmkv import writer

    handed_back: list[bytes] = []
    encode = writer._encode
    assert encode is not None

    def counting(*args: Any) -> Any:
        handed_back.append(args[6])
        return encode(*args)

    monkeypatch.setattr(writer, "_encode", counting)
    path = tmp_path / "s.mmkv"
    grew: list[bytes] = []
    with mmkv.open(path, auto_compact=False) as db:
        capacities = set()
        puts = [(f"key-{i:06d}", b"v" * 40) for i in range(5000)]
        puts += [(f"key-{i:06d}", b"w" * 40) for i in range(0, 5000, 7)]  # overwrites too
        for key, value in puts:
            size = os.path.getsize(path)
            db[key] = value
            if os.path.getsize(path) != size:
                grew.append(key.encode())
            capacities.add(db._s.current().meta.index_capacity)
        meta = db._s.current().meta
        assert len(capacities) >= 3, capacities  # the fill grew the index more than once
        assert 2 * meta.index_used > meta.index_capacity  # and ended past half full
    assert [key for key in handed_back if key not in grew] == []
    assert len(handed_back) < len(puts) // 100, len(handed_back)


def test_both_cores_write_byte_identical_files(tmp_path: Path) -> None:
    """One random workload, run once with each core (a child process with MMKV_PURE_PYTHON=1
    for the reference): the two files are the same bytes, the boot word aside."""
    script = textwrap.dedent(
        """
        import random, sys
        import mmkv, mmkv.codec, mmkv.txn, mmkv.view
        import time
        fixed = lambda: 1_900_000_000.0
        mmkv.codec.time.time = fixed
        rng = random.Random(11)
        keys = [f"k{i}" for i in range(500)] + [b"b%d" % i for i in range(100)]
        bound = 200_000 if sys.argv[2] == "b" else None
        with mmkv.open(sys.argv[1], auto_compact=False, max_bytes=bound) as db:
            for i in range(1500):
                key = rng.choice(keys)
                r = rng.random()
                if r < 0.1:
                    db.pop(key, None)
                elif r < 0.2:
                    with db.transaction():
                        for _ in range(rng.randrange(1, 30)):
                            db[rng.choice(keys)] = rng.randbytes(rng.randrange(0, 500))
                else:
                    db.put(key, rng.randbytes(rng.randrange(0, 3000)), ttl=rng.choice([None, 50.0]))
            print(mmkv.core.NAME)
        """
    )
    outputs = {}
    for name, env in (("compiled", {}), ("python", {"MMKV_PURE_PYTHON": "1"})):
        for bound in ("u", "b"):
            path = tmp_path / f"{name}-{bound}.mmkv"
            done = subprocess.run(
                [sys.executable, "-c", script, str(path), bound],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            assert done.stdout.strip() == name
            data = bytearray(path.read_bytes())
            data[8 * fmt.W_BOOT : 8 * fmt.W_BOOT + 8] = bytes(8)
            outputs[name, bound] = bytes(data)
    for bound in ("u", "b"):
        assert outputs["compiled", bound] == outputs["python", bound]


def test_a_map_refuses_stores_on_a_read_only_mapping_and_indexes_outside_it(
    tmp_path: Path,
) -> None:
    """Map(mm) of an ACCESS_READ map loads words but raises on a store; every index is
    checked against the mapping."""
    path = tmp_path / "f"
    path.write_bytes(bytes(8192))
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    core = compiled.Map(mm)
    assert core[3] == 0 and len(core) == 1024 and core.size == 8192
    with pytest.raises(TypeError):
        core[3] = 5
    with pytest.raises(IndexError):
        core.load(1024)
    core.release()
    with pytest.raises(ValueError):
        core.load(0)
    mm.close()
