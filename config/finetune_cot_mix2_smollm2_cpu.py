# The decisive real-data runs (docs/results.md, "The decisive comparison, written down before it ran"): the
# mixture where the modes trade places -- coin_flip (thinking first wins) and strategy_qa (answering first wins)
# -- with the recipe the learning curve picked on validation questions (docs/results.md, "The learning curve"):
# 3 epochs at a constant AdamW 3e-4 (Fine-tune-CoT's own rate), bfloat16 autocast on the CPU. Give both files,
# this one last, and one seed per run (0, 1 and 2):
#   python data/prepare.py mix --inputs data/coin_flip data/strategy_qa --max_train_each 320 \
#       --max_test_each 150 --out data/mix2
#   python train.py config/finetune_cot_smollm2_cpu.py config/finetune_cot_mix2_smollm2_cpu.py --init_from=G \
#       --seed=0 --out_dir=out/ftcot-mix2-s0
# Each run is resumable (--resume). About 3x the one-epoch pipeline's compute.

data_dir = "data/mix2"       # 314 + 320 = 634 train examples, 2 x 150 test questions
out_dir = "out/ftcot-mix2"
max_train = 0
max_test = 0                 # already capped per task (--max_test_each)

# 3 epochs (our choice, from the learning curve): 80 steps of 8 per epoch; each fold student trains on half
lr = 3e-4
min_lr = 3e-4                # constant after the warmup, as Fine-tune-CoT's recipe
warmup_iters = 4
max_iters = 240
fold_iters = 120
dtype = "bfloat16"           # autocast on the CPU (this machine's avx512_bf16); the learning curve ran in it
