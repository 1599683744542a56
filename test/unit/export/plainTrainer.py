"""A plain Hugging Face Trainer + PEFT run (no LoRA Lab code): what a user's own script leaves on disk.

Usage: plainTrainer.py MODEL_DIR TEXT_FILE OUT_DIR STEPS. Trains LoRA on q_proj/v_proj of the model with
byte windows of 32, saving checkpoint-N/ every 2 steps and evaluating every 3; ends with save_model
and save_state, as the transformers example scripts do.
"""
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

model_dir, text_file, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
set_seed(0)
ids = list(open(text_file, encoding="utf-8").read().encode("utf-8"))
windows = [ids[i:i + 32] for i in range(0, len(ids) - 32, 32)]


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        t = torch.tensor(self.rows[i])
        return {"input_ids": t, "labels": t}


model = AutoModelForCausalLM.from_pretrained(model_dir)
model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=4, learning_rate=3e-3, logging_steps=1,
                         save_steps=2, evaluation_strategy="steps", eval_steps=3, use_cpu=True, report_to=[], disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=Rows(windows[:-4]), eval_dataset=Rows(windows[-4:]))
trainer.train()
trainer.save_model(out)
trainer.save_state()
