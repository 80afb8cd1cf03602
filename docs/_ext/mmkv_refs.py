"""Resolve references to mmkv objects by the name users import them under.

The public API is documented where users find it (``mmkv.Store``, ``mmkv.CorruptionError``),
but Python records where each object was defined (``mmkv.store.Store``,
``mmkv.errors.CorruptionError``), and autodoc writes those names into base-class lists and
type hints. When such a reference has no target, retry it as ``mmkv.<name>`` if the package
re-exports that name; anything else stays unresolved and nitpicky mode reports it.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def _public_name(target: str) -> str | None:
    """Return ``mmkv.<name>`` for a target the package re-exports, else None."""
    import mmkv

    parts = target.split(".")
    if parts[0] != "mmkv":
        # A bare name from an unevaluated annotation, such as "Store".
        parts = ["mmkv", *parts]
    # Drop private module names from the left, longest spelling first:
    # mmkv.store.Store.get -> mmkv.Store.get (never mmkv.get).
    for start in range(1, len(parts)):
        candidate = ".".join(["mmkv", *parts[start:]])
        if candidate != target and hasattr(mmkv, parts[start]):
            return candidate
    return None


def resolve_public_name(
    app: Sphinx, env: BuildEnvironment, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Retry an unresolved Python reference under its re-exported ``mmkv`` name."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    public = _public_name(target)
    if public is None:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
    )


def setup(app: Sphinx) -> dict[str, object]:
    """Register the resolver."""
    app.connect("missing-reference", resolve_public_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
