"""The machinery: what makes the lesson robust and fast, kept apart from it.

The teaching path (atm_min/*.py, README's reading order) never imports from here; train.py, sample.py, plot.py,
bench.py and the data scripts call both. Here: settings and their parsing (config.py), data files (data.py),
device and precision (runtime.py), a training run with checkpoints, resume and progress (runs.py, checkpoint.py,
progress.py), the worker pool and job scheduling with the fold cache (parallel.py, jobs.py), GPT-2 weights and
tokenizer from outside (gpt2.py), the error classes (errors.py), tables, reports, plots and traces (tables.py,
report.py, trace.py).
"""
