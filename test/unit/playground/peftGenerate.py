# Greedy generation with the real transformers + PEFT (../shared/pystack/python: transformers 4.39, PEFT 0.13.2
# on Debian's python3-torch), the reference for peftGenerate.test.ts. Reads a JSON list of cases from argv[1]:
#   {"name", "base", "adapter" (or null), "prompt_ids", "max_new_tokens"}
# and prints {"name": {"tokens": [...], "margins": [...]}}: the greedy tokens of model.generate (KV cache on,
# eos ignored) and, per step, the gap between the best and second-best logit (a near tie could flip argmax).
import json
import sys
import warnings

import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

out = {}
for case in json.load(open(sys.argv[1])):
    model = AutoModelForCausalLM.from_pretrained(case["base"], torch_dtype=torch.float32).eval()
    if case.get("adapter"):
        model = PeftModel.from_pretrained(model, case["adapter"]).eval()
    ids = torch.tensor([case["prompt_ids"]])
    with torch.no_grad():
        res = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=case["max_new_tokens"],
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
            output_scores=True,
            return_dict_in_generate=True,
        )
    tokens = res.sequences[0, ids.shape[1]:].tolist()
    margins = []
    for s in res.scores:
        top = torch.topk(s[0], 2).values
        margins.append(float(top[0] - top[1]))
    out[case["name"]] = {"tokens": tokens, "margins": margins}
print(json.dumps(out))
