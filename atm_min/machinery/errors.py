"""The project's error classes: one per concept, all under ProjectError.

An error raised with one of these is an expected failure (bad input, a missing file, an unavailable device or
download) and its message says what to do. Each script turns a ProjectError into one `error: ...` line and exit
status 1 in one place (its `__main__` block or `cli()`); anything else is a bug and keeps its traceback.
The classes also derive from the builtin they used to be (ValueError, RuntimeError), so older `except` clauses
keep working.

Standard library only: data/synth.py and data/prepare.py import this without torch.
"""

from __future__ import annotations

import argparse
import difflib
import re


class ProjectError(Exception):
    """Base of every expected failure; scripts print its message as `error: <message>`."""


class ConfigError(ProjectError, ValueError):
    """A setting or command-line argument is unknown, of the wrong type, out of range or unusable here (e.g. a
    device this machine lacks); the message names the setting."""


class DataError(ProjectError, ValueError):
    """Malformed, unreadable or empty data; the message names the file and line(s)."""


class CheckpointError(ProjectError, ValueError):
    """A checkpoint (ours, or Hugging Face GPT-2 weights) is missing, unsafe, damaged, unreachable or does not
    match the model asked for; the message says which and what to do."""


class TokenizerError(ProjectError, RuntimeError):
    """The tokenizer cannot be built: unknown name, ranks file missing or unreadable, download impossible."""


class TrainingError(ProjectError, RuntimeError):
    """A run cannot go on (e.g. the loss became NaN); the message says what was kept."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, as every script of the project parses its command line, except that a bad command line raises
    ConfigError instead of printing usage and exiting with status 2 (so it reaches the script's one place that
    prints `error: ...`), and an unknown option gets a did-you-mean."""

    def error(self, message):
        m = re.match(r"unrecognized arguments: (\S+)", message)
        if m:
            raise self.unknown(m.group(1))
        m = re.match(r"argument (--[\w-]+)(?:/\S+)?: expected one argument", message)
        if m:
            raise ConfigError(f"{m.group(1)} needs a value: {m.group(1)}=VALUE or {m.group(1)} VALUE")
        m = re.match(r"argument (?:--[\w-]+/?)+: (.*)", message)
        if m and getattr(self, "bare_type_errors", False):  # the type check's own message names the setting
            raise ConfigError(m.group(1))
        raise ConfigError(f"{message} (see {self.prog} --help)")

    def options(self) -> dict[str, argparse.Action]:
        """Option name without dashes, with underscores ("max_iters") -> its action."""
        return {o.lstrip("-").replace("-", "_"): a for o, a in self._option_string_actions.items()
                if o.startswith("--") and a.help != argparse.SUPPRESS}

    def unknown(self, arg: str) -> ConfigError:
        key = arg.lstrip("-").partition("=")[0].replace("-", "_")
        known = self.options()
        if key.startswith("no_") and key[3:] in known:  # --no-x where x takes a value, not true/false
            return ConfigError(f"{arg}: only true/false settings take --no-; {key[3:]} takes a value "
                               f"(--{key[3:]}=VALUE)")
        if key.startswith("no_"):
            key = key[3:]
        return unknown_setting(key, f"from {arg}", known, self.prog)


def unknown_setting(key: str, where: str, known, prog: str = "the script") -> ConfigError:
    """An unknown setting, named, with the closest known names."""
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"see {prog} --help for the settings"
    return ConfigError(f"unknown setting {key!r} ({where}): {hint}")
