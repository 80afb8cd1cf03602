"""Render the ``mmkv`` command's help into the docs, so the CLI is described once.

``.. mmkv-cli::`` imports :mod:`mmkv.cli`, calls ``build_parser()`` and emits the top-level
help followed by one section per verb, each holding that verb's ``--help`` text exactly as
the program prints it. Nothing about the options is written twice.

If the parser cannot be built, the directive leaves a note in the page and logs a warning,
so a draft build still completes while a ``-W`` build fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

# argparse wraps help to the terminal width; fix it so the page does not depend on
# the terminal that ran the build.
HELP_WIDTH = 88


@contextmanager
def _as_program(name: str, width: int) -> Iterator[None]:
    """Make argparse believe it runs as ``name`` in a terminal ``width`` columns wide."""
    saved_argv0 = sys.argv[0] if sys.argv else None
    saved_columns = os.environ.get("COLUMNS")
    if sys.argv:
        sys.argv[0] = name
    else:
        sys.argv.append(name)
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved_argv0 is not None:
            sys.argv[0] = saved_argv0
        if saved_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved_columns


def _verbs(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """Return ``(name, one-line help, parser)`` for each verb, in the order they were added."""
    verbs: list[tuple[str, str, argparse.ArgumentParser]] = []
    for action in parser._actions:  # argparse offers no public way to list subcommands
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias of a verb already listed
                continue
            seen.add(id(sub))
            verbs.append((name, summaries.get(name, ""), sub))
    return verbs


def build_parser(module: str = "mmkv.cli") -> argparse.ArgumentParser:
    """Import ``module`` and return its ``build_parser()``, as seen by a user typing ``mmkv``."""
    import importlib

    cli = importlib.import_module(module)
    with _as_program("mmkv", HELP_WIDTH):
        parser = cli.build_parser()
        if not isinstance(parser, argparse.ArgumentParser):
            raise TypeError(f"{module}.build_parser() returned {type(parser).__name__}")
    return parser


def format_help(parser: argparse.ArgumentParser) -> str:
    """Return the parser's help text at the fixed width."""
    with _as_program("mmkv", HELP_WIDTH):
        return parser.format_help().rstrip() + "\n"


class MmkvCliDirective(SphinxDirective):
    """``.. mmkv-cli::`` renders the whole command-line reference from the parser."""

    has_content = False
    option_spec = {"module": directives.unchanged}  # noqa: RUF012 - docutils API

    def run(self) -> list[nodes.Node]:
        """Build the parser and turn its help into sections."""
        module = self.options.get("module", "mmkv.cli")
        self.env.note_dependency(__file__)
        try:
            parser = build_parser(module)
        except Exception as exc:  # any failure is reported, never hidden
            logger.warning(
                "cannot render the command-line reference: %s.build_parser() failed: %s: %s",
                module,
                type(exc).__name__,
                exc,
                location=self.get_location(),
            )
            note = nodes.note()
            note += nodes.paragraph(
                text=f"The command-line reference could not be generated "
                f"({type(exc).__name__}: {exc})."
            )
            return [note]

        result: list[nodes.Node] = [self._literal(format_help(parser))]
        for name, summary, sub in _verbs(parser):
            section = nodes.section()
            title = f"mmkv {name}"
            section["ids"].append(nodes.make_id(f"cli-{name}"))
            section["names"].append(nodes.fully_normalize_name(title))
            section += nodes.title(text=title)
            if summary and summary not in format_help(sub):
                # The verb's help usually repeats its summary as the description.
                section += nodes.paragraph(text=summary)
            section += self._literal(format_help(sub))
            self.state.document.note_implicit_target(section, section)
            result.append(section)
        return result

    @staticmethod
    def _literal(text: str) -> nodes.literal_block:
        """A literal block that the HTML writer shows as program output."""
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return block


def setup(app: Sphinx) -> dict[str, object]:
    """Register ``.. mmkv-cli::``."""
    app.add_directive("mmkv-cli", MmkvCliDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
