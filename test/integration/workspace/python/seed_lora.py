import torch.nn as nn
from peft import LoraConfig

base = nn.Linear(1024, 1024)
lora = LoRALinear(1024, 1024, 4)
config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
