"""Value checks of the subtle parts, each against a hand computation or its own recorded evidence: the loss's
aux_weight, answer_first_confidence, the perception features, the lr schedule, weight decay, gradient clipping,
freeze_student, sampling's temperature and top_k, the soft prompt at generation, the k-fold split and the rows of
labels.json. tests/mutations.py breaks each of these on purpose and checks that a test here (or elsewhere) fails.
"""

import json
import math
import os
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
from tiny import tiny_args
import torch
import torch.nn.functional as F

import train as T
from atm_min import engine
from atm_min.engine import GenSettings
from atm_min.batches import collate, encode_items, perception_inputs, question_inputs
from atm_min.evaluate import Answering, generate_texts
from atm_min.formats import Example, encode
from atm_min.machinery.choose import labeller
from atm_min.labels import answer_first_confidence, fold_ids, label
from atm_min.learner import Learner
from atm_min.model import GPT, GPTConfig
from atm_min.perception import Perception, question_features, perceive
from atm_min.tokenizer import byte_tokenizer
from atm_min.training import Steps, lr_at, make_optimizer, train
from atm_min.machinery import data as mdata
from atm_min.machinery import runs, runtime
from atm_min.machinery.config import parse_args
from atm_min.machinery.jobs import write_json
from atm_min.machinery.runtime import Runtime

TOK = byte_tokenizer()


def student(seed=0, n_embd=32):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=128, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=n_embd))


def perception(seed=1):
    torch.manual_seed(seed)
    perc = Perception(32, n_prefix=2, n_layer=1, n_head=2)
    with torch.no_grad():
        perc.out_proj.weight.normal_(0, 0.5)  # a soft prompt big enough to change what the student says
    return perc


def examples():
    return [Example("a", "Is 21 odd?", "It ends in 1, so 21 is odd.", "yes", "yesno", "direct/2"),
            Example("b", "Start at 5, apply i d d: result?", "Step by step: 6, 2, 4.", "4", "number", "multistep/3"),
            Example("c", "Is 3407 odd?", "It ends in 7, so 3407 is odd.", "yes", "yesno", "direct/4")]


def cpu_runtime():
    return Runtime("cpu", nullcontext(), None)


# ------------------------------------------------------------------------------------------------ the loss

def test_total_loss_weighs_the_perception_loss_by_aux_weight():
    learner = Learner(student(), perception(), aux_weight=0.37)
    batch = collate(encode_items(TOK, examples(), ["pre", "post", "post"]), "cpu")
    loss, lm, aux = learner(**batch)
    assert aux > 0 and torch.allclose(loss, lm + 0.37 * aux)
    # and aux is the binary cross-entropy of the perception's logit against the example's format (post = 1)
    _, logit = perceive(learner.perception, learner.student, batch["q_ids"], batch["q_mask"], batch["features"])
    hand = -sum(math.log(torch.sigmoid(z).item()) if t == 1 else math.log(1 - torch.sigmoid(z).item())
                for z, t in zip(logit, [0, 1, 1])) / 3
    assert aux.item() == pytest.approx(hand, rel=1e-5)


# ------------------------------------------------------------------------------------------------ p(gold)

def test_answer_first_confidence_is_the_product_of_the_answer_tokens_probabilities():
    """p("Answer: <gold>\\n" | prompt), computed here token by token with one forward per token; batched and
    right-padded in the function. An answer span shifted by one token would give another number."""
    model = student(seed=3).eval()
    exs = examples()
    got = answer_first_confidence(model, TOK, exs, "cpu", batch_size=2)  # two batches, padded rows in the first
    for ex, p in zip(exs, got):
        prompt, target = encode(TOK, ex, "post")
        answer = TOK.encode(f"Answer: {ex.answer}\n")
        assert target[:len(answer)] == answer
        logp = 0.0
        with torch.no_grad():
            for j, t in enumerate(answer):
                logits, _ = model(torch.tensor([prompt + answer[:j]]))
                logp += torch.log_softmax(logits[0, -1].double(), dim=-1)[t].item()
        assert math.log(p) == pytest.approx(logp, abs=1e-3)


def trained_student(modes=("post", "pre", "post"), steps=150):
    """A student that has learned examples() by heart, in the given formats."""
    model = student(seed=4)
    batch = collate(encode_items(TOK, examples(), list(modes)), "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        _, loss = model(batch["x"], batch["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_answer_first_confidence_of_a_student_that_learned_the_answer_is_near_one():
    p = answer_first_confidence(trained_student(), TOK, examples(), "cpu")
    assert p[0] > 0.95 and p[2] > 0.95  # learned answering first
    assert p[1] < 0.05  # learned thinking first: it says "Reasoning:", not "Answer:"


# ------------------------------------------------------------------------------------------------ features

def test_question_features_follow_their_formula():
    q = "Start at 12, apply i d: result?"  # 7 words, 31 characters, 1 word with a digit
    assert question_features(q) == [math.log1p(7) / 5, math.log1p(31) / 5, math.log1p(1) / 5]
    q_ids, feats = question_inputs(TOK, "  Is   3407\n odd? ")  # whitespace normalised first
    assert feats == [math.log1p(3) / 5, math.log1p(12) / 5, math.log1p(1) / 5]
    assert TOK.decode(q_ids) == "Is 3407 odd?"


# ------------------------------------------------------------------------------------------------ lr

def test_lr_schedule_values():
    cfg = SimpleNamespace(lr=1.0, min_lr=0.1, warmup_iters=4)
    iters = 14
    lrs = [lr_at(cfg, it, iters) for it in range(iters + 1)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # linear warmup, reaching lr at step warmup - 1
    assert lrs[4] == pytest.approx(1.0)  # the cosine starts at the peak
    assert lrs[9] == pytest.approx(0.55)  # halfway through the decay: halfway between lr and min_lr
    # the last step (it = iters - 1) is one step short of the end of the cosine, which reaches min_lr at it = iters
    assert lrs[13] == pytest.approx(0.1 + 0.5 * (1 + math.cos(math.pi * 9 / 10)) * 0.9)
    assert lrs[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # decays monotonically
    assert lr_at(cfg, 100, iters) == pytest.approx(0.1)  # and stays at min_lr beyond the end


def test_train_uses_the_schedule_at_every_step():
    cfg = parse_args(tiny_args("unused", "--warmup_iters=2", "--lr=0.02", "--min_lr=0.002"))
    seen = []
    model = Learner(student(), None)
    items = encode_items(TOK, examples(), ["pre"] * 3)
    train(model, make_optimizer(cfg, model, "cpu"), items, cfg, cpu_runtime(),
          Steps(6, seed=0, on_step=lambda it, lr, *_: seen.append(lr)))
    assert seen == [lr_at(cfg, it, 6) for it in range(6)]


# ------------------------------------------------------------------------------------------------ optimiser

def test_weight_decay_shrinks_matrices_only():
    """With zero gradients, one AdamW step only decays: every matrix shrinks by (1 - lr * weight_decay), while
    biases and LayerNorm gains and shifts keep their values."""
    cfg = SimpleNamespace(lr=0.1, weight_decay=0.5, beta1=0.9, beta2=0.99)
    model = Learner(student(), perception(), aux_weight=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(cfg, model, "cpu")
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    n_matrices = n_vectors = 0
    for n, p in model.named_parameters():
        if p.dim() >= 2:
            n_matrices += 1
            assert torch.allclose(p, before[n] * (1 - 0.1 * 0.5)), n
        else:
            n_vectors += 1
            assert torch.equal(p, before[n]), n
    assert n_matrices and n_vectors and any(".ln_" in n or "ln_f" in n for n in before)


def test_gradient_clipping_caps_the_global_norm_of_the_update():
    """One SGD step at lr 1 moves the weights by exactly the (clipped) gradient: its global norm is grad_clip."""
    items = encode_items(TOK, examples(), ["pre", "post", "pre"])

    def update_norm(grad_clip):
        model = Learner(student(), None)
        before = [p.detach().clone() for p in model.parameters()]
        cfg = SimpleNamespace(batch_size=3, grad_accum=1, length_batches=False, aux_weight=0.0, grad_clip=grad_clip,
                              lr=1.0, min_lr=1.0, warmup_iters=0)
        train(model, torch.optim.SGD(model.parameters(), lr=1.0), items, cfg, cpu_runtime(), Steps(1, seed=0))
        return torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before))).item()

    raw = update_norm(0.0)
    assert raw > 0.05  # the gradient is larger than the clip below, so clipping has work to do
    assert update_norm(0.01) == pytest.approx(0.01, rel=1e-3)


def test_freeze_student_trains_only_the_perception(tmp_path, data_dir):
    cfg = parse_args(tiny_args(tmp_path, f"--data_dir={data_dir}", "--freeze_student", "--max_iters=3"))
    train_set, _, _ = mdata.load_data(cfg, TOK)
    rt = runtime.setup(cfg)
    torch.manual_seed(7)
    fresh = runs.build_student(cfg, TOK.vocab_size).state_dict()
    st, perc = runs.train_run(cfg, rt, TOK, train_set, ["post"] * len(train_set), str(tmp_path / "c.pt"),
                              atm=True, iters=3, seed=7, show=False)
    for k, v in st.state_dict().items():
        assert torch.equal(v, fresh[k]), k
    torch.manual_seed(7)
    runs.build_student(cfg, TOK.vocab_size)  # the same draws as train_run's, then the perception's
    fresh_perc = Perception(cfg.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads)
    assert not torch.equal(perc.queries, fresh_perc.queries)  # the perception did train


def test_compiled_model_takes_the_same_steps(tmp_path, data_dir, monkeypatch):
    """--compile wraps the Learner in torch.compile; on the CPU we compile with the "eager" backend (TorchDynamo
    traces the forward, nothing is code-generated), which must not change a single weight."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real(model, backend="eager"))
    out = {}
    for compiled in (False, True):
        cfg = parse_args(tiny_args(tmp_path / str(compiled), f"--data_dir={data_dir}", f"--compile={compiled}"))
        train_set, _, _ = mdata.load_data(cfg, TOK)
        st, perc = runs.train_run(cfg, runtime.setup(cfg), TOK, train_set[:16], ["post", "pre"] * 8,
                                  str(tmp_path / f"{compiled}.pt"), atm=True, iters=3, seed=2, show=False)
        out[compiled] = {**st.state_dict(), **perc.state_dict()}
    for k in out[False]:
        assert torch.allclose(out[False][k], out[True][k], atol=1e-6), k
    torch._dynamo.reset()


# ------------------------------------------------------------------------------------------------ generation

def test_sampling_draws_from_the_tempered_top_k_distribution():
    """The first sampled token is exactly torch.multinomial on softmax(top-k logits / temperature), drawn with
    the same generator state."""
    model = student(seed=5).eval()
    idx = torch.tensor([TOK.encode("Q: Is 21 odd?\n")] * 64)
    with torch.no_grad():
        logits = model(idx[:1])[0][0, -1] / 0.7
    v, _ = torch.topk(logits, 5)
    logits[logits < v[-1]] = -float("inf")
    want = torch.multinomial(F.softmax(logits, dim=-1).expand(64, -1), 1,
                             generator=torch.Generator().manual_seed(11)).squeeze(1).tolist()
    got = engine.generate(model, idx, GenSettings(1, temperature=0.7, top_k=5,
                                                  generator=torch.Generator().manual_seed(11)))
    assert [o[0] for o in got] == want
    other = engine.generate(model, idx, GenSettings(1, temperature=3.0, top_k=50,
                                                    generator=torch.Generator().manual_seed(11)))
    assert [o[0] for o in other] != want  # temperature and top_k change the draws


def test_generation_feeds_the_soft_prompt_to_the_student(monkeypatch):
    """generate_texts with a perception hands the student, for each question, the soft prompt the perception
    writes for that question (and without a perception, none)."""
    model, perc = student(seed=6).eval(), perception().eval()
    questions = [ex.question for ex in examples()]
    received, real = [], engine.generate

    def spy(student, idx, settings, prefix_embeds=None, pad_mask=None):
        received.append(prefix_embeds)
        return real(student, idx, settings, prefix_embeds, pad_mask)

    monkeypatch.setattr(engine, "generate", spy)
    got = generate_texts(model, TOK, questions, Answering("cpu", 1, 4), perception=perc)
    order = sorted(range(3), key=lambda i: len(questions[i]))  # generate_texts batches similar lengths together
    with torch.no_grad():
        for i, prefix in zip(order, received):
            q_ids, feats = question_inputs(TOK, questions[i])
            want, logit = perceive(perc, model, *perception_inputs([q_ids], [feats], "cpu"))
            assert prefix is not None and torch.allclose(prefix, want)
            assert got[i]["p_post"] == pytest.approx(torch.sigmoid(logit[0]).item())
    received.clear()
    generate_texts(model, TOK, questions, Answering("cpu", 1, 4))
    assert received == [None] * 3


# ------------------------------------------------------------------------------------------------ k-fold

def test_fold_students_never_train_on_their_held_out_questions():
    cfg = parse_args(["--folds=3", "--seed=5"])
    train_set = [None] * 20
    jobs = T.fold_students(cfg, train_set)
    folds = fold_ids(20, 3, 5)
    assert [j.name for j in jobs] == [f"fold {k}/3 {m}" for k in (1, 2, 3) for m in ("pre", "post")]
    for j in jobs:
        k = int(j.name.split()[1].split("/")[0]) - 1
        assert j.held_out == [i for i in range(20) if folds[i] == k]
        assert j.fit == [i for i in range(20) if folds[i] != k]  # everything else, nothing held out
        assert j.modes == [j.mode] * len(j.fit) and j.iters == cfg.fold_iters
    # every question is held out exactly once
    assert sorted(i for j in jobs[::2] for i in j.held_out) == list(range(20))
    # a fold's pre and post students start from the same seed (they differ only in the format they learn); folds
    # get seeds of their own, none the compared students' (cfg.seed), and all move with cfg.seed
    seeds = [j.seed for j in jobs]
    assert seeds[0::2] == seeds[1::2] and len(set(seeds[0::2])) == 3 and cfg.seed not in seeds
    other = [j.seed for j in T.fold_students(parse_args(["--folds=3", "--seed=6"]), train_set)]
    assert not set(other) & set(seeds)


def test_fold_students_are_trained_on_their_fit_set_only(tmp_path, data_dir, monkeypatch):
    """In a real run: what each fold student is trained on and what it answers are disjoint and cover the set."""
    seen = {}
    real = T.trained

    def spy(cfg, job, examples, rt, tok, show=True):
        seen[job.name] = [ex.id for ex in examples]
        return real(cfg, job, examples, rt, tok, show)

    monkeypatch.setattr(T, "trained", spy)
    out = tmp_path / "run"
    T.main(tiny_args(out, f"--data_dir={data_dir}", "--baselines=false", "--max_iters=2", "--fold_iters=2",
                     "--max_test=4"))
    cfg = parse_args(tiny_args(out, f"--data_dir={data_dir}"))
    train_set, _, _ = mdata.load_data(cfg, TOK)
    ids = [ex.id for ex in train_set]
    for job in T.fold_students(cfg, train_set):
        cache = json.loads(open(job.cache).read())
        answered = {ids[i] for i in cache["held_out"]}
        assert set(seen[job.name]).isdisjoint(answered) and set(seen[job.name]) | answered == set(ids)
    assert seen["atm"] == ids


def write_evidence(cfg, train_set, seed=0):
    """Fold caches with made-up evidence that covers every case of the label rules; returns it by question id."""
    g = torch.Generator().manual_seed(seed)
    truth = {}
    os.makedirs(os.path.join(cfg.out_dir, "folds"), exist_ok=True)
    for job in T.fold_students(cfg, train_set):
        n = len(job.held_out)
        correct = (torch.rand(n, generator=g) < 0.5).tolist()
        p_gold = torch.rand(n, generator=g).tolist() if job.mode == "post" else None
        write_json(job.cache, {"held_out": job.held_out, "correct": correct, "p_gold": p_gold})
        for j, i in enumerate(job.held_out):
            row = truth.setdefault(train_set[i].id, {})
            row[f"{job.mode}_ok"] = correct[j]
            if p_gold is not None:
                row["p_gold"] = p_gold[j]
    return truth


@pytest.mark.parametrize("rule", ["confident_post", "prefer_post", "prefer_pre"])
def test_labels_json_rows_follow_the_rule_from_their_own_evidence(tmp_path, data_dir, rule):
    """Evidence in the fold caches -> labels.json: every row records its question's own evidence, and its label is
    label(...) of that evidence under the run's rule and thresholds."""
    out = tmp_path / "run"
    args = tiny_args(out, f"--data_dir={data_dir}", "--baselines=false", "--max_iters=2", "--max_test=4",
                     f"--label_rule={rule}", "--post_confidence=0.6", "--label_default=post", "--resume")
    cfg = parse_args(args)
    train_set, _, _ = mdata.load_data(cfg, TOK)
    truth = write_evidence(cfg, train_set)
    T.main(args)
    rows = json.loads((out / "labels.json").read_text())
    assert list(rows) == [ex.id for ex in train_set]
    for qid, row in rows.items():
        ev = truth[qid]
        assert (row["pre_ok"], row["post_ok"], row["p_gold"]) == (ev["pre_ok"], ev["post_ok"], ev["p_gold"])
        assert row["label"] == labeller(cfg)(ev), qid
        if rule == "confident_post":
            assert row["label"] == label(ev["pre_ok"], ev["post_ok"], ev["p_gold"], 0.6, "post"), qid
    assert {r["label"] for r in rows.values()} == {"pre", "post"}
