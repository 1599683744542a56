"""PyTorch reference for `npm run bench`: the SAME computations as test/bench/workloads.ts.

Reads one JSON object on stdin: {"threads": n, "workloads": [WorkloadSpec, ...], "minSteps", "minMs"}
and prints one JSON object: {"torch": version, "threads": n, "results": [{"name", "msPerStep", "steps"}]}.
A step is forward + backward + Adam on the trainable (LoRA) parameters, as in PEFT.
Run with the Debian interpreter (/usr/bin/python3 + python3-torch); the bench says so when it is missing.
"""
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def lora_linear(x, w, b, a, bb, scaling):
    # y = x W^T + b + s (x A^T) B^T, factored as in PEFT's lora.Linear
    y = F.linear(x, w, b)
    if a is not None:
        y = y + F.linear(F.linear(x, a), bb) * scaling
    return y


class Model:
    def __init__(self, spec, full_finetune=False):
        g = torch.Generator().manual_seed(1234)
        self.spec = spec
        d, r = spec["dModel"], spec["r"]
        self.scaling = spec["alpha"] / r
        H, kvH = spec["heads"], spec["kvHeads"]
        dh = d // H
        self.params = []
        self.trainable = []

        def p(*shape, std=0.02, train=False):
            t = torch.randn(*shape, generator=g) * std
            t.requires_grad_(train or full_finetune)
            if train or full_finetune:
                self.trainable.append(t)
            return t

        def z(*shape, train=False):
            t = torch.zeros(*shape)
            t.requires_grad_(train or full_finetune)
            if train or full_finetune:
                self.trainable.append(t)
            return t

        def lin(out_f, in_f, target):
            lora = (target in spec["loraTargets"]) and not full_finetune
            return {
                "w": p(out_f, in_f),
                "b": z(out_f) if spec["bias"] else None,
                "A": p(r, in_f, std=1 / math.sqrt(in_f), train=True) if lora else None,
                # B is non-zero so that the LoRA path carries gradient to A from step 1
                "B": p(out_f, r, train=True) if lora else None,
            }

        self.layers = []
        for _ in range(spec["layers"]):
            L = {
                "q": lin(H * dh, d, "q"),
                "k": lin(kvH * dh, d, "k"),
                "v": lin(kvH * dh, d, "v"),
                "o": lin(d, H * dh, "o"),
            }
            if spec["mlp"] == "gelu":
                L["up"] = lin(spec["ffn"], d, "up")
                L["down"] = lin(d, spec["ffn"], "down")
            else:
                L["gate"] = lin(spec["ffn"], d, "gate")
                L["up"] = lin(spec["ffn"], d, "up")
                L["down"] = lin(d, spec["ffn"], "down")
            if spec["norm"] != "none":
                L["n1"] = (z(d) + 1).detach().requires_grad_(full_finetune)
                L["n2"] = (z(d) + 1).detach().requires_grad_(full_finetune)
                if full_finetune:
                    self.trainable += [L["n1"], L["n2"]]
            self.layers.append(L)
        T = spec["seq"]
        self.mask = torch.triu(torch.full((T, T), -1e9), diagonal=1)
        if spec["rope"]:
            inv = 1.0 / (10000.0 ** (torch.arange(0, dh, 2).float() / dh))
            freqs = torch.outer(torch.arange(T).float(), inv)
            emb = torch.cat([freqs, freqs], dim=-1)
            self.cos, self.sin = emb.cos(), emb.sin()
        V = spec.get("vocab")
        if V:
            self.emb = p(V, d)
            self.lm_head = p(V, d)
            self.final_norm = (z(d) + 1).detach()
            self.ids = torch.randint(0, V, (spec["batch"], T), generator=g)
            self.labels = torch.randint(0, V, (spec["batch"] * T,), generator=g)
        else:
            self.x = torch.randn(spec["batch"], T, d, generator=g)
            self.target = torch.randn(spec["batch"], T, d, generator=g)

    def norm(self, x, w):
        kind = self.spec["norm"]
        if kind == "layernorm":
            return F.layer_norm(x, (x.shape[-1],), w, None, 1e-5)
        if kind == "rmsnorm":
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
        return x

    def L(self, x, m):
        return lora_linear(x, m["w"], m["b"], m["A"], m["B"], self.scaling)

    def rope(self, t):
        h = t.shape[-1] // 2
        rot = torch.cat([-t[..., h:], t[..., :h]], dim=-1)
        return t * self.cos + rot * self.sin

    def block(self, x, L):
        s = self.spec
        B, T, d = x.shape
        H, kvH = s["heads"], s["kvHeads"]
        dh = d // H
        h = self.norm(x, L.get("n1"))
        q = self.L(h, L["q"]).view(B, T, H, dh).transpose(1, 2)      # [B, H, T, dh]
        k = self.L(h, L["k"]).view(B, T, kvH, dh).transpose(1, 2)    # [B, kvH, T, dh]
        v = self.L(h, L["v"]).view(B, T, kvH, dh).transpose(1, 2)
        if s["rope"]:
            q, k = self.rope(q), self.rope(k)
        if kvH != H:
            k = k.repeat_interleave(H // kvH, dim=1)
            v = v.repeat_interleave(H // kvH, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh)) + self.mask  # [B, H, T, T]
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, d)
        x = x + self.L(y, L["o"])
        h = self.norm(x, L.get("n2"))
        if s["mlp"] == "gelu":
            m = self.L(F.gelu(self.L(h, L["up"]), approximate="tanh"), L["down"])
        else:
            m = self.L(F.silu(self.L(h, L["gate"])) * self.L(h, L["up"]), L["down"])
        return x + m

    def loss(self):
        s = self.spec
        x = F.embedding(self.ids, self.emb) if s.get("vocab") else self.x
        for L in self.layers:
            x = self.block(x, L)
        if s.get("vocab"):
            x = self.norm(x, self.final_norm)
            logits = F.linear(x, self.lm_head).view(-1, s["vocab"])
            return F.cross_entropy(logits, self.labels)
        return ((x - self.target) ** 2).mean()


def lora_linear_workload(spec):
    """Workload (a): one LoRA linear, MSE loss against a fixed target."""
    g = torch.Generator().manual_seed(1234)
    d, k, r, n = spec["d"], spec["k"], spec["r"], spec["batch"]
    w = torch.randn(k, d, generator=g) * 0.02
    b = torch.zeros(k)
    A = (torch.randn(r, d, generator=g) / math.sqrt(d)).requires_grad_(True)
    Bm = (torch.randn(k, r, generator=g) * 0.02).requires_grad_(True)
    x = torch.randn(n, d, generator=g)
    t = torch.randn(n, k, generator=g)
    s = spec["alpha"] / r
    return [A, Bm], lambda: ((lora_linear(x, w, b, A, Bm, s) - t) ** 2).mean()


def time_steps(params, loss_fn, min_steps, min_ms, warmup=2):
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    times = []
    cpu = []
    start = time.perf_counter()
    while len(times) < min_steps or (time.perf_counter() - start) * 1000 < min_ms:
        t0 = time.perf_counter()
        c0 = time.process_time()
        step()
        cpu.append((time.process_time() - c0) * 1000)
        times.append((time.perf_counter() - t0) * 1000)
        if len(times) >= 200:
            break
    return statistics.median(times), min(times), statistics.median(cpu), len(times)


def main():
    req = json.load(sys.stdin)
    torch.set_num_threads(int(req["threads"]))
    out = []
    for spec in req["workloads"]:
        if spec["kind"] == "lora-linear":
            params, fn = lora_linear_workload(spec)
        else:
            m = Model(spec, full_finetune=spec.get("fullFinetune", False))
            params, fn = m.trainable, m.loss
        ms, best, cpu, n = time_steps(params, fn, req.get("minSteps", 5), req.get("minMs", 1500))
        out.append({"name": spec["name"], "msPerStep": ms, "msMin": best, "cpuMsPerStep": cpu, "steps": n})
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
