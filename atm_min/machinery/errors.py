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
    """argparse, except that a bad command line raises ConfigError instead of printing usage and exiting with
    status 2: so it reaches the script's one place that prints `error: ...`, like every other failure."""

    def error(self, message):
        raise ConfigError(f"{message} (see {self.prog} --help)")
