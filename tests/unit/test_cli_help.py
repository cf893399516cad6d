"""Every command's --help says what it does and what each of its options does."""

from __future__ import annotations

import argparse

from anonymizer.cli import build_parser


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found |= _commands(sub, f"{prefix}{name} ")
    return found


def test_each_command_has_a_description_and_each_option_a_help_text() -> None:
    commands = _commands(build_parser())
    assert {"process", "validate-config", "models", "daemon", "status", "audit", "audit verify", "demo"} <= set(commands)
    undocumented = []
    for name, parser in commands.items():
        if not (parser.description or "").strip():
            undocumented.append(f"{name}: no description")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                undocumented.append(f"{name}: {'/'.join(action.option_strings) or action.dest} has no help")
    assert undocumented == []
