"""MILAN in PyTorch, for `trainer bench --model --vs-pytorch`: the same model, dimensions,
hoisting and batch sizes as model/src/model.rs and model/src/decoding.rs, timed the same way.

Written for this project (not the reference's code): a captioner p(d|E) with additive attention
over the exemplar features and a gated, attended feature fed to an LSTM cell; a two-layer LSTM
language model p(d); AdamW training steps; greedy decoding; AllenNLP-style beam search (finished
hypotheses stay in the beam) with the language model scoring every final hypothesis in one pass,
then PMI reranking.

What is computed once rather than per step, on both sides: the features' attention projection,
the token embeddings of a teacher-forced batch, and the output projection and log-softmax of all
steps (one matrix product over [B * T, H]). The language model is torch.nn.LSTM (one fused call
per layer over the sequence), as a PyTorch user would write it and as the reference does.

Prints one JSON object: steps/s of the captioner (batch 64) and the LM (batch 128), neurons/s of
greedy decoding (64 neurons) and beam 50 + PMI (16 neurons), and the torch version and threads.
"""

import argparse
import json
import os
import time

import torch
from torch import nn
import torch.nn.functional as F

PAD, START, STOP = 0, 1, 2


def batch(n, vocab):
    """The bench's token batch: <start>, 14 tokens, <stop> (as bench_model.rs builds it)."""
    rows = []
    for i in range(n):
        rows.append([START] + [4 + (i * 31 + t * 17) % (vocab - 4) for t in range(14)] + [STOP])
    return torch.tensor(rows, dtype=torch.long)


class Captioner(nn.Module):
    def __init__(self, d, vocab, e=128, h=512, a=512, dropout=0.5, max_tokens=15):
        super().__init__()
        self.init_h = nn.Linear(d, h)
        self.init_c = nn.Linear(d, h)
        self.attend_features = nn.Linear(d, a)
        self.attend_hidden = nn.Linear(h, a)
        self.attend_score = nn.Linear(a, 1)
        self.gate = nn.Linear(h, d)
        self.embedding = nn.Embedding(vocab, e)
        self.lstm = nn.LSTMCell(e + d, h)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(h, vocab)
        self.max_tokens = max_tokens

    def encode(self, features):
        mean = features.mean(1)
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        return (features, self.attend_features(features)), state

    def cell(self, encoded, state, embedded):
        """One step from embedded tokens [B, E]: the new state and the attention [B, K]."""
        features, projected = encoded
        h, c = state
        scores = self.attend_score(torch.tanh(projected + self.attend_hidden(h)[:, None])).squeeze(2)
        alpha = torch.softmax(scores, 1)
        attended = torch.bmm(alpha[:, None], features).squeeze(1)
        gated = torch.sigmoid(self.gate(h)) * attended
        h, c = self.lstm(torch.cat([embedded, gated], 1), (h, c))
        return (h, c), alpha

    def step(self, encoded, state, tokens):
        state, alpha = self.cell(encoded, state, self.embedding(tokens))
        return torch.log_softmax(self.output(self.dropout(state[0])), 1), state

    def loss(self, features, tokens, attention_weight=1.0):
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        encoded, state = self.encode(features)
        embedded = self.embedding(inputs)
        hs, alphas = [], []
        for t in range(inputs.shape[1]):
            state, alpha = self.cell(encoded, state, embedded[:, t])
            hs.append(state[0])
            alphas.append(alpha)
        hs = torch.stack(hs, 1)
        log_probs = torch.log_softmax(self.output(self.dropout(hs)), 2)
        mask = (targets != PAD).float()
        picked = log_probs.gather(2, targets[:, :, None]).squeeze(2)
        nll = -(picked * mask).sum() / mask.sum()
        attended = (torch.stack(alphas, 1) * mask[:, :, None]).sum(1)
        return nll + attention_weight * ((1 - attended) ** 2).mean()


class LanguageModel(nn.Module):
    def __init__(self, vocab, e=128, h=512, layers=2, dropout=0.5):
        super().__init__()
        self.embedding = nn.Embedding(vocab, e)
        self.lstm = nn.LSTM(e, h, num_layers=layers, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(h, vocab)

    def log_probs(self, inputs):
        out, _ = self.lstm(self.embedding(inputs))
        return torch.log_softmax(self.output(self.dropout(out)), 2)

    def loss(self, tokens):
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        picked = self.log_probs(inputs).gather(2, targets[:, :, None]).squeeze(2)
        mask = (targets != PAD).float()
        return -(picked * mask).sum() / mask.sum()

    def sequence_log_probs(self, tokens):
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        picked = self.log_probs(inputs).gather(2, targets[:, :, None]).squeeze(2)
        return (picked * (targets != PAD).float()).sum(1)


def generable_mask(vocab):
    mask = torch.zeros(vocab)
    mask[PAD] = float("-inf")
    mask[START] = float("-inf")
    return mask


@torch.no_grad()
def greedy(captioner, features):
    n = features.shape[0]
    encoded, state = captioner.encode(features)
    tokens = torch.full((n,), START, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    out = []
    mask = None
    for _ in range(captioner.max_tokens):
        log_probs, state = captioner.step(encoded, state, tokens)
        if mask is None:
            mask = generable_mask(log_probs.shape[1])
        tokens = (log_probs + mask).argmax(1)
        out.append(tokens)
        done |= tokens == STOP
        if bool(done.all()):
            break
    return torch.stack(out, 1)


@torch.no_grad()
def beam_pmi(captioner, lm, features, beam=50, lam=0.2):
    """AllenNLP's beam (finished hypotheses keep their slot and score), every neuron of the batch
    at once; then log p(d) of all n * beam final hypotheses in one LM pass, and PMI's pick."""
    n = features.shape[0]
    (feats, projected), (h, c) = captioner.encode(features)
    tokens = torch.full((n,), START, dtype=torch.long)
    log_probs, (h, c) = captioner.step((feats, projected), (h, c), tokens)
    v = log_probs.shape[1]
    mask = generable_mask(v)
    scores, tokens = (log_probs + mask).topk(beam, 1)  # [n, beam]
    history = tokens[:, :, None]
    finished = tokens == STOP
    rows = torch.arange(n).repeat_interleave(beam)
    h, c = h[rows], c[rows]
    encoded = (feats[rows], projected[rows])
    stay = torch.full((v,), float("-inf"))
    stay[STOP] = 0.0
    for _ in range(captioner.max_tokens - 1):
        if bool(finished.all()):
            break
        log_probs, (h, c) = captioner.step(encoded, (h, c), tokens.reshape(-1))
        log_probs = (log_probs + mask).reshape(n, beam, v)
        # A finished hypothesis can only stay as it is, at its score.
        log_probs = torch.where(finished[:, :, None], stay, log_probs)
        scores, flat = (scores[:, :, None] + log_probs).reshape(n, beam * v).topk(beam, 1)
        parent, tokens = flat // v, flat % v
        was_finished = finished.gather(1, parent)
        history = torch.cat([history.gather(1, parent[:, :, None].expand_as(history)),
                             tokens[:, :, None]], 2)
        finished = was_finished | (tokens == STOP)
        pick = (torch.arange(n)[:, None] * beam + parent).reshape(-1)
        h, c = h[pick], c[pick]
    # Tokens after a hypothesis's stop become padding; the LM scores <start> + the hypothesis.
    ended = (history == STOP).long().cumsum(2) - (history == STOP).long() > 0
    sequences = history.masked_fill(ended, PAD).reshape(n * beam, -1)
    starts = torch.full((n * beam, 1), START, dtype=torch.long)
    prior = lm.sequence_log_probs(torch.cat([starts, sequences], 1)).reshape(n, beam)
    return (scores - lam * prior).argmax(1)


def timed(steps, fn):
    """Steps per second from the median of `steps` timed steps (as bench_model.rs times them):
    a step slowed by something else on the machine moves the median less than the mean."""
    fn()  # untimed warm-up
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    return 1.0 / median


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    d, k, vocab = 3904, 15, 1000

    captioner = Captioner(d, vocab)
    lm = LanguageModel(vocab)
    features = torch.randn(64, k, d)
    tokens = batch(64, vocab)
    opt = torch.optim.AdamW(captioner.parameters(), lr=1e-3, weight_decay=0.01)

    def captioner_step():
        opt.zero_grad(set_to_none=True)
        captioner.loss(features, tokens).backward()
        opt.step()

    captioner.train()
    cap_rate = timed(args.steps, captioner_step)

    lm_tokens = batch(128, vocab)
    lm_opt = torch.optim.AdamW(lm.parameters(), lr=1e-3, weight_decay=0.01)

    def lm_step():
        lm_opt.zero_grad(set_to_none=True)
        lm.loss(lm_tokens).backward()
        lm_opt.step()

    lm.train()
    lm_rate = timed(args.steps, lm_step)

    captioner.eval()
    lm.eval()
    infer = torch.randn(64, k, d)
    started = time.perf_counter()
    greedy(captioner, infer)
    greedy_rate = 64 / (time.perf_counter() - started)
    started = time.perf_counter()
    beam_pmi(captioner, lm, infer[:16])
    pmi_rate = 16 / (time.perf_counter() - started)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "rates": [cap_rate, lm_rate, greedy_rate, pmi_rate],
    }))


if __name__ == "__main__":
    main()
