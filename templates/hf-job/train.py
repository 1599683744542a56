#!/usr/bin/env python3
"""Train a LoRA Lab experiment with Hugging Face transformers' Trainer + PEFT.

Written by `lora-lab export`. The experiment itself (LoRA settings, data, optimizer, schedule, steps,
seed) is in experiment.json next to this file; the command line only says where the model is, where
the run goes and how to use the hardware:

    python train.py                              # the model path recorded at export, one process
    python train.py --model /models/llama-3-8b --output-dir runs/big
    ./launch.sh --gpus 8 -- --model /models/llama-3-8b    # several processes (see README.md)

While it trains, the output folder is a LoRA Lab run: run.json, config.json, metrics.jsonl (one line
per logged step, the same fields as LoRA Lab's own runs), checkpoints/step-N/ with the adapter in
PEFT's names at every save, and adapter/ (adapter_config.json + adapter_model.safetensors) at the end.
Open it in LoRA Lab's Runs view or with `lora-lab report DIR`. Create a file named STOP in the output
folder to end the run after the current step with a checkpoint; `--resume` continues from it.

How this matches LoRA Lab's engine, so one experiment gives one loss curve on both:
- Text windows: the dataset is tokenised (UTF-8 bytes, or the model's tokenizer.json), cut into
  non-overlapping windows of seqLen tokens and the last evalFraction of them held out.
- Data order: each update draws batchSize training windows; with an `init/` folder (export
  --init-from) the exact windows LoRA Lab draws, else a seeded draw with replacement.
- Loss: mean next-token cross-entropy over the batch (transformers' own causal-LM loss).
- Optimizer: torch's SGD / Adam / AdamW with the experiment's betas, eps and weight decay on every
  trainable tensor (LoRA Lab decays all of them; Trainer's default would skip biases).
- Schedule: LoRA Lab's warm-up lr*(u+1)/warmup (the first update is not at lr 0), then constant,
  linear or cosine decay to lr*minLrRatio at the last update.
- Clipping: torch.nn.utils.clip_grad_norm_ of the global norm, the experiment's gradClip.
- The base model's own dropout is off (LoRA Lab's models have none); LoRA dropout is PEFT's.
"""
import argparse
import inspect
import json
import math
import os
import socket
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
MIN_VERSIONS = {"torch": "1.13", "transformers": "4.39", "peft": "0.13", "accelerate": "0.34"}
# run.json is rewritten at most this often while training (each rewrite reloads an open dashboard).
INFO_EVERY_S = 5.0


def fail(msg):
    print(f"train.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def version_tuple(v):
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if digits == "":
            break
        out.append(int(digits))
    return tuple(out)


def check_stack():
    """Import the stack up front, so a missing or too old package is one clear message, not a traceback."""
    missing, old = [], []
    for name, low in MIN_VERSIONS.items():
        try:
            mod = __import__(name)
        except ImportError:
            missing.append(name)
            continue
        if version_tuple(getattr(mod, "__version__", "0")) < version_tuple(low):
            old.append(f"{name} {mod.__version__} (need >= {low})")
    if missing or old:
        what = "; ".join(([f"not installed: {', '.join(missing)}"] if missing else []) + ([f"too old: {', '.join(old)}"] if old else []))
        fail(f"{what}. Install the job's requirements with: {sys.executable} -m pip install -r {os.path.join(HERE, 'requirements.txt')}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train the exported LoRA Lab experiment with transformers' Trainer + PEFT.")
    p.add_argument("--model", help="Hugging Face model folder or hub id (default: the one recorded at export)")
    p.add_argument("--output-dir", help="run folder (default: runs/<name>-<date>-<time> next to this file)")
    p.add_argument("--max-steps", type=int, help="train this many updates instead of the experiment's training.steps")
    p.add_argument("--grad-accum", type=int, default=1, help="split each process's batch into this many micro-batches (the global batch stays batchSize)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16 on GPUs that support it, else fp16 on GPUs, fp32 on CPU")
    p.add_argument("--use-cpu", action="store_true", help="train on the CPU even when a GPU is present")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint-N in --output-dir")
    p.add_argument("--no-init", action="store_true", help="ignore init/ (LoRA Lab's initial adapter and data order); use PEFT's own seeded init")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# The run folder, in LoRA Lab's layout (src/protocol/runFormat.ts).

def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_json_atomic(path, obj):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def boot_time_ms():
    try:
        with open("/proc/uptime", encoding="ascii") as f:
            return round(time.time() * 1000 - float(f.read().split()[0]) * 1000)
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Data: the same windows as LoRA Lab (src/models/textData.ts).

def dataset_documents(text, file_name):
    if not file_name.lower().endswith(".jsonl"):
        return [text]
    docs = []
    for i, line in enumerate(text.split("\n")):
        if line.strip() == "":
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            fail(f"{file_name}:{i + 1}: not valid JSON ({e})")
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            fail(f'{file_name}:{i + 1}: expected an object with a string "text" field')
        docs.append(rec["text"])
    return docs


def make_encoder(kind, model_path):
    if kind == "bytes":
        return lambda t: list(t.encode("utf-8"))
    tok_file = os.path.join(model_path, "tokenizer.json")
    if not os.path.isfile(tok_file):
        fail(f'dataset.tokenizer is "tokenizer" but {model_path} has no tokenizer.json')
    try:
        from tokenizers import Tokenizer
    except ImportError:
        fail(f"dataset.tokenizer is \"tokenizer\": install the tokenizers package ({sys.executable} -m pip install tokenizers)")
    tok = Tokenizer.from_file(tok_file)
    return lambda t: tok.encode(t, add_special_tokens=False).ids


def make_windows(ids, seq_len, eval_fraction, file_name):
    n = len(ids) // seq_len
    windows = [ids[i * seq_len:(i + 1) * seq_len] for i in range(n)]
    n_eval = max(1, round_half_up(n * eval_fraction)) if eval_fraction > 0 else 0
    if n - n_eval < 1:
        fail(f"{file_name}: {len(ids)} tokens make {n} window(s) of {seq_len}; need at least {n_eval + 1}. Use more text or a shorter seqLen")
    return windows[:n - n_eval], windows[n - n_eval:]


def round_half_up(x):
    # JavaScript's Math.round (LoRA Lab's), not Python's banker's rounding.
    return int(math.floor(x + 0.5))


# ---------------------------------------------------------------------------------------------
# Schedule: LoRA Lab's lrAt (src/engine/schedule.ts) as a multiplier of the peak lr.

def lr_multiplier(schedule, total_steps):
    name, warmup, m = schedule["name"], schedule["warmupSteps"], schedule["minLrRatio"]

    def f(u):
        if warmup > 0 and u < warmup:
            return (u + 1) / warmup
        if name == "constant":
            return 1.0
        span = max(1, total_steps - 1 - warmup)
        p = min(1.0, max(0.0, (u - warmup) / span))
        if name == "linear":
            return 1 - p * (1 - m)
        return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p))

    return f


def eval_batch(n_eval, batch_size, world):
    per = max(1, batch_size // world)
    return per if n_eval % (per * world) == 0 else 1


def main(argv=None):
    args = parse_args(argv)
    check_stack()

    import torch
    import torch.distributed as dist
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments, set_seed

    with open(os.path.join(HERE, "experiment.json"), encoding="utf-8") as f:
        job = json.load(f)
    exp = job["experiment"]
    lora, opt, sched, tr = exp["lora"], exp["optimizer"], exp["schedule"], exp["training"]
    data = exp["model"]["dataset"]
    model_path = args.model or job["modelPath"]
    total_steps = args.max_steps or tr["steps"]
    if total_steps < 1:
        fail(f"--max-steps should be at least 1, got {total_steps}")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    per_update = world * args.grad_accum
    if tr["batchSize"] % per_update != 0:
        fail(f"training.batchSize {tr['batchSize']} does not split into {world} process(es) x {args.grad_accum} micro-batch(es); "
             "choose a process count and --grad-accum whose product divides it")

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.output_dir or os.path.join(HERE, "runs", f"{exp['name']}-{stamp}"))
    stop_file = os.path.join(out, "STOP")

    set_seed(tr["seed"])

    # ---- data ----
    data_file = os.path.join(HERE, job["dataset"]["file"])
    with open(data_file, encoding="utf-8") as f:
        text = f.read()
    encode = make_encoder(data["tokenizer"], model_path)
    ids = encode("\n".join(dataset_documents(text, data_file)))
    train_windows, eval_windows = make_windows(ids, data["seqLen"], data["evalFraction"], data_file)
    use_init = job.get("initFrom") is not None and not args.no_init
    if use_init:
        want = job["expected"]
        got = {"totalTokens": len(ids), "trainWindows": len(train_windows), "evalWindows": len(eval_windows)}
        if got != want:
            fail(f"{data_file} tokenises to {got}, but LoRA Lab made {want} from it: the data order in init/ would not fit. "
                 "Use the model's own tokenizer.json and the exported data file, or run with --no-init")
        with open(os.path.join(HERE, job["initFrom"]["dataOrder"]), encoding="utf-8") as f:
            order = json.load(f)["indices"]
        if len(order) < total_steps * tr["batchSize"]:
            fail(f"init/data_order.json covers {len(order) // tr['batchSize']} updates, fewer than the {total_steps} asked for; export again with more steps")
    else:
        g = torch.Generator().manual_seed(tr["seed"])
        order = torch.randint(len(train_windows), (total_steps * tr["batchSize"],), generator=g).tolist()
    order = order[:total_steps * tr["batchSize"]]

    class Windows(torch.utils.data.Dataset):
        def __init__(self, rows, idx):
            self.rows, self.idx = rows, idx

        def __len__(self):
            return len(self.idx)

        def __getitem__(self, j):
            t = torch.tensor(self.rows[self.idx[j]], dtype=torch.long)
            return {"input_ids": t, "labels": t}

    train_ds = Windows(train_windows, order)
    n_eval = min(len(eval_windows), max(1, tr["evalBatches"]) * tr["batchSize"])
    eval_ds = Windows(eval_windows, list(range(n_eval))) if n_eval > 0 else None

    # ---- model + PEFT ----
    on_gpu = torch.cuda.is_available() and not args.use_cpu
    precision = args.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if on_gpu else "fp32"
    if precision != "fp32" and not on_gpu:
        fail(f"--precision {precision} needs a GPU; on the CPU use fp32")
    cfg = AutoConfig.from_pretrained(model_path)
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout", "summary_first_dropout"):
        if hasattr(cfg, key):
            setattr(cfg, key, 0.0)
    model = AutoModelForCausalLM.from_pretrained(model_path, config=cfg, torch_dtype=torch.float32)
    vocab = model.get_input_embeddings().weight.shape[0]
    if data["tokenizer"] == "bytes" and vocab < 256:
        fail(f"the bytes tokenizer produces ids up to 255 but {model_path} has vocab_size {vocab}")

    pl = job["peft"]
    peft_config = LoraConfig(
        task_type="CAUSAL_LM",
        r=pl["r"],
        lora_alpha=pl["lora_alpha"],
        lora_dropout=pl["lora_dropout"],
        target_modules=pl["target_modules"],
        bias=pl["bias"],
        use_rslora=pl["use_rslora"],
        use_dora=pl["use_dora"],
        fan_in_fan_out=cfg.model_type == "gpt2",
        init_lora_weights=True,
    )
    model = get_peft_model(model, peft_config)
    if use_init:
        init = load_safetensors(os.path.join(HERE, job["initFrom"]["adapter"]))
        mine = {k for k, _ in model.named_parameters() if ".lora_" in k}
        result = set_peft_model_state_dict(model, init)
        missing = sorted(k for k in (getattr(result, "missing_keys", None) or []) if ".lora_" in k)
        unexpected = sorted(getattr(result, "unexpected_keys", None) or [])
        if missing or unexpected or len(init) < len(mine):
            fail(f"init/adapter_model.safetensors does not fit {model_path}: "
                 f"{len(missing)} LoRA tensor(s) missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
    elif lora["init"] == "gaussian":
        # LoRA Lab's gaussian init is N(0, 0.02) for A (the reference LoRA code's); PEFT's "gaussian" is N(0, 1/r).
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".lora_A." in name:
                    p.normal_(0.0, 0.02)
    # DDP cannot broadcast the bool causal-mask buffers of Llama / GPT-2 over gloo, and they never change.
    model._ddp_params_and_buffers_to_ignore = [n for n, b in model.named_buffers() if b.dtype == torch.bool]

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in trainable]
    n_trainable = sum(p.numel() for p in params)
    n_total = sum(p.numel() for n, p in model.named_parameters() if not p.requires_grad)
    if opt["lr"] <= 0:
        fail(f"optimizer.lr should be positive, got {opt['lr']}")

    def make_optimizer(trainable_params):
        if opt["name"] == "sgd":
            return torch.optim.SGD(trainable_params, lr=opt["lr"], momentum=opt["momentum"], weight_decay=opt["weightDecay"])
        cls = torch.optim.AdamW if opt["name"] == "adamw" else torch.optim.Adam
        return cls(trainable_params, lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"], weight_decay=opt["weightDecay"])

    # ---- Trainer ----
    eval_every = tr["evalEvery"] if eval_ds is not None else 0
    ta = dict(
        output_dir=out,
        max_steps=total_steps,
        per_device_train_batch_size=tr["batchSize"] // per_update,
        # Whole batches per process when the held-out windows split evenly, else one row at a time: a
        # padded last batch would weigh some rows twice in the eval loss.
        per_device_eval_batch_size=eval_batch(n_eval, tr["batchSize"], world),
        gradient_accumulation_steps=args.grad_accum,
        # No clipping is a limit no norm reaches: Trainer then still reports the gradient norm.
        max_grad_norm=opt["gradClip"] if opt["gradClip"] > 0 else 1e30,
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(1, tr["checkpointEvery"]),
        save_total_limit=tr.get("keepCheckpoints") or None,
        seed=tr["seed"],
        data_seed=tr["seed"],
        report_to=[],
        remove_unused_columns=False,
        dataloader_drop_last=False,
        ddp_find_unused_parameters=False,
        use_cpu=not on_gpu,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        disable_tqdm=True,
    )
    strategy_key = "eval_strategy" if "eval_strategy" in inspect.signature(TrainingArguments.__init__).parameters else "evaluation_strategy"
    ta[strategy_key] = "steps" if eval_every > 0 else "no"
    if eval_every > 0:
        ta["eval_steps"] = eval_every
    targs = TrainingArguments(**ta)

    class LabTrainer(Trainer):
        """Trainer with LoRA Lab's data order and an exact (unrounded) per-update loss for metrics.jsonl."""

        step_loss = None
        step_lr = None

        def _get_train_sampler(self, *_args, **_kwargs):
            # The dataset already lists every update's windows in order; accelerate deals the batches out
            # round-robin to the processes, so each update sees exactly its batchSize windows.
            return torch.utils.data.SequentialSampler(self.train_dataset)

        # The optimizer and schedule are made here rather than passed as `optimizers=`: Trainer refuses
        # that under FSDP and DeepSpeed, which create them after wrapping the model (FSDP with
        # use_orig_params still lists the LoRA parameters in the same order).
        def create_optimizer(self):
            if self.optimizer is None:
                self.optimizer = make_optimizer([p for p in self.model.parameters() if p.requires_grad])
            return self.optimizer

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, lr_multiplier(sched, total_steps))
            return self.lr_scheduler

        def training_step(self, model, inputs, *rest, **kw):
            if self.step_loss is None:
                self.step_lr = self.optimizer.param_groups[0]["lr"]
            loss = super().training_step(model, inputs, *rest, **kw)
            self.step_loss = loss.detach() if self.step_loss is None else self.step_loss + loss.detach()
            return loss

    trainer = LabTrainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=eval_ds)
    is_main = trainer.is_world_process_zero()

    if is_main:
        os.makedirs(out, exist_ok=True)
        if os.path.exists(stop_file):
            print(f"train.py: removing an old STOP file in {out}", file=sys.stderr)
            os.remove(stop_file)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()

    config_out = dict(exp)
    # Absolute paths: LoRA Lab reads (and can resume) the run from its own folder.
    config_out["model"] = dict(exp["model"], modelPath=os.path.abspath(model_path) if os.path.exists(model_path) else model_path,
                               dataset=dict(data, path=data_file))
    config_out["training"] = dict(tr, steps=total_steps)
    callback = LabRunCallback(
        trainer=trainer, out=out, stop_file=stop_file, config=config_out, resume=args.resume,
        info=dict(
            formatVersion=1,
            runId=os.path.basename(out),
            name=exp["name"],
            kind=exp["kind"],
            totalSteps=total_steps,
            seed=tr["seed"],
            backend={"name": "torch", "notes": [
                f"transformers Trainer + PEFT on {'cuda' if on_gpu else 'cpu'} x{world}, {precision}",
                f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
            ]},
            versions={"loraLab": job.get("exportedBy", "unknown"), "tfjs": "-", "node": "-",
                      "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
            params={"totalParams": n_total, "trainableParams": n_trainable,
                    "trainablePercentPeft": 100 * n_trainable / (n_total + n_trainable)},
            baseModel=model_path,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            **({"bootTime": boot_time_ms()} if boot_time_ms() is not None else {}),
        ),
        peft_config=dict(job["adapterConfig"], base_model_name_or_path=model_path), eval_every=eval_every, log_every=max(1, tr["logEvery"]),
        keep=tr.get("keepCheckpoints") or 0, TrainerCallback=TrainerCallback,
    )
    trainer.add_callback(callback.as_trainer_callback())
    try:
        trainer.train(resume_from_checkpoint=True if args.resume else None)
    except KeyboardInterrupt:
        callback.finish("interrupted", error="stopped by Ctrl-C without a checkpoint (create a STOP file to stop with one)")
        raise
    except BaseException as e:
        callback.finish("failed", error=f"{type(e).__name__}: {e}")
        raise
    stopped = callback.stopped
    if not stopped and callback.fsdp:
        # Every process takes part in gathering the sharded adapter; process 0 then writes adapter/.
        gathered = os.path.join(out, ".adapter-fsdp")
        trainer.save_model(gathered)
        if is_main:
            callback.write_adapter(os.path.join(out, "adapter"), tensors=callback.saved_adapter(gathered))
            import shutil
            shutil.rmtree(gathered, ignore_errors=True)
    elif not stopped and is_main:
        callback.write_adapter(os.path.join(out, "adapter"), trainer.model)
    callback.finish("cancelled" if stopped else "completed")
    if is_main:
        print(f"train.py: {'stopped' if stopped else 'done'} at step {trainer.state.global_step}/{total_steps}; run folder {out}")
    return 0


def load_safetensors(path):
    from safetensors.torch import load_file
    return load_file(path)


class LabRunCallback:
    """Makes the Trainer's output folder a LoRA Lab run while it trains (written by process 0 only)."""

    def __init__(self, trainer, out, stop_file, config, info, peft_config, eval_every, log_every, keep, resume, TrainerCallback):
        self.trainer, self.out, self.stop_file = trainer, out, stop_file
        self.config, self.info, self.peft_config = config, info, peft_config
        self.eval_every, self.log_every, self.keep, self.resume = eval_every, log_every, keep, resume
        self.TrainerCallback = TrainerCallback
        self.main = trainer.is_world_process_zero()
        self.stopped = False
        self.pending = None
        self.t0 = time.time()
        self.elapsed_offset = 0.0

    # -- the TrainerCallback hooks --
    def as_trainer_callback(self):
        outer = self

        class Hooks(self.TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                outer.begin(state)

            def on_step_end(self, args, state, control, **kw):
                outer.step_end(state, control)

            def on_log(self, args, state, control, logs=None, **kw):
                outer.log(state, control, logs or {})

            def on_evaluate(self, args, state, control, metrics=None, **kw):
                outer.evaluate(state, metrics or {})

            def on_save(self, args, state, control, **kw):
                outer.save(state, kw.get("model"), kw.get("optimizer"))

        return Hooks()

    def begin(self, state):
        if not self.main:
            return
        run_file = os.path.join(self.out, "run.json")
        at = now_iso()
        info = dict(self.info, status="running", createdAt=at, updatedAt=at, step=state.global_step)
        if self.resume and os.path.exists(run_file):
            with open(run_file, encoding="utf-8") as f:
                old = json.load(f)
            info["createdAt"] = old.get("createdAt", at)
            info["resumedAt"] = old.get("resumedAt", []) + [{"step": state.global_step, "at": at}]
            info["runId"] = old.get("runId", info["runId"])
            self.elapsed_offset = self._last_elapsed_ms() / 1000.0
            self._truncate_metrics(state.global_step)
        self.info = info
        write_json_atomic(os.path.join(self.out, "config.json"), self.config)
        write_json_atomic(run_file, info)

    def step_end(self, state, control):
        # Process 0 decides and tells the others, so every process stops after the same update.
        import torch
        import torch.distributed as dist
        stop = self.main and os.path.exists(self.stop_file)
        if dist.is_available() and dist.is_initialized():
            flag = torch.tensor([1 if stop else 0], dtype=torch.int64)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if stop:
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
        if state.global_step == state.max_steps and self.eval_every > 0:
            control.should_evaluate = True  # LoRA Lab also evaluates after the last update

    def log(self, state, control, logs):
        if "loss" not in logs:
            return
        import torch
        import torch.distributed as dist
        loss = self.trainer.step_loss
        lr = self.trainer.step_lr
        self.trainer.step_loss = None
        if loss is None:
            return
        loss = loss.detach().float().reshape(1).clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        step = state.global_step
        point = {
            "step": step,
            "loss": float(loss.item()),
            "lr": float(lr),
            "gradNorm": float(logs.get("grad_norm", float("nan"))),
            "elapsedMs": (self.elapsed_offset + time.time() - self.t0) * 1000.0,
        }
        wanted = step % self.log_every == 0 or step == state.max_steps or control.should_save or self.stopped
        if control.should_evaluate:
            self.pending = point  # written with its eval loss
        elif wanted:
            self._append(point)

    def evaluate(self, state, metrics):
        if self.pending is not None and "eval_loss" in metrics:
            self.pending["evalLoss"] = float(metrics["eval_loss"])
            self._append(self.pending)
            self.info["lastEvalLoss"] = self.pending["evalLoss"]
            self.pending = None
            self._write_info()

    def save(self, state, model, optimizer):
        if self.pending is not None:
            self._append(self.pending)
            self.pending = None
        if not self.main or model is None:
            return
        step = state.global_step
        ckpt = os.path.join(self.out, "checkpoints", f"step-{step}")
        if self.fsdp:
            # FSDP shards the parameters over the processes; the Trainer has just gathered and saved the
            # whole adapter into checkpoint-N/ (FULL_STATE_DICT, see launch.sh).
            tensors = self.saved_adapter(os.path.join(self.out, f"checkpoint-{step}"))
            optimizer = None
        else:
            tensors = self.adapter_tensors(model)
        names = {id(p): k for k, p in self.named_trainable(model)}
        if optimizer is not None:
            inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
            for group in inner.param_groups:
                for p in group["params"]:
                    st = inner.state.get(p, {})
                    key = names.get(id(p))
                    if key is None:
                        continue
                    for slot, src in (("m", "exp_avg"), ("v", "exp_avg_sq"), ("momentum", "momentum_buffer")):
                        if src in st and st[src] is not None:
                            tensors[f"optimizer/{slot}/{key}"] = st[src].detach().float().cpu().contiguous()
        opt_step = int(state.global_step)
        info = {"step": step, "createdAt": now_iso(),
                "state": {"optimizerStep": opt_step, "engine": "transformers", "trainerCheckpoint": f"checkpoint-{step}"}}
        self._replace_folder(ckpt, lambda tmp: (
            save_safetensors(tensors, os.path.join(tmp, "tensors.safetensors"), {"step": str(step)}),
            write_json_atomic(os.path.join(tmp, "checkpoint.json"), info),
        ))
        self._prune()
        self.info.update(step=step, lastCheckpointStep=step)
        self._write_info()

    # -- adapter in PEFT's saved names (no ".default"), as LoRA Lab writes and reads them --
    @staticmethod
    def named_trainable(model):
        m = getattr(model, "module", model)
        for k, p in m.named_parameters():
            if p.requires_grad:
                yield peft_save_key(k), p

    def adapter_tensors(self, model):
        return {k: p.detach().float().cpu().contiguous() for k, p in self.named_trainable(model)}

    @property
    def fsdp(self):
        return bool(getattr(self.trainer, "is_fsdp_enabled", False))

    @staticmethod
    def saved_adapter(folder):
        f = os.path.join(folder, "adapter_model.safetensors")
        return {peft_save_key(k): v.float().contiguous() for k, v in load_safetensors(f).items()} if os.path.exists(f) else {}

    def write_adapter(self, folder, model=None, tensors=None):
        tensors = tensors if tensors is not None else self.adapter_tensors(model)
        self._replace_folder(folder, lambda tmp: (
            save_safetensors(tensors, os.path.join(tmp, "adapter_model.safetensors"), {"format": "pt"}),
            write_json_atomic(os.path.join(tmp, "adapter_config.json"), self.peft_config),
        ))

    def finish(self, status, error=None):
        if not self.main:
            return
        at = now_iso()
        self.info.update(status=status, updatedAt=at, finishedAt=at, step=self.trainer.state.global_step)
        if error:
            self.info["error"] = error
        self._write_info()

    # -- files --
    def _append(self, point):
        if not self.main:
            return
        with open(os.path.join(self.out, "metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(point) + "\n")
        self.info["lastLoss"] = point["loss"]
        self.info["step"] = point["step"]
        # The Runs view reads the step from run.json: keep it current, but rewrite it only every few
        # seconds, since each rewrite makes an open dashboard reload the run.
        if time.monotonic() - self._info_written_at >= INFO_EVERY_S:
            self._write_info()

    _info_written_at = float("-inf")

    def _write_info(self):
        if self.main:
            self.info["updatedAt"] = now_iso()
            write_json_atomic(os.path.join(self.out, "run.json"), self.info)
            self._info_written_at = time.monotonic()

    def _last_elapsed_ms(self):
        pts = self._points()
        return pts[-1]["elapsedMs"] if pts else 0.0

    def _points(self):
        path = os.path.join(self.out, "metrics.jsonl")
        pts = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        pts.append(json.loads(line))
                    except ValueError:
                        pass  # a torn last line
        return pts

    def _truncate_metrics(self, step):
        # Points after the checkpoint we resume from are replayed; keep one line per step.
        kept = [p for p in self._points() if p["step"] <= step]
        tmp = os.path.join(self.out, "metrics.jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(p) + "\n" for p in kept)
        os.replace(tmp, os.path.join(self.out, "metrics.jsonl"))

    def _replace_folder(self, target, fill):
        import shutil
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".tmp-{os.path.basename(target)}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        fill(tmp)
        if os.path.exists(target):
            old = os.path.join(parent, f".old-{os.path.basename(target)}-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)

    def _prune(self):
        import shutil
        if self.keep <= 0:
            return
        folder = os.path.join(self.out, "checkpoints")
        steps = sorted(int(n[5:]) for n in os.listdir(folder) if n.startswith("step-") and n[5:].isdigit())
        for s in steps[:max(0, len(steps) - self.keep)]:
            shutil.rmtree(os.path.join(folder, f"step-{s}"), ignore_errors=True)


def peft_save_key(name):
    """A PeftModel parameter name as PEFT saves it (and LoRA Lab reads it): no adapter name, no base_layer."""
    for a, b in ((".lora_magnitude_vector.default.weight", ".lora_magnitude_vector"), (".lora_magnitude_vector.default", ".lora_magnitude_vector"),
                 (".default.", "."), (".base_layer.", ".")):
        name = name.replace(a, b)
    return name


def save_safetensors(tensors, path, metadata):
    from safetensors.torch import save_file
    save_file(tensors, path, metadata=metadata)


if __name__ == "__main__":
    sys.exit(main())
