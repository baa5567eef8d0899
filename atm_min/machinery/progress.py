"""Training progress that fits its destination, and a machine-readable training log.

On a terminal: a tqdm bar with the latest numbers as its postfix. Anywhere else (a log file, CI, a notebook's
captured output): no bar, one plain line per log step, as nanoGPT prints, because tqdm writes every refresh
with a carriage return and such a log becomes mostly bar debris. Either way, each log step also appends one
JSON line per student to `log_path` (e.g. out_dir/log.jsonl), for plots and comparisons that read numbers.
"""

from __future__ import annotations

import json
import os
import sys

from tqdm import tqdm

# How the plain line and the bar show a field (JSON gets the number itself); anything else: 3 decimals.
_FORMATS = {"lr": "{:.1e}", "tok_s": "{:.0f}"}
_LABELS = {"tok_s": "tok/s"}


def _show(key: str, value) -> str:
    if isinstance(value, float):
        return _FORMATS.get(key, "{:.3f}").format(value)
    return str(value)


def _rounded(value):
    """~5 significant digits: the log stays readable and small; more digits are noise for a loss curve."""
    return float(f"{value:.5g}") if isinstance(value, float) else value


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Progress of one training run of `total` steps. advance() every optimiser step (cheap: tqdm throttles its
    own redraws, and off a terminal it does nothing); log() every log_interval steps (the only file I/O).
    enabled=False (DDP ranks other than 0, which would print the same numbers again) makes it all a no-op;
    show=False keeps only the log file (students trained side by side in worker processes would interleave their
    bars and lines on one terminal)."""

    def __init__(self, desc: str, total: int, initial: int = 0, enabled: bool = True,
                 log_path: str | None = None, stream=None, show: bool = True):
        self.desc, self.total, self.enabled, self.show = desc, total, enabled, show
        self.bar = self.log_file = None
        if not enabled:
            return
        # Looked up now, not at import: a stderr redirected or captured later (tests, notebooks) is the one used.
        # stderr, as tqdm's default: progress is diagnostics; stdout keeps the results (`> results.txt` works).
        self.stream = stream if stream is not None else sys.stderr
        if show and _is_terminal(self.stream):
            self.bar = tqdm(total=total, initial=initial, desc=desc, file=self.stream, dynamic_ncols=True,
                            leave=False)
        if log_path:
            os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
            self.log_file = open(log_path, "a", encoding="utf-8")  # append: fold, baseline and resumed runs add up

    def advance(self, n: int = 1):
        if self.bar is not None:
            self.bar.update(n)

    def log(self, step: int, records: dict[str, dict], **common):
        """records: student name -> its metrics (e.g. {"loss": 1.23, "aux": 0.4}); common: fields shared by all
        of them (e.g. lr, tok_s, elapsed_s)."""
        if not self.enabled:
            return
        if self.log_file is not None:
            rows = [{"student": name, "step": step, **metrics, **common} for name, metrics in records.items()]
            # One write, flushed at once: a kill -9 loses at most this step, and processes that train students
            # side by side (parallel.py) can append to one log without splitting each other's lines.
            self.log_file.write("".join(json.dumps({k: _rounded(v) for k, v in r.items()}) + "\n" for r in rows))
            self.log_file.flush()
        shown = {k: v for k, v in common.items() if k != "elapsed_s"}  # the bar shows its own elapsed time
        if self.bar is not None:
            postfix = {}
            for name, metrics in records.items():
                label = "" if len(records) == 1 else f"{name} "  # one student: its name is the bar's desc already
                postfix.update({f"{label}{_LABELS.get(k, k)}": _show(k, v) for k, v in metrics.items()})
            postfix.update({_LABELS.get(k, k): _show(k, v) for k, v in shown.items()})
            self.bar.set_postfix(postfix)
            return
        if not self.show:
            return
        for name, metrics in records.items():
            fields = " ".join(f"{_LABELS.get(k, k)} {_show(k, v)}" for k, v in {**metrics, **shown}.items())
            when = f" ({common['elapsed_s']:.1f} s)" if "elapsed_s" in common else ""
            print(f"{name} step {step}/{self.total}: {fields}{when}", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
