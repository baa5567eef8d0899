"""Variants: the paper's design (atm_min/*.py) with one idea changed, one small file each.

Read the core first; each file here starts by saying what it changes: a subclass of a core class, or a function
in a core function's place. They import the core, never the other way round; the machinery
(atm_min/machinery/choose.py) picks them from the run's settings, once, where it builds a run's objects:

    perc_input.py         --perc_input=features|tokens   the perception reads only one kind of input
    prompt_kinds.py       --soft_prompt=gated|label      the soft prompt carries only the decision
    hard_routing.py       --routing=hard                 no soft prompt: the classifier picks the mode
    mode_token.py         --decider=mode_token           no perception: the student's first token decides
    router.py             --decider=router               a classifier in front of the pre and post baselines
    label_rules.py        --label_rule=prefer_post|prefer_pre|pass_rate   other ways evidence becomes a label
    sampled_evidence.py   --label_samples=N              pass rates over sampled answers, for label_rule=pass_rate
    random_labels.py      --label_source=random          the labels shuffled: the same post rate, no evidence
    task_labels.py        --label_source=task            each question its task's better mode: the task, no question
    perc_lr.py            --perc_lr_mult=M               the perception learns at M times the schedule's lr
    threshold_curve.py    (results.json atm.tradeoff)    the 0.5 threshold on p(answer first) moved
"""
