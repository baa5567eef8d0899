"""Mutation check: break the code on purpose, one fault at a time, and see that a fast test fails.

    python tests/mutations.py              # every fault; exit status 1 if a fault goes uncaught
    python tests/mutations.py --list       # the faults, without running anything
    python tests/mutations.py --only lr_end --only aux_weight

Each fault is one textual change of one file, made in a fresh copy of the repository (a temp directory); the
fast tests then run there with `pytest -x` (stop at the first failure): first the test files most likely to
catch it, then, if those pass, the whole fast suite. A fault that no test catches is printed as MISSED: some
lesson of the course could be wrong without the suite noticing. Not collected by pytest (no test_ prefix) and
not part of CI's default run: on 2 CPU cores one round takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Fault:
    name: str
    what: str           # the lesson it breaks
    path: str           # file changed, relative to the repository
    old: str            # text that must occur exactly once in it...
    new: str            # ...replaced by this
    first: tuple = ()   # test files to run first (the likely catchers)


FAULTS = [
    Fault("aux_weight", "the perception's loss is added without its weight (lm_loss + aux)",
          "atm_min/learner.py", "return lm_loss + self.aux_weight * aux, lm_loss, aux",
          "return lm_loss + aux, lm_loss, aux",
          ("tests/test_values.py",)),
    Fault("answer_span", "answer_first_confidence reads the answer span one token early",
          "atm_min/labels.py", "spans.append((len(prompt) - 1, len(seq) - 1, seq[1:]))",
          "spans.append((len(prompt) - 2, len(seq) - 2, seq[1:]))", ("tests/test_values.py",)),
    Fault("fold_leak", "a fold student trains on its own held-out questions",
          "train.py", "fit = [i for i, f in enumerate(folds) if f != k]", "fit = list(range(len(train)))",
          ("tests/test_values.py",)),
    Fault("fold_train_all", "run_job trains a fold student on the whole training set, not its fit set",
          "train.py", "learner = trained(cfg, job, [train_set[i] for i in job.fit], runtime, tok, show)",
          "learner = trained(cfg, job, list(train_set) if job.held_out else [train_set[i] for i in job.fit], runtime, "
          "tok, show)",
          ("tests/test_values.py",)),
    Fault("labels_swapped", "the k-fold labels come out with pre and post swapped",
          "train.py", "    counts = evidence_counts(",
          "    labels = ['pre' if lab == 'post' else 'post' for lab in labels]\n    counts = evidence_counts(",
          ("tests/test_values.py",)),
    Fault("confidence_ignored", "confident_post ignores the post_confidence threshold",
          "atm_min/labels.py", "if post_ok and (p_gold >= post_confidence or not pre_ok):",
          "if post_ok and (p_gold >= 0.5 or not pre_ok):", ("tests/test_labels.py", "tests/test_values.py")),
    Fault("post_flag_swapped", "the perception is taught to predict 'pre' as answer-first",
          "atm_min/batches.py", 'items.append(TrainItem(x, y, q_ids, feats, int(mode == "post")))',
          'items.append(TrainItem(x, y, q_ids, feats, int(mode == "pre")))',
          ("tests/test_batches.py", "tests/test_routing.py")),
    Fault("no_soft_prompt_at_generation", "generation drops the perception's soft prompt",
          "atm_min/evaluate.py", "settings, prefix_embeds=prefix, pad_mask=pad_mask)",
          "settings, prefix_embeds=None, pad_mask=pad_mask)", ("tests/test_values.py",)),
    Fault("no_cross_attention_mask", "the perception's cross-attention attends to padding",
          "atm_min/perception.py", 'att = att.masked_fill(~key_mask[:, None, None, :], float("-inf"))',
          "att = att", ("tests/test_perception.py",)),
    Fault("prompt_in_loss", "the loss also covers the prompt tokens",
          "atm_min/formats.py", "n_masked = len(prompt_ids) - 1", "n_masked = 0", ("tests/test_batches.py",)),
    Fault("no_temperature", "sampling ignores the temperature",
          "atm_min/engine.py", "logits = logits / temperature", "logits = logits", ("tests/test_values.py",)),
    Fault("no_top_k", "sampling ignores top_k",
          "atm_min/engine.py", "if top_k is not None:", "if False:", ("tests/test_values.py", "tests/test_model.py")),
    Fault("lr_end", "the cosine reaches min_lr one step early (at the last step, not at the end)",
          "atm_min/training.py", "progress = (it - cfg.warmup_iters) / max(1, iters - cfg.warmup_iters)",
          "progress = (it - cfg.warmup_iters) / max(1, iters - 1 - cfg.warmup_iters)", ("tests/test_values.py",)),
    Fault("lr_no_floor", "the cosine decays to 0 instead of min_lr",
          "atm_min/training.py", "return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.lr - cfg.min_lr)",
          "return 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * cfg.lr", ("tests/test_values.py",)),
    Fault("lr_warmup", "the warmup starts one step late (lr 0 at step 0)",
          "atm_min/training.py", "return cfg.lr * (it + 1) / cfg.warmup_iters", "return cfg.lr * it / cfg.warmup_iters",
          ("tests/test_values.py",)),
    Fault("no_grad_clip", "gradients are never clipped",
          "atm_min/training.py", "if cfg.grad_clip:", "if False:", ("tests/test_values.py",)),
    Fault("decay_everything", "weight decay also shrinks biases and LayerNorm parameters",
          "atm_min/training.py", '{"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}',
          '{"params": [p for p in params if p.dim() < 2], "weight_decay": cfg.weight_decay}',
          ("tests/test_values.py",)),
    Fault("freeze_ignored", "freeze_student trains the student anyway",
          "atm_min/machinery/runs.py", "student.requires_grad_(False)", "pass", ("tests/test_values.py",)),
    Fault("features_formula", "one perception feature is scaled differently",
          "atm_min/perception.py", "math.log1p(n_numbers) / 5", "math.log1p(n_numbers) / 4",
          ("tests/test_values.py", "tests/test_perception.py")),
    Fault("forget_model_key", "resume forgets one setting that decides the model (n_head)",
          "atm_min/machinery/runs.py", 'seen - {"dropout", "attn_impl", "aux_weight"}',
          'seen - {"dropout", "attn_impl", "aux_weight", "n_head"}',
          ("tests/test_resume_rules.py",)),
    Fault("finished_budget_ignored", "a finished run of other steps is reused silently",
          "atm_min/machinery/runs.py", 'if ck["iter"] != steps else []', "if False else []",
          ("tests/test_resume_rules.py",)),
    Fault("no_optimizer_resume", "resume starts a fresh optimiser (no AdamW moments)",
          "atm_min/machinery/runs.py", 'optimizer.load_state_dict(ck["optimizer"])', "pass",
          ("tests/test_train.py::test_resume_gives_identical_weights_and_optimizer",)),
    Fault("no_rng_resume", "resume does not restore the RNG state (dropout draws differ)",
          "atm_min/machinery/runs.py", 'set_rng_state(ck["rng"])', "pass",
          ("tests/test_train.py::test_resume_gives_identical_weights_and_optimizer",)),
    Fault("no_scaler_saved", "a float16 checkpoint does not carry the GradScaler's state",
          "atm_min/machinery/runs.py", '**({"scaler": scaler.state_dict()} if scaler is not None else {})',
          "**{}", ("tests/test_precision.py",)),
    Fault("no_scaler_resume", "resume does not restore the GradScaler's state",
          "atm_min/machinery/runs.py", 'runtime.scaler.load_state_dict(ck["scaler"])', "pass",
          ("tests/test_precision.py",)),
    Fault("no_autocast_in_training", "training ignores the autocast context (bf16 runs in float32)",
          "atm_min/training.py", "with (learner.no_sync() if runtime.world > 1 and not sync else nullcontext()), runtime.ctx:",
          "with (learner.no_sync() if runtime.world > 1 and not sync else nullcontext()):", ("tests/test_precision.py",)),
    Fault("no_detach_question", "the perception's label loss trains the student's embeddings",
          "atm_min/perception.py", "return student.get_input_embeddings()(q_ids).detach()",
          "return student.get_input_embeddings()(q_ids)", ("tests/test_perception.py",)),
    # the boundaries of every threshold rule: "reaches" (>=) and "above" (>) are different rules
    Fault("post_confidence_boundary", "p_gold equal to post_confidence no longer counts as confident",
          "atm_min/labels.py", "p_gold >= post_confidence", "p_gold > post_confidence", ("tests/test_labels.py",)),
    Fault("pass_rate_boundary", "pass_rate: post exactly at pre's rate - delta no longer answers first",
          "atm_min/variants/label_rules.py", "post_rate >= pre_rate - delta", "post_rate > pre_rate - delta",
          ("tests/test_labels.py", "tests/test_deciders.py")),
    Fault("mode_threshold_boundary", "mode_token: p equal to mode_threshold no longer answers first",
          "atm_min/variants/mode_token.py", '["post" if x >= threshold else "pre" for x in p]',
          '["post" if x > threshold else "pre" for x in p]', ("tests/test_deciders.py",)),
    Fault("classifier_boundary", "hard routing answers first at p = 0.5 exactly (the rule is p > 0.5)",
          "atm_min/variants/hard_routing.py", 'modes[i] = "post" if x > 0.5 else "pre"',
          'modes[i] = "post" if x >= 0.5 else "pre"', ("tests/test_evaluate.py",)),
    Fault("router_boundary", "the router sends p = 0.5 exactly to the post student",
          "atm_min/variants/router.py", "(x > 0.5) == (mode == \"post\")", "(x >= 0.5) == (mode == \"post\")",
          ("tests/test_deciders.py",)),
    Fault("curve_boundary", "the threshold curve answers first where p equals the threshold",
          "atm_min/variants/threshold_curve.py", 'b["p_post"] > t else a', 'b["p_post"] >= t else a',
          ("tests/test_curve.py",)),
    Fault("agreement_boundary", "agreement counts p = 0.5 as answering first",
          "atm_min/evaluate.py", "sum((p > 0.5) == (lab == \"post\")", "sum((p >= 0.5) == (lab == \"post\")",
          ("tests/test_evaluate.py",)),
    Fault("warmup_boundary", "the warmup lasts one step longer (lr above its peak at step warmup_iters)",
          "atm_min/training.py", "if it < cfg.warmup_iters:", "if it <= cfg.warmup_iters:", ("tests/test_values.py",)),
    # gradient accumulation: Adam hides the scale, only the gradients show it
    Fault("grad_accum_not_averaged", "accumulated micro-batch gradients are summed, not averaged",
          "atm_min/training.py", "loss = loss / cfg.grad_accum", "loss = loss", ("tests/test_contracts.py",)),
    Fault("grad_accum_one_micro_short", "one micro-batch of each step is left out",
          "atm_min/training.py", "for micro in range(cfg.grad_accum):", "for micro in range(max(1, cfg.grad_accum - 1)):",
          ("tests/test_contracts.py",)),
    Fault("micro_batch_overlap", "every micro-batch of a step reads the same chunk of the batch",
          "atm_min/batches.py", "k = micro_step * world + rank", "k = rank", ("tests/test_contracts.py",)),
    # batched generation that drops finished rows must keep every index in step: outputs, cache, token column
    Fault("drop_rows_ids", "after dropping finished rows, the live rows' outputs go to the wrong questions",
          "atm_min/engine.py", "return _Rows([rows.ids[i] for i in keep]", "return _Rows(rows.ids[:len(keep)]",
          ("tests/test_engine.py",)),
    Fault("drop_rows_cache", "dropping finished rows keeps the first rows of the KV cache, not the live ones",
          "atm_min/engine.py", "rows.cache.keep_rows(k)", "rows.cache.keep_rows(torch.arange(len(keep)))",
          ("tests/test_engine.py",)),
    # the chain-break experiment: task labels, the perception's own lr, the held-out questions
    Fault("task_label_tie", "a task whose fold students tie is labelled pre, not post (the cheaper)",
          "atm_min/variants/task_labels.py", 'return "pre" if pre_right > post_right else "post"',
          'return "pre" if pre_right >= post_right else "post"', ("tests/test_chain.py",)),
    Fault("task_label_by_group", "task labels count the evidence per finest group, not per task",
          "atm_min/variants/task_labels.py", "return (group_levels(group) or [\"\"])[0]",
          "return group or \"\"", ("tests/test_chain.py",)),
    Fault("perc_lr_mult_ignored", "the loop sets every group to the schedule's lr, the perception's multiple lost",
          "atm_min/training.py", 'group["lr"] = lr * group.get("lr_mult", 1.0)', 'group["lr"] = lr',
          ("tests/test_chain.py",)),
    Fault("holdout_trained_on", "the ATM student trains on the questions --atm_holdout holds out",
          "train.py", 'Job("atm", [i for i in everyone if i not in held], None,', 'Job("atm", everyone, None,',
          ("tests/test_chain.py",)),
    # the Llama student's loss skips the positions without a target: its mean must still be over the scored ones
    Fault("llama_loss_mean_over_prompt", "the Llama loss is averaged over every position, prompt included",
          "atm_min/students/llama.py", "F.cross_entropy(logits.float(), targets[scored])",
          'F.cross_entropy(logits.float(), targets[scored], reduction="sum") / targets.numel()',
          ("tests/test_llama_parity.py",)),
]


def copy_repo(dst: str) -> None:
    skip = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "out", "out_*", "*.pt", ".venv")
    shutil.copytree(ROOT, dst, ignore=skip, dirs_exist_ok=True)


def pytest(cwd: str, targets: list[str], timeout: int) -> tuple[bool, str]:
    """(passed, first failing test id or the error line)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *targets]
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    if r.returncode == 0:
        return True, ""
    m = re.search(r"^(FAILED|ERROR) (\S+)", r.stdout, re.M)
    if m:
        return False, m.group(2)
    tail = (r.stdout + r.stderr).strip().splitlines()
    return False, (tail[-1] if tail else f"exit status {r.returncode}")[:120]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true", help="print the faults and exit")
    p.add_argument("--only", action="append", default=[], help="run only this fault (repeatable)")
    p.add_argument("--timeout", type=int, default=1200, help="seconds per pytest run")
    args = p.parse_args(argv)
    faults = [f for f in FAULTS if not args.only or f.name in args.only]
    unknown = set(args.only) - {f.name for f in FAULTS}
    if unknown:
        sys.exit(f"error: unknown fault(s) {sorted(unknown)}; see --list")
    if args.list:
        for f in faults:
            print(f"{f.name:30s} {f.path:28s} {f.what}")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        clean = os.path.join(tmp, "clean")
        copy_repo(clean)
        for f in faults:  # each fault must apply to the code as it is now, exactly once
            n = open(os.path.join(clean, f.path)).read().count(f.old)
            if n != 1:
                sys.exit(f"error: fault {f.name!r}: its text occurs {n} times in {f.path} (expected once); update "
                         f"tests/mutations.py to the code")
        first = sorted({t for f in faults for t in f.first})
        t0 = time.time()
        ok, failed = pytest(clean, first, args.timeout)  # the catchers pass on the unbroken code
        if not ok:
            sys.exit(f"error: the tests fail without any fault ({failed}); fix them first")
        print(f"unbroken code: {len(first)} catcher test file(s) pass ({time.time() - t0:.0f} s)\n")
        print(f"{'fault':30s} {'result':8s} {'seconds':>7s}  caught by")
        rows = []
        for f in faults:
            t0 = time.time()
            work = os.path.join(tmp, f.name)
            copy_repo(work)
            path = os.path.join(work, f.path)
            with open(path) as fh:
                text = fh.read()
            with open(path, "w") as fh:
                fh.write(text.replace(f.old, f.new))
            ok, by = pytest(work, list(f.first), args.timeout) if f.first else (True, "")
            if ok:  # the likely catchers missed it: the whole fast suite
                ok, by = pytest(work, [], args.timeout)
            shutil.rmtree(work, ignore_errors=True)
            rows.append((f, not ok, by))
            print(f"{f.name:30s} {'caught' if not ok else 'MISSED':8s} {time.time() - t0:7.0f}  {by or '-'}",
                  flush=True)
    missed = [f for f, caught, _ in rows if not caught]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} faults caught by the fast tests"
          + (": missed " + ", ".join(f.name for f in missed) if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
