// `lora-lab export`: write a transformers Trainer + PEFT job folder for a causal-lm experiment.
import * as path from 'node:path';
import { RunError } from '../../runs/runErrors';
import { CliError, parseFlags, UsageError, type CliCommand } from '../command';

const usage = `Usage: lora-lab export CONFIG --out DIR [--init-from SEED|RUN_DIR]

Writes a self-contained job folder for the experiment in CONFIG (kind causal-lm): train.py (a
transformers Trainer with a PEFT LoraConfig equal to the experiment), launch.sh (accelerate launch /
torchrun, several GPUs or machines, FSDP), requirements.txt, README.md, experiment.json and the
dataset. While the job trains, its output folder is a LoRA Lab run (run.json, metrics.jsonl,
checkpoints, adapter/); a STOP file in it ends the job with a checkpoint.

Options:
  --out DIR          the job folder to create (must not exist, or be empty)
  --init-from X      start from exactly LoRA Lab's initial adapter and data order: X is a seed
                     (e.g. 0) or a LoRA Lab run folder of the same experiment (its seed is used);
                     trained on both engines, the experiment then gives one loss curve`;

export const exportCommand: CliCommand = {
  name: 'export',
  summary: 'Export a causal-lm experiment as a transformers Trainer + PEFT job (train.py, launch.sh)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { out: { type: 'string' }, 'init-from': { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError(`expected one CONFIG file, got ${positionals.length}${positionals.length ? `: ${positionals.join(' ')}` : ''}`);
    if (!values.out) throw new UsageError('missing --out DIR (the job folder to create)');
    const { exportJob } = await import(/* webpackMode: "eager" */ '../../export/exportJob');
    const { ExportError } = await import(/* webpackMode: "eager" */ '../../export/exportError');
    try {
      const r = await exportJob({ configPath: positionals[0], outDir: values.out, initFrom: values['init-from'] });
      const rel = path.relative(process.cwd(), r.dir) || '.';
      process.stdout.write(`Exported ${positionals[0]} to ${rel}/ (${r.files.length} files)\n`);
      if (r.init) process.stdout.write(`Starts from LoRA Lab's initial adapter and data order for ${r.init.source}.\n`);
      for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
      process.stdout.write(`Run it: cd ${rel} && python train.py   (several GPUs: ./launch.sh --gpus N)\n`);
    } catch (e) {
      if (ExportError.is(e) || RunError.is(e)) throw new CliError(e.message);
      throw e;
    }
  },
};
