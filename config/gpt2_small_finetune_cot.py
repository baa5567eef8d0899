# GPU recipe: fine-tune GPT-2 small (124M) on Fine-tune-CoT rationales: the quick version of
# config/gpt2_large_finetune_cot.py (fits any recent GPU; also the one to debug a pipeline with).
#
# Prepare the data first:
#   python data/prepare.py finetune-cot --input ../shared/datasets/finetune-cot --task multiarith --out data/multiarith
# then:
#   python train.py config/gpt2_small_finetune_cot.py
# The GPT-2 BPE ranks are fetched by tiktoken; offline, set tokenizer_path (or ATM_GPT2_TIKTOKEN) to a local
# gpt2.tiktoken file. Weights: init_from may also be a local Hugging Face directory holding GPT-2 small.

# data
data_dir = "data/multiarith"
out_dir = "out/gpt2-small-multiarith"
on_too_long = "fail"

# mechanism
mechanism = "atm"
baselines = True

# model: GPT-2 small's shape (checked against GPT2_SHAPES in atm_min/machinery/config.py)
init_from = "gpt2"
tokenizer = "gpt2"
tokenizer_path = ""
n_layer = 12
n_head = 12
n_embd = 768
block_size = 512
dropout = 0.0
bias = True
attn_impl = "sdpa"

# optimisation: effective batch 16 * 2 = 32 sequences; a small model takes a larger fine-tuning lr (ours)
batch_size = 16
grad_accum = 2
max_iters = 1500
lr = 3e-5
min_lr = 3e-6
warmup_iters = 100
weight_decay = 0.0
grad_clip = 1.0

# system
device = "cuda"
dtype = "bfloat16"
compile = True
save_interval_s = 120.0
log_interval = 10

# ATM (our choices; the paper does not publish them)
folds = 5
fold_iters = 0
n_prefix = 4
perc_layers = 1
perc_heads = 4
aux_weight = 1.0

# evaluation
eval_batch_size = 64
max_new_tokens = 128
