# The mixture: one SmolLM2-135M student over three Fine-tune-CoT tasks -- multiarith (thinking first wins),
# coin_flip (thinking first wins) and strategy_qa (answering first wins) -- the real-data analogue of the
# synthetic suite's two families, where a per-question choice can beat both modes. It changes only the data
# and the step counts of config/finetune_cot_smollm2_cpu.py (the recipe chosen on coin_flip); give both files,
# this one last:
#   python data/prepare.py mix --inputs data/multiarith data/coin_flip data/strategy_qa \
#       --max_train_each 320 --max_test_each 150 --out data/mix3
#   python train.py config/finetune_cot_smollm2_cpu.py config/finetune_cot_mix3_smollm2_cpu.py --init_from=...
# Results break down per task (the group of each example is its task). block_size = 0 and length_batches = True
# come from the single-task file: the block is sized from the mixture, and a batch holds examples of similar
# length whichever task they come from.

data_dir = "data/mix3"      # 320 + 314 + 320 = 954 train examples, 3 x 150 test questions
out_dir = "out/ftcot-mix3"
max_train = 0
max_test = 0                # the mixture's test set is already capped per task (--max_test_each)

# about one epoch per student, as in the single-task recipe: 120 steps of 8 = 960 examples; fold students 60
max_iters = 120
fold_iters = 60
warmup_iters = 12
