"""The reference for the real-size benchmarks (e), (f): transformers + PEFT train LoRA on the same model
folder LoRA Lab trains (written by test/bench/realSize.ts), with the same LoRA config, AdamW, batch
and sequence length, on `threads` threads. Prints one JSON line: ms per step, losses, peak RSS.

Run by realSize.ts with ../shared/pystack/python; argv[1] is the request as JSON:
  {"folder": ..., "batch": 8, "seqLen": 512, "steps": 3, "r": 8, "alpha": 16,
   "targets": ["c_attn"], "threads": 1, "dtype": "float32" | "bfloat16", "checkpoint": false}
"""
import json
import resource
import sys
import time

req = json.loads(sys.argv[1])
import torch  # noqa: E402

torch.set_num_threads(int(req["threads"]))
torch.manual_seed(1)
from transformers import AutoModelForCausalLM  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

dtype = torch.bfloat16 if req.get("dtype") == "bfloat16" else torch.float32
model = AutoModelForCausalLM.from_pretrained(req["folder"], torch_dtype=dtype)
if req.get("checkpoint"):
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
model = get_peft_model(model, LoraConfig(r=req["r"], lora_alpha=req["alpha"], target_modules=req["targets"], lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.01)
g = torch.Generator().manual_seed(1)
ms, losses = [], []
for step in range(int(req["steps"])):
    ids = torch.randint(0, 256, (int(req["batch"]), int(req["seqLen"])), generator=g)
    t = time.perf_counter()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    ms.append((time.perf_counter() - t) * 1000)
    losses.append(float(out.loss))
print(json.dumps({
    "msPerStep": ms, "losses": losses, "rssPeakBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": str(dtype),
    "params": sum(p.numel() for p in model.parameters()),
}))
