"""The worked example in ``docs/reference/format.rst`` shows the real bytes of a real store.

The page holds a Python script that builds a tiny store, ``hexdump -C`` listings of parts of
the file it makes, and tables decoding fields of that file. These tests run the script from
the page, render the same ``hexdump -C`` listings from the file it wrote, and decode the same
fields, so the page cannot drift from what mmkv writes.
"""

from __future__ import annotations

import os
import re
import shlex
import struct
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import mmkv
from mmkv.format import HEADER_SIZE, META_OFFSETS, META_SIZE, RECORD_SIZE, Meta, table_bytes

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "format.rst"
SCRIPT_TIMEOUT = 120

# The struct format of each field type the decoded tables use.
FIELD_TYPES = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "f64": "<d"}


def page_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def code_blocks(text: str, language: str) -> list[list[str]]:
    """The lines of every ``.. code-block:: LANGUAGE`` block of a reST page, dedented."""
    blocks = re.findall(
        rf"^\.\. code-block:: {language}\n\n((?:[ ]{{3}}.*\n|\n)+)", text, flags=re.MULTILINE
    )
    return [textwrap.dedent(block).strip("\n").splitlines() for block in blocks]


@dataclass
class Dump:
    """One ``$ hexdump -C ...`` listing on the page: the range it shows and its lines."""

    path: str
    start: int
    length: int | None
    lines: list[str]


def dumps_on_page(text: str) -> list[Dump]:
    """Every text block of the page that starts with a ``hexdump -C`` command."""
    found = []
    for lines in code_blocks(text, "text"):
        if not lines or not lines[0].startswith("$ hexdump "):
            continue
        args = shlex.split(lines[0][2:])[1:]
        assert "-C" in args, f"only canonical (-C) dumps are checked: {lines[0]}"
        args.remove("-C")
        start, length = 0, None
        while args[0].startswith("-"):
            option, value = args.pop(0), args.pop(0)
            if option == "-s":
                start = int(value, 0)
            elif option == "-n":
                length = int(value, 0)
            else:
                raise AssertionError(f"unexpected hexdump option {option} in {lines[0]}")
        (path,) = args
        found.append(Dump(path, start, length, lines[1:]))
    return found


def hexdump_c(data: bytes, start: int, length: int | None) -> list[str]:
    """What ``hexdump -C -s START -n LENGTH`` prints for ``data``, line by line.

    Sixteen bytes a line; a line equal to the one before is shown once as ``*``; the last
    line is the offset just past the range.
    """
    end = len(data) if length is None else min(len(data), start + length)
    out: list[str] = []
    previous: bytes | None = None
    squeezing = False
    for offset in range(start, end, 16):
        chunk = data[offset : min(offset + 16, end)]
        if chunk == previous and len(chunk) == 16:
            if not squeezing:
                out.append("*")
                squeezing = True
            continue
        squeezing = False
        previous = chunk
        hexes = [f"{b:02x}" for b in chunk]
        left = " ".join(hexes[:8])
        right = " ".join(hexes[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        out.append(f"{offset:08x}  {left:<23}  {right:<23}  |{text}|")
    out.append(f"{end:08x}")
    return out


@dataclass
class Field:
    """One row of a decoded-fields table: where, what type, what the page says it holds."""

    offset: int
    type: str
    name: str
    literal: str


def decoded_fields(text: str) -> list[Field]:
    """The rows of every ``list-table`` with ``:class: worked-example`` on the page."""
    fields = []
    for table in re.findall(
        r"^\.\. list-table::.*\n((?:[ ]{3}.*\n|\n)+)", text, flags=re.MULTILINE
    ):
        if ":class: worked-example" not in table:
            continue
        rows = re.split(r"^[ ]{3}\* - ", table, flags=re.MULTILINE)[2:]  # options, header
        for row in rows:
            cells = [" ".join(c.split()) for c in re.split(r"\n[ ]{5}- ", row)]
            assert len(cells) == 4, f"a decoded-fields row needs 4 cells: {cells}"
            literals = [re.match(r"``(.+?)``", cell) for cell in (cells[0], cells[1], cells[3])]
            assert all(literals), f"offset, type and value must start with a literal: {cells}"
            offset, ftype, value = (m.group(1) for m in literals if m is not None)
            fields.append(Field(int(offset, 16), ftype, cells[2], value))
    return fields


def expected_value(field: Field) -> bytes:
    """The bytes the page says the field holds."""
    if field.type.startswith("bytes["):
        size = int(field.type[6:-1])
        value = bytes.fromhex(field.literal)
        assert len(value) == size, f"{field.name}: {field.literal} is not {size} bytes"
        return value
    fmt = FIELD_TYPES[field.type]
    if field.type == "f64":
        return struct.pack(fmt, float(field.literal))
    return struct.pack(fmt, int(field.literal, 0))


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """The store file the page's script makes: its name and its bytes."""
    text = page_text()
    scripts = code_blocks(text, "python")
    assert len(scripts) == 1, "the format page should hold exactly one Python script"
    workdir = tmp_path_factory.mktemp("format-example")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(scripts[0])],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (name,) = {dump.path for dump in dumps_on_page(text)}
    return name, (workdir / name).read_bytes()


def test_every_hexdump_on_the_page_is_what_hexdump_prints_for_the_example_file(
    example: tuple[str, bytes],
) -> None:
    """Each ``hexdump -C`` listing matches, line for line, a dump of the file the script made."""
    _, data = example
    dumps = dumps_on_page(page_text())
    assert len(dumps) >= 3, "the worked example lost its dumps"
    for dump in dumps:
        assert dump.lines == hexdump_c(data, dump.start, dump.length), (
            f"the dump of {dump.start:#x}+{dump.length} on the page differs from the file"
        )


def test_the_dumps_show_every_byte_of_the_example_that_is_not_zero(
    example: tuple[str, bytes],
) -> None:
    """Outside the dumped ranges the example file holds only zeros, as the page says."""
    _, data = example
    shown = bytearray(len(data))
    for dump in dumps_on_page(page_text()):
        end = len(data) if dump.length is None else dump.start + dump.length
        shown[dump.start : end] = b"\1" * (end - dump.start)
    hidden = [offset for offset, byte in enumerate(data) if byte and not shown[offset]]
    assert not hidden, f"non-zero bytes not shown on the page, first at {hidden[0]:#x}"


def test_the_page_states_the_example_file_size(example: tuple[str, bytes]) -> None:
    """The size the page gives for the example file is the size of the file."""
    _, data = example
    match = re.search(r"The file is (\d+) bytes", page_text())
    assert match is not None, "the page no longer states the file size"
    assert int(match.group(1)) == len(data)


def test_the_dumps_cover_the_header_both_metas_the_slot_and_the_record(
    example: tuple[str, bytes],
) -> None:
    """The listings include the preamble, both meta slots, the key's slot and its record."""
    _, data = example
    meta = Meta.decode(data[META_OFFSETS[0] : META_OFFSETS[0] + META_SIZE])
    assert meta is not None and meta.gen == 2 and meta.key_count == 1
    slots_start = meta.index_offset + RECORD_SIZE
    slots_end = meta.index_offset + table_bytes(meta.index_capacity)
    used_slots = [
        offset
        for offset in range(slots_start, slots_end, 8)
        if data[offset : offset + 8] != bytes(8)
    ]
    assert len(used_slots) == 1
    wanted = [
        (0, META_OFFSETS[1] + META_SIZE),  # preamble, header words, both meta slots
        (meta.index_offset, meta.index_offset + RECORD_SIZE),  # the TABLE header
        (used_slots[0], used_slots[0] + 8),  # the slot naming the key
        (meta.commit_start, meta.log_end),  # the record
    ]
    ranges = [
        (d.start, len(data) if d.length is None else d.start + d.length)
        for d in dumps_on_page(page_text())
    ]
    for start, end in wanted:
        assert any(a <= start and end <= b for a, b in ranges), (
            f"no dump shows bytes {start:#x}..{end:#x}"
        )


def test_every_decoded_field_on_the_page_holds_the_value_the_page_gives(
    example: tuple[str, bytes],
) -> None:
    """Each row of the decoded-fields tables matches the bytes at its offset in the file."""
    _, data = example
    fields = decoded_fields(page_text())
    assert len(fields) >= 40, "the decoded-fields tables lost rows"
    for field in fields:
        value = expected_value(field)
        actual = data[field.offset : field.offset + len(value)]
        assert actual == value, (
            f"{field.name} at {field.offset:#x}: the page says {field.literal}, "
            f"the file holds {actual.hex(' ')}"
        )


def test_the_example_file_is_a_sound_store_holding_one_key(
    example: tuple[str, bytes], tmp_path: Path
) -> None:
    """mmkv opens the example file, verifies it, and reads back the one key it wrote."""
    name, data = example
    path = tmp_path / name
    path.write_bytes(data)
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        assert dict(db.items()) == {"a": b"hi"}
        assert db.generation == 2
    assert data[:8] == b"\x89mmkvpy\n" and len(data) > HEADER_SIZE
