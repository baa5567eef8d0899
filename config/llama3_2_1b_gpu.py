# GPU recipe: fine-tune Llama-3.2-1B (one of the paper's students; grouped-query attention and Llama 3's rotary
# frequency scaling, atm_min/students/llama.py) on Fine-tune-CoT rationales with pre-, post- and adaptive
# thinking. One GPU with bfloat16 (A100/H100 class), or several with torchrun (DDP), as the GPT-2 recipes.
#
# Prepare the data first:
#   python data/prepare.py finetune-cot --input ../shared/datasets/finetune-cot --task multiarith --out data/multiarith
# The weights: a Hugging Face directory (config.json, model.safetensors, tokenizer.json; the model is gated:
# accept its licence on the Hub first), e.g.
#   huggingface-cli download meta-llama/Llama-3.2-1B --local-dir models/Llama-3.2-1B
# (init_from may also be the Hub name "meta-llama/Llama-3.2-1B" where huggingface_hub is installed, logged in and
# online), then:
#   python train.py config/llama3_2_1b_gpu.py
#   torchrun --nproc_per_node=8 train.py config/llama3_2_1b_gpu.py
# The tokenizer needs the optional `tokenizers` package (pip install tokenizers).

# data
data_dir = "data/multiarith"
out_dir = "out/llama3.2-1b-multiarith"
on_too_long = "fail"

# mechanism
mechanism = "atm"
baselines = True

# model: Llama-3.2-1B's shape (16 layers, 2048 wide, 32 query / 8 key-value heads); the weights decide it, these
# say it
init_from = "models/Llama-3.2-1B"
tokenizer = "pretrained"  # its tokenizer.json (128,256 ids); the stop token is tokenizer_config.json's eos_token
n_layer = 16
n_head = 32
n_embd = 2048
block_size = 512
dropout = 0.0
attn_impl = "sdpa"

# optimisation: effective batch 8 * 4 = 32 sequences; a fine-tuning learning rate (ours, not the paper's)
batch_size = 8
grad_accum = 4
max_iters = 1500
lr = 1e-5
min_lr = 1e-6
warmup_iters = 100
weight_decay = 0.0
grad_clip = 1.0

# system
device = "cuda"
dtype = "bfloat16"
compile = True
save_interval_s = 300.0  # a 1.2B checkpoint with AdamW state is ~15 GB: not every minute
log_interval = 10

# ATM (our choices; the paper does not publish them)
folds = 5
fold_iters = 0
n_prefix = 4
perc_layers = 1
perc_heads = 4         # divides n_embd = 2048
aux_weight = 1.0

# evaluation
eval_batch_size = 32
max_new_tokens = 128
