"""Machinery: every training setting in one typed dataclass, and the command line that fills it.

    python train.py [config/file.py ...] [--key=value | --key value | --flag | --no-flag] ...

Config files are applied first (in the order given), then the command-line settings (so the command line
always wins). A config file is plain Python assignments (`n_layer = 4`) executed into a private namespace.
The command line is parsed by argparse, as every script's is (errors.ArgumentParser: one `error:` line, a
did-you-mean for an unknown name), with one option per field. Every value is type-checked against the field's
annotation and the whole config is checked by `TrainConfig.validate()`; any problem raises `ConfigError` with a
message that names the setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
import re
import types
import typing
from dataclasses import dataclass

from .errors import ArgumentParser, ConfigError, unknown_setting


# Pretrained shapes of the GPT-2 family, so that a recipe cannot silently disagree with the weights it loads.
GPT2_SHAPES = {  # name -> (n_layer, n_head, n_embd)
    "gpt2": (12, 12, 768),
    "gpt2-medium": (24, 16, 1024),
    "gpt2-large": (36, 20, 1280),
    "gpt2-xl": (48, 25, 1600),
}
GPT2_BLOCK_SIZE = 1024  # GPT-2's position table

# Settings that take one of a few strings (device also takes "cuda:N"; see validate()).
CHOICES = {
    "on_too_long": ("fail", "drop"),
    "mechanism": ("pre", "post", "atm", "answer"),
    "tokenizer": ("bytes", "gpt2", "pretrained"),  # also "hf:DIR" / "gguf:FILE", what "pretrained" resolves to
    "attn_impl": ("sdpa", "explicit"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "dtype": ("auto", "float32", "bfloat16", "float16"),
    "label_rule": ("confident_post", "prefer_post", "prefer_pre", "pass_rate"),
    "label_default": ("pre", "post"),
    "label_source": ("kfold", "random", "task"),
    "perc_input": ("both", "features", "tokens"),
    "routing": ("soft", "hard"),
    "soft_prompt": ("free", "gated", "label"),
    "decider": ("soft_prompt", "mode_token", "router"),
}


@dataclass
class TrainConfig:
    # data
    data_dir: str = ""             # prepared dataset directory; "" = the built-in synthetic suite
    out_dir: str = "out"           # checkpoints, logs and results go here
    synth_seed: int = 0            # seed of the built-in synthetic suite (used when data_dir is "")
    max_train: int = 0             # cap on training examples for quick runs; 0 = all
    max_test: int = 0              # cap on test examples; 0 = all
    on_too_long: str = "fail"      # an example longer than block_size: "fail" (with an error) or "drop" it
    # mechanism
    mechanism: str = "atm"         # "pre": rationale then answer; "post": answer then rationale; "atm": adaptive
    baselines: bool = True         # with atm, also train the pre and post baselines for the comparison table
    # model
    init_from: str = "scratch"     # "scratch", a GPT-2 name ("gpt2", ...), a local HF directory (gpt2, llama, qwen2,
                                   # qwen3), a .gguf file (llama) or a Hub name owner/name (machinery/hf.py)
    tokenizer: str = "bytes"       # "bytes" (257 ids, for a student from scratch), "gpt2" (BPE, for GPT-2 weights) or
                                   # "pretrained" (the one that ships with init_from: tokenizer.json, the GGUF's vocab)
    tokenizer_path: str = ""       # local gpt2.tiktoken ranks file for offline use; "" = let tiktoken find it
    n_layer: int = 2               # transformer blocks
    n_head: int = 4                # attention heads per block
    n_embd: int = 64               # width of the residual stream
    block_size: int = 128          # longest sequence (soft prompt + tokens) the model sees; 0 = sized from the data:
                                   # the longest example, or prompt + max_new_tokens, at most the model's positions
    dropout: float = 0.0           # 0 for small data and for fine-tuning
    bias: bool = True              # biases in Linear and LayerNorm layers, as GPT-2
    attn_impl: str = "sdpa"        # "sdpa": torch's fused kernel; "explicit": attention written out in full
    # optimisation
    batch_size: int = 16           # sequences per micro-batch
    grad_accum: int = 1            # micro-batches per optimiser step (effective batch = batch_size * grad_accum)
    length_batches: bool = False   # batch examples of similar length together (less padding; our choice, off by
                                   # default: the default order is one shuffle per epoch, batches.length_order)
    max_iters: int = 2500          # optimiser steps per training run (pre, post, answer-only and ATM students alike)
    lr: float = 3e-3               # peak learning rate (after warmup)
    min_lr: float = 3e-4           # learning rate at the end of the cosine decay
    warmup_iters: int = 50         # linear warmup steps
    weight_decay: float = 0.1      # AdamW weight decay
    beta1: float = 0.9             # AdamW first-moment decay
    beta2: float = 0.99            # AdamW second-moment decay (nanoGPT's choice for small models)
    grad_clip: float = 1.0         # clip the global gradient norm to this; 0 = no clipping
    # system
    device: str = "auto"           # "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N" or "mps"
    dtype: str = "auto"            # "auto" (chosen for the device), "float32", "bfloat16" or "float16"
    compile: bool = False          # torch.compile the model (worth it on a GPU, slow to start on a CPU)
    seed: int = 1337               # seeds Python, numpy and torch
    resume: bool = False           # continue from the checkpoint in out_dir instead of starting over
    save_interval_s: float = 60.0  # write a checkpoint at least this often (seconds), so a crash loses little
    log_interval: int = 20         # print the training loss every this many steps
    num_threads: int = 0           # torch CPU threads; 0 = torch's default (with workers > 1: cores / workers)
    workers: int = 0               # students trained at once, one process each, for the independent students (fold
                                   # students and baselines): 0 = auto (on a CPU as many as cores, up to 4; on a
                                   # GPU or under torchrun 1); 1 = one after another in this process (the reference)
    # ATM. These are OUR choices: the paper does not publish its perception or labelling hyper-parameters.
    folds: int = 2                 # k-fold cross-labelling: each fold's pre/post students label the held-out part
    fold_iters: int = 1500         # optimiser steps for each fold's students; 0 = max_iters
    # label_rule turns the fold students' evidence on an example into its pre/post label (atm_min/labels.py):
    #   "confident_post": post if the post student is right and sure of it (p(gold answer) >= post_confidence),
    #                     or right where pre is wrong; else pre if the pre student is right; else label_default
    #   "prefer_post": post if the post student is right, else pre if the pre student is right, else label_default
    #   "prefer_pre":  pre if the pre student is right, else post if the post student is right, else label_default
    #   "pass_rate":   post if post's pass rate over label_samples sampled answers >= pre's - label_delta
    #                  (AdaptThink's margin), else pre; label_default when no sample of either is right
    label_rule: str = "confident_post"  # how evidence becomes a label; see above
    post_confidence: float = 0.9   # confident_post: how sure an answer-first student must be to make answering first safe
    label_samples: int = 0         # sampled answers per held-out question and fold student (pass rates); 0 = none
    label_temperature: float = 1.0  # sampling temperature of those answers (> 0)
    label_delta: float = 0.0       # pass_rate: how much pass rate answering first may lose and still win, in [0, 1]
    label_default: str = "pre"     # the label when neither fold student answers correctly: a hard question, think
    n_prefix: int = 4              # soft-prompt vectors the perception feeds the student
    perc_layers: int = 1           # transformer layers in the perception module
    perc_heads: int = 4            # attention heads in the perception module (must divide n_embd)
    aux_weight: float = 1.0        # weight of the perception's answer-first (pre vs post) classification loss
    perc_lr_mult: float = 1.0      # the perception module's learning rate as a multiple of the schedule's (our choice,
                                   # the paper is silent: it starts from random weights beside a pretrained student)
    perc_input: str = "both"       # what the perception reads: "both" (question tokens + features), "features", "tokens"
    routing: str = "soft"          # "soft": the soft prompt steers the student; "hard": the perception's classifier
                                   # picks the mode and the student is started with that mode's marker, no soft prompt
    soft_prompt: str = "free"      # "free": the soft prompt is any function of the question (P projected query
                                   # outputs); "gated": only the decision, a mix of a think-first and an
                                   # answer-first prompt weighted by p(answer first); "label": the same, the
                                   # weight learned from the k-fold labels only (atm_min/perception.py)
    # How ATM decides between thinking first and answering first (the names are our choice; atm_min/variants/):
    #   "soft_prompt": the paper's perception module writes a soft prompt that steers one student (the default)
    #   "mode_token":  no perception: the student's own first generated token (the first token of "Reasoning:" or of
    #                  "Answer:") is the decision, its loss weighted apart from the rest (Thinkless's control token)
    #   "router":      a small classifier over the question sends it to the pre or the post baseline (two students)
    decider: str = "soft_prompt"   # see above: "soft_prompt" (the paper), "mode_token" or "router"
    mode_token_weight: float = 1.0  # mode_token: weight of the mode token's mean loss, added to the rest's mean loss
    mode_threshold: float = 0.0    # mode_token: 0 = the first token greedily; in (0, 1): answer first when
                                   # p(answer token) / (p(answer token) + p(think token)) >= mode_threshold
    label_source: str = "kfold"    # "kfold": labels from the fold students; "random": shuffled at the same post rate;
                                   # "task": each question gets its task's better mode on the fold evidence
    evidence_from: str = ""        # an earlier run's out_dir: reuse its fold students' evidence (same data, seed and
                                   # folds) instead of training them -- ablations and label-rule experiments in seconds
    freeze_student: bool = False   # train only the perception (and soft prompt), keeping the student fixed
    atm_holdout: int = 0           # training questions (drawn with the seed) the ATM student does not train on: its
                                   # perception's p(answer first) on them is scored against their k-fold labels
                                   # (results.json atm.holdout); fold students and baselines still use them; 0 = none
    # evaluation
    eval_batch_size: int = 256     # questions generated at once
    max_new_tokens: int = 96       # generation budget per question
    explain: bool = False          # also generate the rationale after a post-thinking answer (slower)

    def validate(self) -> "TrainConfig":
        """Check types, ranges and the settings that depend on each other; return self so calls can chain."""
        for f in dataclasses.fields(self):  # catches TrainConfig(n_layer="4") built in code, not parsed
            _from_python(f.name, getattr(self, f.name), "config")
        if self.tokenizer == "pretrained" and self.init_from != "scratch":
            from .hf import pretrained_tokenizer_name  # lazily: it imports torch and the students
            self.tokenizer = pretrained_tokenizer_name(self.init_from)  # what checkpoints save and compare
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            if key == "tokenizer" and value.startswith(("hf:", "gguf:")):
                continue
            if key == "device" and value.startswith("cuda:"):
                if not value[5:].isdigit():
                    raise ConfigError(f"device={value!r}: expected 'cuda:N' with N a GPU index, e.g. 'cuda:0'")
                continue
            if value not in allowed:
                extra = " or 'cuda:N'" if key == "device" else ""
                raise ConfigError(f"{key}={value!r}: expected one of {_or_list(allowed)}{extra}")

        for f in dataclasses.fields(self):  # inf/nan never make sense here and would fail much later
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name}={value!r}: expected a finite number")

        def need(ok: bool, key: str, what: str):
            if not ok:
                raise ConfigError(f"{key}={getattr(self, key)!r}: expected {what}")

        for key in ("n_layer", "n_head", "n_embd", "batch_size", "grad_accum", "max_iters",
                    "log_interval", "n_prefix", "perc_layers", "perc_heads", "eval_batch_size", "max_new_tokens"):
            need(getattr(self, key) > 0, key, "a positive integer")
        need(self.block_size >= 0, "block_size", "a positive integer, or 0 (sized from the data)")
        for key in ("max_train", "max_test", "warmup_iters", "fold_iters", "num_threads", "synth_seed", "seed",
                    "workers"):
            need(getattr(self, key) >= 0, key, "an integer >= 0")
        need(self.folds >= 2, "folds", "an integer >= 2 (each fold's students label the part they did not see)")
        need(self.lr > 0, "lr", "a learning rate > 0")
        need(0 <= self.min_lr <= self.lr, "min_lr", f"a learning rate in [0, lr={self.lr}] (the cosine decays "
             f"from lr down to min_lr: when you lower lr, lower min_lr too, e.g. to lr/10)")
        need(0 <= self.dropout < 1, "dropout", "a probability in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(0 <= self.beta1 < 1, "beta1", "a number in [0, 1)")
        need(0 <= self.beta2 < 1, "beta2", "a number in [0, 1)")
        need(self.grad_clip >= 0, "grad_clip", "a number >= 0 (0 = no clipping)")
        need(self.save_interval_s >= 0, "save_interval_s", "a number of seconds >= 0")
        need(self.aux_weight >= 0, "aux_weight", "a number >= 0")
        need(self.perc_lr_mult > 0, "perc_lr_mult", "a number > 0 (1 = the schedule's learning rate)")
        need(self.atm_holdout >= 0, "atm_holdout", "an integer >= 0 (0 = the ATM student trains on every question)")
        need(self.atm_holdout == 0 or self.mechanism == "atm", "atm_holdout",
             "0 unless --mechanism=atm (the held-out questions test the ATM student's perception)")
        need(0 <= self.post_confidence <= 1, "post_confidence", "a probability in [0, 1]")
        need(self.label_samples >= 0, "label_samples", "an integer >= 0 (0 = greedy evidence only)")
        need(self.label_temperature > 0, "label_temperature", "a temperature > 0")
        need(0 <= self.label_delta <= 1, "label_delta", "a pass-rate margin in [0, 1]")
        need(self.label_rule != "pass_rate" or self.label_samples > 0, "label_rule",
             "label_samples > 0 with 'pass_rate' (pass rates come from sampled answers, e.g. --label_samples=4)")
        need(self.mode_token_weight >= 0, "mode_token_weight", "a number >= 0")
        need(0 <= self.mode_threshold < 1, "mode_threshold", "0 (greedy first token) or a probability in (0, 1)")
        need(self.decider == "soft_prompt" or self.mechanism == "atm", "decider",
             "'soft_prompt' unless --mechanism=atm (the deciders choose between thinking and answering first)")
        need(self.init_from != "", "init_from", "'scratch', a GPT-2 name or a local HF directory")
        need(self.out_dir != "", "out_dir", "a directory path")

        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.n_embd % self.perc_heads:
            raise ConfigError(f"n_embd={self.n_embd} must be divisible by perc_heads={self.perc_heads}")
        if self.tokenizer == "pretrained":
            raise ConfigError("tokenizer='pretrained' takes the tokenizer of init_from's checkpoint: set init_from "
                              "too (a GPT-2 name, a Hugging Face directory or a .gguf file)")
        if self.init_from in GPT2_SHAPES and self.tokenizer != "gpt2":
            raise ConfigError(f"init_from={self.init_from!r} loads GPT-2 weights, which need tokenizer='gpt2' "
                              f"(got tokenizer={self.tokenizer!r})")
        if self.init_from != "scratch" and self.tokenizer in ("bytes", "gpt2"):
            from .hf import pretrained_tokenizer_name
            if self.tokenizer == "bytes" or pretrained_tokenizer_name(self.init_from) != "gpt2":
                raise ConfigError(f"init_from={self.init_from!r} loads pretrained weights, which need the "
                                  f"tokenizer they were trained with: set tokenizer='pretrained' (got "
                                  f"tokenizer={self.tokenizer!r})")
        if self.init_from in GPT2_SHAPES:
            shape = (self.n_layer, self.n_head, self.n_embd)
            want = GPT2_SHAPES[self.init_from]
            if shape != want:
                raise ConfigError(
                    f"init_from={self.init_from!r} has n_layer={want[0]}, n_head={want[1]}, n_embd={want[2]}, "
                    f"but the config says n_layer={shape[0]}, n_head={shape[1]}, n_embd={shape[2]}: set them to "
                    f"match (the recipes in config/ do)")
            if self.block_size > GPT2_BLOCK_SIZE:
                raise ConfigError(f"block_size={self.block_size}: GPT-2 covers at most {GPT2_BLOCK_SIZE} positions")
        return self


# ----------------------------------------------------------------------------------------------------------
# Values: every setting is checked against its field's type, whether it came from the command line (a string)
# or from a config file / checkpoint (a Python value).

_FIELD_TYPES: dict[str, type] = typing.get_type_hints(TrainConfig)  # name -> int/float/bool/str
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "a boolean (true/false/1/0)", str: "a string"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _or_list(items) -> str:
    return ", ".join(repr(x) for x in items)


def _unknown(key: str, where: str) -> ConfigError:
    return unknown_setting(key, where, _FIELD_TYPES, "train.py")


def _from_string(key: str):
    """argparse's type function for field `key`: the command-line string as the field's type."""
    typ = _FIELD_TYPES[key]

    def convert(raw: str):
        try:
            if typ is bool:
                low = raw.strip().lower()
                if low in _TRUE or low in _FALSE:
                    return low in _TRUE
                raise ValueError
            return typ(raw)  # str(raw), int("12"), float("3e-4"); int("abc") / float("fast") raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key} expects {_TYPE_NAMES[typ]}, got {raw!r}") from None
    return convert


def _from_python(key: str, value, where: str):
    """Check a Python value (from a config file or a saved dict) against the type of field `key`."""
    typ = _FIELD_TYPES[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # `lr = 1` means 1.0
    if type(value) is not typ:  # exact: bool is an int subclass, but `n_layer = True` is a mistake
        raise ConfigError(f"{where}: {key} expects {_TYPE_NAMES[typ]}, got {value!r} ({type(value).__name__})")
    return value


# ----------------------------------------------------------------------------------------------------------
# Sources: config files and the command line.

def load_config_file(path: str) -> dict:
    """Run a config file in a private namespace; return its settings (names not starting with `_`)."""
    if not os.path.isfile(path):
        hint = " (settings are written --key=value)" if "=" in path or path.startswith("-") else ""
        raise ConfigError(f"no config file at {path!r}{hint}")
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path!r} is not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at "
                          f"offset {e.start}); save it as UTF-8") from None
    namespace: dict = {"__file__": os.path.abspath(path)}
    try:
        exec(compile(source, path, "exec"), namespace)  # a fresh dict: the file cannot touch our globals
    except Exception as e:
        raise ConfigError(f"config file {path!r} failed to run: {type(e).__name__}: {e}") from e
    settings = {}
    for name, value in namespace.items():
        # helpers are allowed in a config file: imports, functions, and _private names are not settings
        if name.startswith("_") or isinstance(value, types.ModuleType) or callable(value):
            continue
        if name not in _FIELD_TYPES:
            raise _unknown(name, f"in config file {path!r}")
        settings[name] = _from_python(name, value, f"config file {path!r}")
    return settings


def _parser() -> ArgumentParser:
    """One option per TrainConfig field, also spelled with dashes (--max-iters); a true/false field is also a bare
    --flag and --no-flag. Positional arguments are config files. Options left out keep no value (SUPPRESS), so
    only what the command line says overrides the config files."""
    p = ArgumentParser(prog="train.py", add_help=False, allow_abbrev=False)
    p.bare_type_errors = True  # "max_iters expects an integer, got 'abc'" says it all
    p.add_argument("files", nargs="*")
    for name, typ in _FIELD_TYPES.items():
        spellings = list(dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"]))
        if typ is bool:
            p.add_argument(*spellings, dest=name, nargs="?", const=True, type=_from_string(name),
                           default=argparse.SUPPRESS, help=name)
            p.add_argument(*dict.fromkeys([f"--no-{name.replace('_', '-')}", f"--no_{name}"]), dest=name,
                           action="store_false", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            p.add_argument(*spellings, dest=name, type=_from_string(name), default=argparse.SUPPRESS, help=name)
    return p


def parse_args(argv: list[str]) -> TrainConfig:
    """Build a validated TrainConfig from `[config files...] [--key=value ...]`; raise ConfigError on any problem.
    -h/--help prints the settings and exits, as argparse does."""
    if "-h" in argv or "--help" in argv:
        print(usage())
        raise SystemExit(0)
    # A bare --flag never takes the next word as its value unless it is true/false ("--compile cfg.py" is a flag
    # and a config file); argparse would try to, so say "=true" for it.
    flags = {f"--{n}" for n, t in _FIELD_TYPES.items() if t is bool} | \
            {f"--{n.replace('_', '-')}" for n, t in _FIELD_TYPES.items() if t is bool}
    argv = [f"{a}=true" if a in flags and (i + 1 == len(argv) or argv[i + 1].strip().lower() not in _TRUE + _FALSE)
            else a for i, a in enumerate(argv)]
    args = vars(_parser().parse_intermixed_args(argv))  # the whole command line is checked before any file runs
    values: dict = {}
    for path in args.pop("files"):
        values.update(load_config_file(path))
    values.update(args)  # the command line wins over files
    return TrainConfig(**values).validate()


def usage() -> str:
    """The --help text: every setting with its type, default and comment (read from this file's source)."""
    try:  # the field comments are the documentation; read them rather than keep a second copy in sync
        comments = dict(re.findall(r"^\s+(\w+): \w+ = .*?#\s*(.*)$", inspect.getsource(TrainConfig), re.M))
    except (OSError, TypeError):
        comments = {}
    lines = ["usage: python train.py [config/file.py ...] [--key=value | --key value | --flag | --no-flag ...]",
             "", "settings (config files first, then the command line, which wins):"]
    for f in dataclasses.fields(TrainConfig):
        typ = _FIELD_TYPES[f.name].__name__
        lines.append(f"  --{f.name}={f.default!r} ({typ})  {comments.get(f.name, '')}".rstrip())
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Checkpoints store the config as a plain dict (loadable with torch.load(weights_only=True)).

def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of config_to_dict. Unknown keys are an error (the checkpoint is from other code); missing keys
    take today's defaults (the checkpoint predates a new setting)."""
    unknown = [k for k in d if k not in _FIELD_TYPES]
    if unknown:
        raise _unknown(unknown[0], "in a saved config" + (f", with {unknown[1:]}" if unknown[1:] else ""))
    values = {k: _from_python(k, v, "saved config") for k, v in d.items()}
    return TrainConfig(**values).validate()
