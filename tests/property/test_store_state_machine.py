"""A ``RuleBasedStateMachine`` that drives a store and a plain ``dict`` side by side.

After every step the store must hold exactly what the dict holds, pass ``verify()``, and
have a ``generation`` that grew with each commit and stayed put otherwise.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import mmkv
from tests.typed_values import as_stored, typed

Key = str | bytes


# A few fixed keys (including str/bytes twins) make collisions, overwrites and deletes of
# present keys common; the small random ones add variety.
keys = st.sampled_from(["a", b"a", "b", b"b", "", b"", "\u00e9", "\u00e9".encode(), "k" * 1024])
keys = keys | st.text(max_size=3) | st.binary(max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=3) | st.binary(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
) | st.binary(min_size=2000, max_size=5000)
operations = st.lists(
    st.tuples(st.just("put"), keys, values) | st.tuples(st.just("delete"), keys, st.none()),
    min_size=1,
    max_size=6,
)


class Rollback(Exception):
    """Raised inside a transaction block to roll it back."""


class StoreMachine(RuleBasedStateMachine):
    """A store under random operations, checked against a dict model after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="mmkv-machine-"))
        self.path = self.directory / "store.mmkv"
        self.db = mmkv.Store(self.path)
        self.model: dict[Key, Any] = {}
        self.generation = self.db.generation

    def teardown(self) -> None:
        """Close the store and remove its directory."""
        self.db.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def committed(self) -> None:
        """A commit happened: the generation must have grown."""
        generation = self.db.generation
        assert generation > self.generation
        self.generation = generation

    def unchanged(self) -> None:
        """Nothing was committed: the generation must be where it was."""
        assert self.db.generation == self.generation

    def apply(self, ops: list[tuple[str, Key, Any]], model: dict[Key, Any]) -> bool:
        """Apply ``ops`` to the store and to ``model``; return whether any of them wrote."""
        wrote = False
        for op, key, value in ops:
            if op == "put":
                self.db[key] = value
                model[key] = as_stored(value)
                wrote = True
            elif key in model:
                del self.db[key]
                del model[key]
                wrote = True
            else:
                with pytest.raises(KeyError):
                    del self.db[key]
            assert len(self.db) == len(model)
        return wrote

    @rule(key=keys, value=values)
    def put(self, key: Key, value: Any) -> None:
        """``db[key] = value``."""
        self.db[key] = value
        self.model[key] = as_stored(value)
        self.committed()

    @rule(key=keys, value=values)
    def put_with_long_ttl(self, key: Key, value: Any) -> None:
        """``put`` with a ttl far beyond the test's lifetime behaves like a plain write."""
        self.db.put(key, value, ttl=3600)
        self.model[key] = as_stored(value)
        self.committed()

    @rule(key=keys)
    def delete(self, key: Key) -> None:
        """``del db[key]``: removes a present key, raises ``KeyError`` for a missing one."""
        if key in self.model:
            del self.db[key]
            del self.model[key]
            self.committed()
        else:
            with pytest.raises(KeyError):
                del self.db[key]
            self.unchanged()

    @rule(key=keys)
    def get(self, key: Key) -> None:
        """``db[key]``, ``get`` and ``in`` agree with the model."""
        if key in self.model:
            assert typed(self.db[key]) == typed(self.model[key])
            assert key in self.db
        else:
            with pytest.raises(KeyError):
                self.db[key]
            assert self.db.get(key, "sentinel") == "sentinel"
            assert key not in self.db

    @rule(items=st.dictionaries(keys, values, min_size=1, max_size=5))
    def update(self, items: dict[Key, Any]) -> None:
        """``update(mapping)`` writes every item in one commit."""
        self.db.update(items)
        self.model.update({k: as_stored(v) for k, v in items.items()})
        self.committed()

    @rule(ops=operations)
    def transaction_committed(self, ops: list[tuple[str, Key, Any]]) -> None:
        """A block of writes that exits normally commits all of them; reads inside see them."""
        model = dict(self.model)
        with self.db.transaction():
            wrote = self.apply(ops, model)
            assert typed(dict(self.db.items())) == typed(model)
        self.model = model
        if wrote:
            self.committed()

    @rule(ops=operations)
    def transaction_rolled_back(self, ops: list[tuple[str, Key, Any]]) -> None:
        """A block of writes ended by an exception leaves store and generation as they were."""
        model = dict(self.model)
        with pytest.raises(Rollback), self.db.transaction():
            self.apply(ops, model)
            raise Rollback
        self.unchanged()

    @rule()
    def clear(self) -> None:
        """``clear()`` empties the store."""
        self.db.clear()
        if self.model:
            self.model.clear()
            self.committed()

    @rule()
    def reopen(self) -> None:
        """Closing and reopening keeps contents; the generation never goes back."""
        self.db.close()
        self.db = mmkv.Store(self.path)
        assert self.db.generation >= self.generation
        self.generation = self.db.generation

    @rule()
    def compact(self) -> None:
        """``compact()`` keeps contents and leaves no dead bytes; generation never goes back."""
        self.db.compact()
        assert self.db.stats()["dead_bytes"] == 0
        assert self.db.generation >= self.generation
        self.generation = self.db.generation

    @rule()
    def len_and_iteration(self) -> None:
        """``len``, iteration and ``items()`` report exactly the model, types included."""
        assert len(self.db) == len(self.model)
        assert self.db.stats()["keys"] == len(self.model)
        listed = list(self.db)
        assert len(listed) == len(set(listed))
        assert {(type(k), k) for k in listed} == {(type(k), k) for k in self.model}
        assert typed(dict(self.db.items())) == typed(self.model)

    @invariant()
    def store_is_sound(self) -> None:
        """After every step the store verifies clean and has the model's length."""
        self.db.verify()
        assert len(self.db) == len(self.model)


def test_a_store_behaves_like_a_dict_under_random_operations() -> None:
    """Random puts, deletes, updates, transactions, reopens and compactions match a dict."""
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(max_examples=50, stateful_step_count=30, deadline=None),
    )
