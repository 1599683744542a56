# The real PEFT side of the round-trip suite (peftRoundTrip.test.ts), run with ../shared/pystack/python
# (transformers 4.39, PEFT 0.13.2 on Debian's python3-torch). Three commands, each one process:
#
#   bases OUT EXAMPLES        float32 copies of the tiny example models (OUT/base-llama, OUT/base-gpt2)
#   make OUT                  adapters saved by PEFT for every feature the suite covers (OUT/peft/<case>/adapter),
#                             with PEFT's logits on the probe ids and its merge_and_unload (reference.json,
#                             merged.safetensors); what PEFT needs to rebuild a case at load time goes in case.json
#   check OUT CASES.json      LoRA Lab's adapters loaded with PeftModel.from_pretrained: missing / unexpected keys,
#                             logits and merge_and_unload; and LoRA Lab's merged folders loaded by transformers
#                             (missing / unexpected keys)
#
# Every adapter is made here at test time from fixed seeds: no binary fixtures.
import json
import os
import sys
import warnings

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from peft.utils import load_peft_weights

warnings.filterwarnings("ignore")
torch.manual_seed(0)
torch.set_num_threads(1)

PROBE = [[int(x) for x in row] for row in torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))]


def load(path):
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()


def logits(model, ids=PROBE):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.reshape(-1).tolist()


def save_state(model, file):
    # Tied weights share storage; every tensor is written on its own.
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, file, metadata={"format": "pt"})


def bases(out, examples):
    for name, src in (("base-llama", "tiny-llama"), ("base-gpt2", "tiny-gpt2")):
        load(os.path.join(examples, src)).save_pretrained(os.path.join(out, name), safe_serialization=True)


def perturb(model, seed, what=("lora_",)):
    """Trained-looking adapter weights: every trainable tensor (and the named ones) moved off its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad or any(w in n for w in what):
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


# name -> (base, LoraConfig kwargs, extra): the PEFT features LoRA Lab must read.
CASES = {
    "llama-plain": ("llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), {}),
    "llama-rslora-all-linear": ("llama", dict(r=4, lora_alpha=8, use_rslora=True, target_modules="all-linear"), {}),
    "llama-dora": ("llama", dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), {}),
    "gpt2-conv1d-dora": ("gpt2", dict(r=4, lora_alpha=8, use_dora=True, fan_in_fan_out=True, target_modules=["c_attn", "c_fc"]), {}),
    "gpt2-bias-all": ("gpt2", dict(r=4, lora_alpha=8, bias="all", fan_in_fan_out=True, target_modules=["c_attn", "c_fc"]), {"bias": True}),
    "llama-pissa": ("llama", dict(r=4, lora_alpha=8, init_lora_weights="pissa", target_modules=["q_proj", "v_proj", "up_proj"]), {}),
    "llama-olora": ("llama", dict(r=4, lora_alpha=16, init_lora_weights="olora", target_modules=["q_proj", "o_proj", "down_proj"]), {}),
    "llama-embed-lm-head": ("llama", dict(r=4, lora_alpha=8, target_modules=["embed_tokens", "lm_head", "q_proj"]), {}),
    "llama-resized-vocab": ("llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), {"vocab": 272}),
    # PEFT 0.13's matching: a "^" key never matches; the first key over rank then alpha keys picks both values
    # (layer 1's q_proj: rank key "layers\.1…" wins, so its alpha is lora_alpha, not alpha_pattern's q_proj 24).
    "llama-rank-pattern-0.13": ("llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], rank_pattern={"^model.layers.0.*q_proj": 8, "layers\\.1\\.self_attn\\.q_proj": 2}, alpha_pattern={"v_proj": 32, "q_proj": 24}), {}),
    # The same "^"-anchored key with the saving version named: it pins PEFT 0.13's matching (rank 4 everywhere).
    "llama-rank-pattern-peft-version": ("llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], rank_pattern={"^model.layers.0.*q_proj": 8, "layers\\.1\\.self_attn\\.q_proj": 2}), {"peft_version": "0.13.2"}),
    "llama-modules-to-save": ("llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"]), {}),
    # GPT-2 ties lm_head to wte; modules_to_save trains an untied copy of lm_head.
    "gpt2-modules-to-save-tied-lm-head": ("gpt2", dict(r=4, lora_alpha=8, fan_in_fan_out=True, target_modules=["c_attn"], modules_to_save=["lm_head"]), {}),
    "llama-regex-targets": ("llama", dict(r=3, lora_alpha=6, target_modules=r".*\.layers\.1\..*(q|v|down)_proj"), {}),
    "gpt2-layers-to-transform": ("gpt2", dict(r=2, lora_alpha=4, fan_in_fan_out=True, target_modules=["c_attn", "c_proj"], layers_to_transform=[1]), {}),
}


def make(out):
    summary = {}
    for i, (name, (arch, kwargs, extra)) in enumerate(CASES.items()):
        base_dir = os.path.join(out, f"base-{arch}")
        case_dir = os.path.join(out, "peft", name)
        os.makedirs(case_dir, exist_ok=True)
        torch.manual_seed(100 + i)
        model = load(base_dir)
        if "vocab" in extra:
            model.resize_token_embeddings(extra["vocab"])
            with torch.no_grad():
                model.get_input_embeddings().weight[256:].normal_(0, 0.02)
                model.get_output_embeddings().weight[256:].normal_(0, 0.02)
        config = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **kwargs)
        peft_model = get_peft_model(model, config)
        perturb(peft_model, 200 + i, ("lora_", "bias") if extra.get("bias") else ("lora_",))
        peft_model.eval()
        # The resized vocabulary's rows are part of the fine-tuned model; PEFT saves the tables (base_model_name_or_path has config.json).
        peft_model.save_pretrained(os.path.join(case_dir, "adapter"), safe_serialization=True)
        ref = {"probe": PROBE, "logits": logits(peft_model)}
        # What loading gives (PEFT re-runs PiSSA/OLoRA on a fresh base): the reference LoRA Lab must meet.
        fresh = load(base_dir)
        if "vocab" in extra:
            fresh.resize_token_embeddings(extra["vocab"])
        loaded = PeftModel.from_pretrained(fresh, os.path.join(case_dir, "adapter")).eval()
        ref["loaded_logits"] = logits(loaded)
        merged = loaded.merge_and_unload()
        ref["merged_logits"] = logits(merged)
        save_state(merged, os.path.join(case_dir, "merged.safetensors"))
        json.dump(ref, open(os.path.join(case_dir, "reference.json"), "w"))
        if "peft_version" in extra:
            # What PEFT 0.15 and later write (0.13 has no such field and refuses to load it, so added after loading).
            cfg_path = os.path.join(case_dir, "adapter", "adapter_config.json")
            cfg = json.load(open(cfg_path))
            cfg["peft_version"] = extra["peft_version"]
            json.dump(cfg, open(cfg_path, "w"), indent=2)
        summary[name] = {"base": f"base-{arch}", "saved": sorted(load_peft_weights(os.path.join(case_dir, "adapter")).keys())}
    json.dump(summary, open(os.path.join(out, "peft", "cases.json"), "w"), indent=1)


def check(out, cases_file):
    cases = json.load(open(cases_file))
    result = {}
    for i, (name, c) in enumerate(cases.items()):
        r = {}
        if "adapter" in c:
            model = load(os.path.join(out, c["base"]))
            peft_model = PeftModel.from_pretrained(model, c["adapter"]).eval()
            # The key check PEFT itself does on loading, made visible.
            load_result = set_peft_model_state_dict(peft_model, load_peft_weights(c["adapter"]))
            r["unexpected"] = list(load_result.unexpected_keys)
            r["missing"] = [k for k in load_result.missing_keys if "lora_" in k]
            r["scaling"] = sorted({float(v) for m in peft_model.modules() if hasattr(m, "scaling") and isinstance(m.scaling, dict) for v in m.scaling.values()})
            r["logits"] = logits(peft_model, c["probe"])
            merged = peft_model.merge_and_unload()
            r["merged_file"] = os.path.join(out, f"peft-merged-{i}.safetensors")
            save_state(merged, r["merged_file"])
        if "merged_dir" in c:
            m, info = AutoModelForCausalLM.from_pretrained(c["merged_dir"], torch_dtype=torch.float32, output_loading_info=True)
            r["merged_load"] = {"missing": list(info["missing_keys"]), "unexpected": list(info["unexpected_keys"]), "mismatched": [str(x) for x in info["mismatched_keys"]]}
            r["merged_dir_logits"] = logits(m.eval(), c["probe"])
        result[name] = r
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "bases":
        bases(sys.argv[2], sys.argv[3])
    elif cmd == "make":
        make(sys.argv[2])
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")
