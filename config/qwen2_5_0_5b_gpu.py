# GPU recipe: fine-tune Qwen2.5-0.5B (one of the paper's students; a Llama-family student with q/k/v biases,
# atm_min/students/llama.py) on Fine-tune-CoT rationales with pre-, post- and adaptive thinking.
# One GPU with bfloat16, or several with torchrun (DDP), as the GPT-2 recipes.
#
# Prepare the data first:
#   python data/prepare.py finetune-cot --input ../shared/datasets/finetune-cot --task multiarith --out data/multiarith
# The weights: a Hugging Face directory (config.json, model.safetensors, tokenizer.json), e.g.
#   huggingface-cli download Qwen/Qwen2.5-0.5B --local-dir models/Qwen2.5-0.5B
# (init_from may also be the Hub name "Qwen/Qwen2.5-0.5B" where huggingface_hub is installed and online), then:
#   python train.py config/qwen2_5_0_5b_gpu.py
#   torchrun --nproc_per_node=8 train.py config/qwen2_5_0_5b_gpu.py
# The tokenizer needs the optional `tokenizers` package (pip install tokenizers).

# data
data_dir = "data/multiarith"
out_dir = "out/qwen2.5-0.5b-multiarith"
on_too_long = "fail"

# mechanism
mechanism = "atm"
baselines = True

# model: Qwen2.5-0.5B's shape (24 layers, 896 wide, 14 query / 2 key-value heads); the weights decide it, these
# say it
init_from = "models/Qwen2.5-0.5B"
tokenizer = "pretrained"  # its tokenizer.json (151,665 ids); the stop token is tokenizer_config.json's eos_token
n_layer = 24
n_head = 14
n_embd = 896
block_size = 512
dropout = 0.0
attn_impl = "sdpa"

# optimisation: effective batch 16 * 2 = 32 sequences; a fine-tuning learning rate (ours, not the paper's)
batch_size = 16
grad_accum = 2
max_iters = 1500
lr = 2e-5
min_lr = 2e-6
warmup_iters = 100
weight_decay = 0.0
grad_clip = 1.0

# system
device = "cuda"
dtype = "bfloat16"
compile = True
save_interval_s = 300.0
log_interval = 10

# ATM (our choices; the paper does not publish them)
folds = 5
fold_iters = 0
n_prefix = 4
perc_layers = 1
perc_heads = 4         # divides n_embd = 896
aux_weight = 1.0

# evaluation
eval_batch_size = 64
max_new_tokens = 128
