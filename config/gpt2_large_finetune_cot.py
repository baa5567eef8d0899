# GPU recipe: fine-tune GPT-2 large (774M) on Fine-tune-CoT rationales with pre-, post- and adaptive thinking.
# One GPU with bfloat16 (A100/H100 class): float32 weights, grads and AdamW state alone are ~12 GB.
#
# Prepare the data first (converts the Fine-tune-CoT teacher rationales into our format):
#   python data/prepare.py finetune-cot --input ../shared/datasets/finetune-cot --task multiarith --out data/multiarith
# then:
#   python train.py config/gpt2_large_finetune_cot.py                       # ATM + pre/post baselines
#   python train.py config/gpt2_large_finetune_cot.py --mechanism post      # one mechanism only
# Other tasks: prepare with --task <name> --out data/<name>, then pass --data_dir=data/<name> --out_dir=out/<name>.
# The GPT-2 BPE ranks are fetched by tiktoken; offline, set tokenizer_path (or ATM_GPT2_TIKTOKEN) to a local
# gpt2.tiktoken file. Weights: init_from may also be a local Hugging Face directory holding GPT-2 large.

# data
data_dir = "data/multiarith"
out_dir = "out/gpt2-large-multiarith"
on_too_long = "fail"   # see the longest example before choosing "drop"

# mechanism
mechanism = "atm"
baselines = True

# model: GPT-2 large's shape (checked against GPT2_SHAPES in atm_min/machinery/config.py)
init_from = "gpt2-large"
tokenizer = "gpt2"
tokenizer_path = ""
n_layer = 36
n_head = 20
n_embd = 1280
block_size = 512       # question + rationale + answer in GPT-2 tokens, plus the soft prompt
dropout = 0.0          # fine-tuning: no dropout
bias = True
attn_impl = "sdpa"     # fused attention kernel

# optimisation: effective batch 8 * 4 = 32 sequences; a fine-tuning learning rate (ours, not the paper's)
batch_size = 8
grad_accum = 4
max_iters = 1500
lr = 1e-5
min_lr = 1e-6
warmup_iters = 100
weight_decay = 0.0     # fine-tuning: do not pull the pretrained weights towards zero
grad_clip = 1.0

# system
device = "cuda"
dtype = "bfloat16"
compile = True
save_interval_s = 300.0  # a GPT-2 large checkpoint (with AdamW state) is ~9 GB: not every minute
log_interval = 10

# ATM (our choices; the paper does not publish them)
folds = 5
fold_iters = 0         # 0 = max_iters for each fold's pre and post students
n_prefix = 4
perc_layers = 1
perc_heads = 4         # divides n_embd = 1280
aux_weight = 1.0

# evaluation
eval_batch_size = 32
max_new_tokens = 128
