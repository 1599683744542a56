// `lora-lab params`: how many parameters LoRA trains vs full fine-tuning, for one linear layer.
import { linearParamCount, formatCount, formatPercent, formatReduction } from '../../shared/paramCount';
import { numberFlag, parseFlags, UsageError, type CliCommand } from '../command';

const usage = `Usage: lora-lab params --in D --out K -r R [--bias] [--json]

Counts the parameters of one linear layer W (K×D, with a bias b) under full fine-tuning and under LoRA
of rank R (A: R×D, B: K×R).

Options:
  --in D      input features d
  --out K     output features k
  -r, --rank R  LoRA rank r
  --bias      the bias trains too (the reference LoRA code's convention); default: frozen, as PEFT's bias "none"
  --json      print one JSON object instead of text

Example: lora-lab params --in 1024 --out 1024 -r 4 --bias   # 1,049,600 vs 9,216: 0.88 %, 113.9× fewer`;

export const paramsCommand: CliCommand = {
  name: 'params',
  summary: 'Count full fine-tune vs LoRA parameters of a linear layer',
  usage,
  run(argv) {
    const { values, positionals } = parseFlags(argv, {
      in: { type: 'string' },
      out: { type: 'string' },
      rank: { type: 'string', short: 'r' },
      bias: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const d = numberFlag(values.in, '--in', { integer: true, min: 1 });
    const k = numberFlag(values.out, '--out', { integer: true, min: 1 });
    const r = numberFlag(values.rank, '-r', { integer: true, min: 1 });
    const missing = [d === undefined && '--in', k === undefined && '--out', r === undefined && '-r'].filter(Boolean);
    if (missing.length) throw new UsageError(`missing ${missing.join(', ')}`);
    if (r! > Math.min(d!, k!)) throw new UsageError(`-r ${r} is larger than min(--in, --out) = ${Math.min(d!, k!)}: B·A could not have rank ${r}`);
    const trainBias = values.bias === true;
    const c = linearParamCount({ inFeatures: d!, outFeatures: k!, hasBias: true }, r!, trainBias);
    const text = {
      full: formatCount(c.full),
      lora: formatCount(c.lora),
      percent: formatPercent(c.percent),
      reduction: formatReduction(c.reduction),
    };
    if (values.json) {
      process.stdout.write(JSON.stringify({ inFeatures: d, outFeatures: k, r, trainBias, ...c, formatted: text }) + '\n');
      return;
    }
    const w = Math.max(text.full.length, text.lora.length);
    process.stdout.write(
      [
        `Linear ${d} → ${k}, LoRA rank ${r}${trainBias ? ' (bias trains, the reference LoRA code\'s convention)' : ' (bias frozen, PEFT convention)'}`,
        `  full fine-tune  ${text.full.padStart(w)}   W ${formatCount(k! * d!)} + b ${formatCount(k!)}`,
        `  LoRA            ${text.lora.padStart(w)}   A ${formatCount(r! * d!)} + B ${formatCount(k! * r!)}${trainBias ? ` + b ${formatCount(k!)}` : ''}`,
        `  LoRA trains ${text.percent} of the full count: ${text.reduction} fewer parameters`,
      ].join('\n') + '\n',
    );
  },
};
