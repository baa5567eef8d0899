"""Speed of the GPT student against Hugging Face's GPT2LMHeadModel of the same size, in one process.

Generation: seconds for N new greedy tokens (batch 1, short prompt) with our KV cache, without it, and with
HF's generate(use_cache=True). HF's model gets our weights, so all three must produce the same tokens.
Training: tokens/s of forward + backward + AdamW step, for both of our attention paths and for HF's model
(same batch, same optimizer; the contenders take turns step by step, so background load hits them alike).

    python bench.py                                 # GPT-2 124M, batch 4 x 256 tokens, best device
    python bench.py --n_layer=4 --steps=10 --device=cpu
    python bench.py --peak_flops=989e12             # also print MFU (here: H100 SXM, bf16 dense)
    python bench.py --only=generate --gen_batch_size=8
    python bench.py --only=generate --init_from=models/SmolLM2-135M-Instruct.Q4_1.gguf --data_dir=data/strategy_qa \
        --gen_batch_size=32 --new_tokens=160 --threads=1   # real questions: dropping finished rows, off vs on
    python bench.py --only=parallel                 # tiny students: one process vs one process per core
    python bench.py --only=llama --rounds=3         # the Llama student (SmolLM2-135M shapes) vs LlamaForCausalLM
"""

import argparse
import contextlib
import os
import sys
import time

import torch

from atm_min.machinery.errors import ProjectError
from atm_min.machinery.gpt2 import HF_CONV1D
from atm_min.machinery.runtime import pick_device
from atm_min import engine
from atm_min.engine import GenSettings
from atm_min.model import GPT, GPTConfig

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--device", default="auto", help="auto picks cuda, then mps, then cpu")
p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
               help="auto: bfloat16 autocast on cuda, float32 elsewhere")
p.add_argument("--batch_size", type=int, default=4)
p.add_argument("--seq_len", type=int, default=256)
p.add_argument("--steps", type=int, default=None, help="timed training steps (default: 3 on cpu, 20 otherwise)")
p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 on cpu, 5 otherwise)")
p.add_argument("--n_layer", type=int, default=12)
p.add_argument("--n_head", type=int, default=12)
p.add_argument("--n_embd", type=int, default=768)
p.add_argument("--vocab_size", type=int, default=50257)
p.add_argument("--block_size", type=int, default=1024)
p.add_argument("--new_tokens", type=int, default=128, help="tokens to generate")
p.add_argument("--prompt_len", type=int, default=8)
p.add_argument("--prompt_frac", type=float, default=0.35,
               help="--only=llama: share of the training positions without a target (the prompt), 0-1")
p.add_argument("--gen_batch_size", type=int, default=1, help="prompts generated together (same length, no padding)")
p.add_argument("--gen_rounds", type=int, default=3, help="timed generations per contender (best one counts)")
p.add_argument("--compile", action="store_true", help="torch.compile the models for training")
p.add_argument("--peak_flops", type=float, default=None, help="device peak FLOP/s for the dtype, to print MFU")
p.add_argument("--no_hf", action="store_true", help="skip the transformers comparison")
p.add_argument("--only", choices=["train", "generate", "parallel", "llama"], default=None,
               help="run one benchmark (parallel and llama: only with --only; parallel times the default tiny CPU "
                    "student, llama the Llama student at SmolLM2-135M's shapes against transformers)")
p.add_argument("--llama_layers", type=int, default=30, help="--only=llama: layers (SmolLM2-135M: 30)")
p.add_argument("--jobs", type=int, default=4, help="--only=parallel: students per round")
p.add_argument("--rounds", type=int, default=3, help="--only=parallel, llama: timed rounds (interleaved)")
p.add_argument("--init_from", default=None,
               help="--only=generate: a pretrained student (a .gguf or HF folder) on real questions (--data_dir), "
                    "timing engine.py's drop_finished off against on, instead of the random GPT against HF")
p.add_argument("--data_dir", default=None, help="with --init_from: a prepared task (data/prepare.py); its first "
               "--gen_batch_size test questions are asked, each forced to think first (outputs of mixed lengths)")
p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
p.add_argument("--seed", type=int, default=1337)
# Under `if __name__ == "__main__"`: --only=parallel starts worker processes, which import this file again
# (multiprocessing's "spawn"); they must not parse the command line and run the benchmarks themselves.
if __name__ == "__main__":
    args = p.parse_args()
    if args.threads:  # fewer threads than cores can win when other processes keep some cores busy
        torch.set_num_threads(args.threads)

    if args.init_from and args.only != "generate":
        sys.exit("error: --init_from times generation only: add --only=generate")
    if not 0 <= args.prompt_frac < 1:
        sys.exit(f"error: --prompt_frac={args.prompt_frac}: expected a share in [0, 1), e.g. 0.35")
    try:
        args.device = pick_device(args.device)  # the project's one device picker; a missing GPU is one line
    except ProjectError as e:
        sys.exit(f"error: {e}")
    dev = args.device.split(":")[0]
    if args.dtype == "auto":
        args.dtype = "bfloat16" if dev == "cuda" else "float32"
    steps = args.steps if args.steps is not None else (3 if dev == "cpu" else 20)
    warmup = args.warmup if args.warmup is not None else (1 if dev == "cpu" else 5)
    # Parameters stay fp32; bfloat16 runs the matmuls under autocast (mixed precision, as in training).
    autocast = (torch.autocast(dev, dtype=torch.bfloat16) if args.dtype == "bfloat16" else contextlib.nullcontext())
    torch.manual_seed(args.seed)


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()
    elif dev == "mps":
        torch.mps.synchronize()


def make_optimizer(model):
    # Fused AdamW (one kernel for all parameters) on CUDA, and on CPU where this torch has it; same for everyone.
    try:
        return torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev in ("cuda", "cpu"))
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(model.parameters(), lr=1e-4)


# ---------------------------------------------------------------------------------------------- models
if __name__ == "__main__" and args.only not in ("parallel", "llama") and not args.init_from:  # (not in worker
    # processes; those two, and a real student, build their own models)
    cfg = dict(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, vocab_size=args.vocab_size,
               block_size=args.block_size)
    ours = {impl: GPT(GPTConfig(**cfg, attn_impl=impl)).to(args.device) for impl in ("sdpa", "explicit")}
    ours["explicit"].load_state_dict(ours["sdpa"].state_dict())
    hf = None
    if not args.no_hf:
        try:
            import transformers
        except ImportError:
            print("transformers is not installed: no comparison with GPT2LMHeadModel")
        else:
            transformers.logging.set_verbosity_error()
            hf_cfg = transformers.GPT2Config(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                                             vocab_size=args.vocab_size, n_positions=args.block_size,
                                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,  # ours: dropout 0
                                             bos_token_id=None, eos_token_id=None,  # never stop generating early
                                             attn_implementation="sdpa")  # HF's default, named to be sure
            hf = transformers.GPT2LMHeadModel(hf_cfg).to(args.device)
            with torch.no_grad():  # our weights (HF's Conv1D stores them transposed), so generations must agree
                hf_sd = hf.state_dict()
                for k, v in ours["sdpa"].state_dict().items():
                    hf_sd[k].copy_(v.t() if k.endswith(HF_CONV1D) else v)

    n_params = ours["sdpa"].num_params(non_embedding=False)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, dtype {args.dtype}"
          f"{', compiled' if args.compile else ''}")
    print(f"model: {n_params / 1e6:.1f}M parameters ({args.n_layer} layers, {args.n_head} heads, {args.n_embd} wide, "
          f"vocab {args.vocab_size}, block {args.block_size})")
    if hasattr(os, "getloadavg"):  # other processes on the machine slow every contender; say how busy it was
        print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")

    # ---------------------------------------------------------------------------------------------- training


def bench_training():
    B, T = args.batch_size, args.seq_len
    data = torch.randint(0, args.vocab_size, (B, T + 1), device=args.device)
    x, y = data[:, :-1], data[:, 1:]
    contenders = {f"ours, {impl}": m for impl, m in ours.items()}
    if hf is not None:
        contenders["HF GPT2LMHeadModel"] = hf
    runs = {}
    for name, m in contenders.items():
        m.train()
        runs[name] = (torch.compile(m) if args.compile else m, make_optimizer(m), name.startswith("HF"), [])

    def train_step(model, opt, is_hf):
        with autocast:
            # HF shifts the labels inside (loss on T-1 positions); ours takes the shifted targets (T positions).
            loss = model(x, labels=x).loss if is_hf else model(x, targets=y)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warmup + steps):  # take turns, one step each, so background load is shared fairly
        for name, (model, opt, is_hf, times) in runs.items():
            sync()
            t0 = time.perf_counter()
            train_step(model, opt, is_hf)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)

    print(f"\ntraining: batch {B} x {T} tokens, forward + backward + AdamW, {warmup} warmup + {steps} timed steps")
    tps = {name: B * T * steps / sum(times) for name, (_, _, _, times) in runs.items()}
    hf_tps = tps.get("HF GPT2LMHeadModel")
    print(f"{'':22s} {'tokens/s':>10s} {'ms/step':>9s} {'vs HF':>7s}" + (f" {'MFU':>7s}" if args.peak_flops else ""))
    for name, t in tps.items():
        row = f"{name:22s} {t:10.0f} {1000 * B * T / t:9.1f}" + (f" {t / hf_tps:6.2f}x" if hf_tps else " " * 8)
        if args.peak_flops:  # the same model FLOPs for all: they are the same architecture
            row += f" {100 * ours['sdpa'].estimate_mfu(t, args.peak_flops, seq_len=T):6.2f}%"
        print(row)
    if str(args.device).startswith("cuda"):  # every contender lives in this process: use --no_hf for ours alone
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


# ---------------------------------------------------------------------------------------------- generation
@torch.no_grad()
def bench_generation():
    prompt = torch.randint(0, args.vocab_size, (args.gen_batch_size, args.prompt_len), device=args.device)
    gen = {
        "ours, KV cache": lambda n: engine.generate(ours["sdpa"], prompt, GenSettings(n)),
        "ours, no cache": lambda n: engine.generate(ours["sdpa"], prompt, GenSettings(n, use_cache=False)),
    }
    if hf is not None:
        gen["HF generate (cache)"] = lambda n: hf.generate(prompt, max_new_tokens=n, min_new_tokens=n,
                                                           do_sample=False, use_cache=True)[:, args.prompt_len:].tolist()
    for m in [*ours.values(), hf]:
        if m is not None:
            m.eval()
    seconds, tokens = {name: [] for name in gen}, {}
    with autocast:
        for fn in gen.values():
            fn(4)  # warm up
        for r in range(args.gen_rounds):  # take turns; the best round counts (least disturbed by other load)
            for name, fn in gen.items():
                if r > 0 and name == "ours, no cache":
                    continue  # the slow reference: once is enough
                sync()
                t0 = time.perf_counter()
                tokens[name] = fn(args.new_tokens)
                sync()
                seconds[name].append(time.perf_counter() - t0)

    print(f"\ngeneration: {args.new_tokens} new tokens, greedy, batch {args.gen_batch_size}, {args.prompt_len}-token "
          f"prompt, best of {args.gen_rounds} (no cache: 1); vs HF = its time / ours (>1: faster)")
    best = {name: min(s) for name, s in seconds.items()}
    hf_s = best.get("HF generate (cache)")
    print(f"{'':22s} {'seconds':>10s} {'ms/step':>9s} {'vs HF':>7s}")  # a step: one new token for every row
    for name, s in best.items():
        print(f"{name:22s} {s:10.3f} {1000 * s / args.new_tokens:9.1f}" + (f" {hf_s / s:6.2f}x" if hf_s else ""))
    # Same weights, so the same greedy tokens, unless float rounding flips a near-tie (random weights give
    # nearly flat logits): then say where they part.
    flat = {name: sum(t, []) for name, t in tokens.items()}  # rows one after another
    differ = {name: next((i for i, (a, b) in enumerate(zip(f, flat["ours, KV cache"])) if a != b), len(f))
              for name, f in flat.items() if f != flat["ours, KV cache"]}
    print("same tokens from all of them: " + ("yes" if not differ else
          "NO, " + ", ".join(f"{name} from token {i}" for name, i in differ.items())))


@torch.no_grad()
def bench_real_generation():
    """Batched greedy generation as evaluation runs it (engine.py: left padding, stop at <|endoftext|> or a
    newline) with a pretrained student on real questions, each prompt followed by "Reasoning:" (thinking first)
    so outputs run from a few tokens to the budget. drop_finished off and on take turns, every round printed."""
    import statistics
    from atm_min.batches import pad_left
    from atm_min.formats import MODE_MARKS, format_prompt
    from atm_min.machinery.data import load_examples
    from atm_min.machinery.hf import load_student, load_tokenizer, pretrained_tokenizer_name
    try:
        model = load_student(args.init_from).to(args.device).eval()
        tok = load_tokenizer(pretrained_tokenizer_name(args.init_from))
        exs = load_examples(os.path.join(args.data_dir or "", "test.jsonl"))[:args.gen_batch_size]
    except (ProjectError, OSError) as e:
        sys.exit(f"error: {e} (--init_from: a .gguf file or HF folder; --data_dir: a folder from data/prepare.py)")
    idx, mask = pad_left([tok.encode(format_prompt(e.question) + MODE_MARKS["pre"]) for e in exs], tok.eot_id,
                         args.device)
    stop = [tok.eot_id] + tok.newline_ids
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.init_from}")
    seconds, outs = {False: [], True: []}, {}
    with autocast:
        for r in range(args.gen_rounds):
            for drop in ((False, True) if r % 2 == 0 else (True, False)):
                sync()
                t0 = time.perf_counter()
                outs[drop] = engine.generate(model, idx, GenSettings(args.new_tokens, stop_ids=stop,
                                                                     drop_finished=drop), pad_mask=mask)
                sync()
                seconds[drop].append(time.perf_counter() - t0)
            print(f"  round {r + 1}: drop_finished off {seconds[False][-1]:.1f} s, on {seconds[True][-1]:.1f} s "
                  f"({seconds[False][-1] / seconds[True][-1]:.2f}x)", flush=True)
    lens = sorted(len(o) for o in outs[False])
    ratios = [a / b for a, b in zip(seconds[False], seconds[True])]
    print(f"real generation: {len(exs)} questions of {args.data_dir}, {idx.size(1)}-token padded prompts, "
          f"{args.new_tokens} new tokens at most, {torch.get_num_threads()} thread(s); output lengths min "
          f"{lens[0]}, median {lens[len(lens) // 2]}, max {lens[-1]}; speed-up from dropping finished rows: median "
          f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}, {len(ratios)} rounds); "
          f"same tokens: {'yes' if outs[False] == outs[True] else 'NO'}")


def bench_parallel():
    """The pipeline's independent students (fold students, baselines): one after another in one process with all
    its threads, or one process per core with one thread each (atm_min/machinery/parallel.py). Rounds alternate, so
    background load hits both alike; every number is printed, not only the best."""
    from atm_min.machinery.parallel import JobRunner, plan_workers, time_training_steps
    workers, threads = plan_workers(0, args.jobs, "cpu")
    steps = args.steps or 300
    print(f"parallel: {args.jobs} default tiny students x {steps} steps; {os.cpu_count()} cores; "
          f"one process with {torch.get_num_threads()} threads vs {workers} processes x {threads} thread(s)")
    with JobRunner(workers, threads) as runner:  # start the pool (imports torch in each worker) before timing
        for j in range(workers):
            runner.submit(j, time_training_steps, 5, j, threads)
        while runner.next_finished() is not None:
            pass
        for r in range(args.rounds):
            t0 = time.perf_counter()
            for j in range(args.jobs):
                time_training_steps(steps, j)
            one = time.perf_counter() - t0
            t0 = time.perf_counter()
            for j in range(args.jobs):
                runner.submit(j, time_training_steps, steps, j, threads)
            while runner.next_finished() is not None:
                pass
            many = time.perf_counter() - t0
            n = args.jobs * steps
            print(f"  round {r + 1}: one process {1000 * one / n:.1f} ms per student-step, {workers} processes "
                  f"{1000 * many / n:.1f} ms ({one / many:.2f}x)")


# ---------------------------------------------------------------------------------------------- llama
def bench_llama():
    """The Llama student (atm_min/students/llama.py) at SmolLM2-135M's shapes (30 layers, 576 wide, 9 query and 3
    key/value heads, SwiGLU 1536, vocab 49152, rope base 100000, tied) against transformers' LlamaForCausalLM
    holding the same random weights: training tokens/s and batch-1 greedy generation with the KV cache. Rounds
    take turns (ours, theirs, ours, ...), and every round's ratio is printed, so background load shows as spread."""
    import statistics
    import transformers
    from atm_min.students.llama import Llama, LlamaConfig
    transformers.logging.set_verbosity_error()
    L, V = args.llama_layers, 49152
    cfg = LlamaConfig(block_size=2048, vocab_size=V, n_layer=L, n_head=9, n_kv_head=3, n_embd=576,
                      intermediate_size=1536, rope_theta=100000.0, rms_norm_eps=1e-5, tie_embeddings=True)
    ours = Llama(cfg).to(args.device)
    hf_cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=576, intermediate_size=1536, num_hidden_layers=L,
                                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                                      rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                                      bos_token_id=None, eos_token_id=None, pad_token_id=None,
                                      attn_implementation="sdpa")
    hf = transformers.LlamaForCausalLM(hf_cfg).to(args.device)
    with torch.no_grad():  # our weights, split back into HF's separate q/k/v and gate/up matrices
        hf_sd = hf.state_dict()
        for k, v in ours.state_dict().items():
            if k == "lm_head.weight":
                continue
            if "qkv_proj" in k:
                for name, part in zip(("q_proj", "k_proj", "v_proj"), v.split([576, 192, 192])):
                    hf_sd["model." + k.replace("qkv_proj", name)].copy_(part)
            elif "gate_up_proj" in k:
                for name, part in zip(("gate_proj", "up_proj"), v.chunk(2)):
                    hf_sd["model." + k.replace("gate_up_proj", name)].copy_(part)
            else:
                hf_sd["model." + k].copy_(v)
    print(f"device {args.device}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads, dtype {args.dtype}; Llama {ours.num_params() / 1e6:.1f}M parameters "
          f"({L} layers)")
    if hasattr(os, "getloadavg"):
        print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    B, T, rounds = args.batch_size, args.seq_len, args.rounds
    data = torch.randint(0, V, (B, T + 1), device=args.device)
    x = data[:, :-1]
    runs = {"ours": (ours, make_optimizer(ours)), "HF": (hf, make_optimizer(hf))}
    # the weights before training: each optimizer moves its own copy (the float sums differ), and a random model's
    # near-tied logits would then pick different greedy tokens; generation is timed on the identical weights
    start = {name: {k: v.clone() for k, v in model.state_dict().items()} for name, (model, _) in runs.items()}

    def step(name, y, labels):
        model, opt = runs[name]
        model.train()
        sync()
        t0 = time.perf_counter()
        with autocast:
            loss = model(x, labels=labels).loss if name == "HF" else model(x, targets=y)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0

    # Two workloads. "every position": each of the T positions has a target. "prompt masked": the first
    # --prompt_frac of them carry none, as in training, where the question is the prompt (target -1; Hugging
    # Face's -100): 14-42% of the positions of Fine-tune-CoT's tasks in SmolLM2 tokens. Our student skips the
    # output layer there; LlamaForCausalLM computes every position's logits.
    P = round(args.prompt_frac * T)
    masked_y, masked_labels = data[:, 1:].clone(), x.clone()
    masked_y[:, :P], masked_labels[:, :P + 1] = -1, -100  # HF shifts labels itself: labels[t + 1] is t's target
    workloads = {"every position": (data[:, 1:], x), f"prompt masked ({P} of {T})": (masked_y, masked_labels)}
    for work, (y, labels) in workloads.items():
        for name in runs:
            for _ in range(warmup):
                step(name, y, labels)
        ratios = []
        for r in range(rounds):  # each round: `steps` steps of ours, then of HF's (order alternates between rounds)
            t = {}
            for name in (("ours", "HF") if r % 2 == 0 else ("HF", "ours")):
                t[name] = sum(step(name, y, labels) for _ in range(steps))
            ratios.append(t["HF"] / t["ours"])
            print(f"  train round {r + 1}: ours {B * T * steps / t['ours']:.0f} tokens/s, HF "
                  f"{B * T * steps / t['HF']:.0f} tokens/s, ours/HF {ratios[-1]:.2f}x")
        print(f"training, {work} (batch {B} x {T}, {steps} steps per round): ours/HF tokens/s median "
              f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}, {rounds} rounds)")

    prompt = torch.randint(0, V, (1, args.prompt_len), device=args.device)
    for name, (model, _) in runs.items():
        model.load_state_dict(start[name])
    ours.eval()
    hf.eval()
    n = args.new_tokens
    gen = {"ours": lambda: engine.generate(ours, prompt, GenSettings(n))[0],
           "HF": lambda: hf.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                     use_cache=True)[0, args.prompt_len:].tolist()}
    ratios, out = [], {}
    with torch.no_grad(), autocast:
        for fn in gen.values():
            fn()  # warm up
        for r in range(rounds):
            t = {}
            for name in (("ours", "HF") if r % 2 == 0 else ("HF", "ours")):
                sync()
                t0 = time.perf_counter()
                out[name] = gen[name]()
                sync()
                t[name] = time.perf_counter() - t0
            ratios.append(t["ours"] / t["HF"])
            print(f"  generate round {r + 1}: ours {t['ours']:.3f} s, HF {t['HF']:.3f} s, ours/HF time {ratios[-1]:.2f}x")
    print(f"generation ({n} new tokens, batch 1, KV cache): ours/HF time median {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}); same tokens: {'yes' if out['ours'] == out['HF'] else 'NO'}")


if __name__ == "__main__":
    if args.only == "llama":
        bench_llama()
    if args.only == "parallel":
        bench_parallel()
    if args.init_from:
        bench_real_generation()
    elif args.only in (None, "generate"):
        bench_generation()  # first: training changes the weights, differently for each contender
    if args.only in (None, "train") and not args.init_from:
        bench_training()
    if hasattr(os, "getloadavg"):
        print(f"\nload average after: {os.getloadavg()[0]:.2f} (1 min)")
