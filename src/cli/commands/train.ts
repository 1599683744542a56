// `lora-lab train`: run an experiment file (or resume a run folder) on the same engine as the extension.
import * as path from 'node:path';
import type { BackendName } from '../../runs/backendSetup';
import { RunError } from '../../runs/runErrors';
import { CliError, EXIT, numberFlag, parseFlags, UsageError, type CliCommand } from '../command';
import { ProgressPrinter } from '../progress';
import { formatLoss } from '../../shared/format';
import { terminalSafeJson } from '../terminalText';

const BACKENDS: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

const usage = `Usage: lora-lab train CONFIG [--out DIR] [--backend wasm|cpu|tensorflow] [--threads N] [--json]
       lora-lab train --resume RUN_DIR [--backend ...] [--threads N] [--json]

Trains the experiment in CONFIG (*.lora.json or *.lora.yaml) and writes a run folder
<out>/<name>-<yyyymmdd-hhmmss>-<hex>/ with run.json, config.json, metrics.jsonl, checkpoints/ and,
at the end, adapter/ (PEFT layout: adapter_config.json + adapter_model.safetensors).

Options:
  --out DIR       parent folder for the run (default: the config's outputDir, next to the config)
  --resume DIR    continue an interrupted or cancelled run from its last checkpoint
  --backend NAME  tfjs backend to try first: tensorflow (needs @tensorflow/tfjs-node), wasm, cpu
                  (default: the fastest available; the one in use is printed)
  --threads N     threads for matrix products: the native kernels' (default: the cores, up to 8);
                  where those are not built, wasm threads (default 1; above 1 starts the threaded
                  wasm build when this runtime supports it, else trains on one thread and says why)
  --json          one JSON object per line (the worker protocol's events, then a "result")

A sweep: a field given as a list where the config expects one value ("lora": {"r": [1, 2, 4, 8]})
trains one run per value (every combination when several fields are lists), one after the other;
each run is named after its values (<name>-r4). Ctrl-C stops the current run and the rest of the sweep.

Ctrl-C (or SIGTERM) stops after the current step, saves a checkpoint and exits with code 130; resume
with --resume. A second Ctrl-C quits at once (the previous checkpoint is kept).`;

export const trainCommand: CliCommand = {
  name: 'train',
  summary: 'Train a LoRA experiment from a .lora.json/.lora.yaml file (or --resume a run)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      out: { type: 'string' },
      resume: { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length > 1) throw new UsageError(`expected one CONFIG file, got ${positionals.length}: ${positionals.join(' ')}`);
    const configPath = positionals[0];
    if (!configPath && !values.resume) throw new UsageError('missing CONFIG (an experiment file) or --resume RUN_DIR');
    if (configPath && values.resume) throw new UsageError('give either CONFIG or --resume RUN_DIR, not both (a resumed run keeps its own config)');
    if (values.resume && values.out) throw new UsageError('--out cannot be combined with --resume (the run stays in its folder)');
    const backend = values.backend as BackendName | undefined;
    if (backend !== undefined && !BACKENDS.includes(backend)) {
      throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got "${values.backend}"`);
    }

    const threads = numberFlag(values.threads, '--threads', { integer: true, min: 1 });

    const mode = values.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
    const printer = new ProgressPrinter(mode);
    const controller = new AbortController();
    const onSigint = () => {
      if (controller.signal.aborted) {
        printer.line('Stopping now without a final checkpoint; resume from the last one with --resume.');
        process.exit(EXIT.interrupted);
      }
      printer.line('Stopping after this step and saving a checkpoint… (Ctrl-C again to quit at once)');
      controller.abort();
    };
    // SIGTERM (e.g. `kill`, a CI timeout) gets the same clean stop as Ctrl-C.
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint);
    try {
      // Loaded on demand so `lora-lab --help`, `params` and friends start without loading tfjs.
      const { trainRun, sweepSize } = await import(/* webpackMode: "eager" */ '../../runs/trainRun');
      const runs = configPath ? sweepSize(configPath) : 0;
      if (runs > 0) printer.line(`Sweep: ${runs} runs from ${configPath}, one after the other`);
      let code: number = EXIT.ok;
      for (const sweepIndex of runs > 0 ? [...Array(runs).keys()] : [undefined]) {
        if (sweepIndex !== undefined) printer.line(`Sweep run ${sweepIndex + 1}/${runs}`);
        const result = await trainRun({
          configPath,
          resumeRunDir: values.resume,
          sweepIndex,
          outDir: values.out,
          backend,
          threads,
          signal: controller.signal,
          onEvent: (e) => printer.event(e),
        });
        if (backend && result.backend.name !== backend) {
          printer.line(`warning: --backend ${backend} is not available, trained on ${result.backend.name}`);
        }
        if (mode === 'json') {
          process.stdout.write(terminalSafeJson(JSON.stringify({ type: 'result', ...result })) + '\n');
        } else {
          // Relative to where the user stands when that is shorter and inside it; absolute otherwise.
          const rel = (p: string) => {
            const r = path.relative(process.cwd(), p);
            return r && !r.startsWith('..') && !path.isAbsolute(r) ? r : p;
          };
          if (result.status === 'completed') {
            printer.line(`Done: ${result.step} steps, loss ${formatLoss(result.lastLoss)}, eval loss ${formatLoss(result.lastEvalLoss)}`);
            printer.line(`Run:     ${rel(result.runDir)}`);
            printer.line(`Adapter: ${rel(result.adapterDir!)}`);
          } else if (result.status === 'cancelled') {
            printer.line(`Stopped at step ${result.step}/${result.totalSteps}; checkpoint saved in ${rel(result.runDir)}`);
            printer.line(`Resume with: lora-lab train --resume ${rel(result.runDir)}`);
          } else {
            printer.error(`Failed at step ${result.step}: ${result.error}`);
            const kept = result.lastCheckpointStep;
            printer.error(`Run: ${rel(result.runDir)} (${kept !== undefined ? `last good checkpoint: step ${kept}` : 'no checkpoint was written'})`);
          }
        }
        const c = result.status === 'completed' ? EXIT.ok : result.status === 'cancelled' ? EXIT.interrupted : EXIT.failed;
        if (code === EXIT.ok) code = c;
        if (result.status === 'cancelled') break;
      }
      return code;
    } catch (e) {
      if (RunError.is(e)) throw new CliError(e.message);
      throw e;
    } finally {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
      // The threaded wasm build's pthreads would keep the process alive after the run.
      if (threads !== undefined && threads > 1) (await import(/* webpackMode: "eager" */ '../../runs/backendSetup')).stopWasmThreads();
    }
  },
};
