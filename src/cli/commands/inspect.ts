// `lora-lab inspect PATH`: what an adapter file or folder is, what base model it needs, its modules
// (rank, alpha, scale, shapes, parameters, dtype), metadata and warnings. Uses the pure
// inspectAdapter report (src/formats/adapters/inspect.ts), the same one the adapter tree shows.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectAdapter, type InspectReport } from '../../formats/adapters/inspect';
import { loadInspectInput } from '../../io/hfFolder';
import { RUN_INFO_FILE, loadRun } from '../../runs/runStore';
import { formatCount } from '../../shared/paramCount';
import { CliError, EXIT, parseFlags, UsageError, type CliCommand } from '../command';
import { terminalSafe, terminalSafeJson, terminalValue } from '../terminalText';

const usage = `Usage: lora-lab inspect PATH [--json] [--all] [--header-only]

Describes a LoRA adapter file or folder (or the adapter of a LoRA Lab run folder): PEFT (adapter_config.json + adapter_model.safetensors),
kohya / Civitai, LyCORIS (LoCon, LoHa, LoKr), mlx-lm, loralib, legacy diffusers and cloneofsimo files.
Reports the base model it needs, every module's rank, alpha, scale, shapes, parameter count and dtype,
the safetensors metadata, and warnings: Git LFS pointers, pickles (refused, never unpickled), NaN/Inf
values, empty tensors, a config that does not match the weights. Exit code 1 when it cannot be read.

Options:
  --json         print the full report as JSON
  --all          list every module (default: the first 30)
  --header-only  read only the safetensors header (no NaN/Inf scan, kohya alpha from metadata)`;

/** Control characters and very long values are shown escaped and cut: metadata is untrusted text. */
const safeText = terminalValue;

function fmtNum(x: number | undefined): string {
  if (x === undefined) return '?';
  return Number.isInteger(x) ? String(x) : x.toPrecision(4).replace(/\.?0+$/, '');
}

export function formatReport(r: InspectReport, all: boolean): string {
  const lines: string[] = [];
  lines.push(`${r.path}`);
  const multiOnly = r.adapters?.length && r.format === 'unreadable' && r.errors.length === 0;
  lines.push(`  format:      ${multiOnly ? 'PEFT multi-adapter folder (adapters in subfolders only)' : `${r.formatLabel}${r.format !== 'unreadable' ? ` (${r.format})` : ''}`}`);
  lines.push(`  base model:  ${r.baseModel ? safeText(r.baseModel) : 'not named'}`);
  lines.push(`  ${r.baseModelStatement}`);
  if (r.adapters?.length) {
    lines.push(`  adapters:    ${r.adapters.length} in subfolders (PEFT multi-adapter folder):`);
    for (const a of r.adapters) {
      const s = a.summary;
      const ranks = s ? Object.keys(s.ranks).map((k) => `r=${k}`).join(', ') : '';
      lines.push(`    ${safeText(a.name, 60)}/  ${s ? (s.errors.length ? `error: ${safeText(s.errors[0], 200)}` : `${s.format}, ${s.modules} modules${ranks ? ` (${ranks})` : ''}, ${formatCount(s.params)} parameters`) : ''}`);
    }
  }
  if (r.format !== 'unreadable') {
    const ranks = Object.entries(r.ranks).map(([k, n]) => `r=${k} ×${n}`).join(', ');
    lines.push(`  modules:     ${r.totals.modules}${ranks ? ` (${ranks})` : ''}, ${formatCount(r.totals.params)} parameters${r.totals.savedParams ? ` (${formatCount(r.totals.savedParams)} in saved modules_to_save copies and biases)` : ''}, ${r.totals.tensors} tensors, ${formatCount(r.totals.bytes)} bytes`);
    lines.push(`  dtypes:      ${Object.entries(r.dtypes).map(([d, n]) => `${d} ×${n}`).join(', ') || 'none'}`);
  }
  if (r.modules.length) {
    lines.push('', '  module                                                        kind   rank  alpha   scale   ΔW shape          params   dtype   ‖ΔW‖');
    const shown = all ? r.modules : r.modules.slice(0, 30);
    for (const m of shown) {
      const name = m.name.length > 60 ? `…${m.name.slice(-59)}` : m.name;
      lines.push(
        `  ${name.padEnd(61)} ${m.kind.padEnd(6)} ${String(m.rank).padStart(4)}  ${fmtNum(m.alpha).padStart(5)}  ${fmtNum(m.scale).padStart(6)}   ${`[${m.deltaShape.join(', ')}]`.padEnd(16)} ${formatCount(m.paramCount).padStart(8)}   ${m.dtype.padEnd(5)}   ${m.deltaNorm === undefined ? '' : m.deltaNorm.toPrecision(4)}`,
      );
    }
    if (shown.length < r.modules.length) lines.push(`  … ${r.modules.length - shown.length} more (use --all)`);
  }
  if (r.extras.length) {
    lines.push('', `  other tensors (${r.extras.length}): ${r.extras.slice(0, 8).map((t) => `${safeText(t.name, 60)} [${t.shape.join(', ')}] ${t.dtype}`).join('; ')}${r.extras.length > 8 ? '; …' : ''}`);
  }
  const metaKeys = Object.keys(r.metadata);
  if (metaKeys.length) {
    lines.push('', `  metadata (${metaKeys.length} keys, shown as text):`);
    for (const k of metaKeys.slice(0, all ? metaKeys.length : 25)) lines.push(`    ${safeText(k, 60)}: ${safeText(r.metadata[k])}`);
    if (!all && metaKeys.length > 25) lines.push(`    … ${metaKeys.length - 25} more (use --all or --json)`);
  }
  if (r.warnings.length) lines.push('', ...r.warnings.map((w) => `  warning: ${safeText(w, 400)}`));
  if (r.errors.length) lines.push('', ...r.errors.map((e) => `  error: ${safeText(e, 400)}`));
  // Every line, not just the fields above: the base-model sentence, module and tensor names, the path
  // and the format label also come from the file.
  return lines.map(terminalSafe).join('\n') + '\n';
}

export const inspectCommand: CliCommand = {
  name: 'inspect',
  summary: 'Describe an adapter file or folder (PEFT, kohya, LyCORIS, mlx, …)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      json: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
      'header-only': { type: 'boolean', default: false },
    });
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one PATH, got ${positionals.length}` : 'missing PATH');
    let p = positionals[0];
    if (!fs.existsSync(p)) throw new CliError(`${p}: no such file or folder`);
    if (fs.existsSync(path.join(p, RUN_INFO_FILE))) {
      // A LoRA Lab run folder: its adapter is in adapter/, once the run has completed.
      const run = loadRun(p);
      if (!run.adapterDir) {
        throw new CliError(`${p} is a LoRA Lab run (status ${run.info.status}, step ${run.info.step}/${run.info.totalSteps}) without an adapter yet: adapter/ is written when the run completes${run.info.status === 'cancelled' || run.info.status === 'interrupted' ? `; finish it with lora-lab train --resume ${p}` : ''}`);
      }
      p = run.adapterDir;
    }
    const report = inspectAdapter(await loadInspectInput(p, { readValues: !values['header-only'] }));
    for (const a of report.adapters ?? []) {
      // Header only: enough for the one-line summary of each adapter of a multi-adapter folder.
      const sub = inspectAdapter(await loadInspectInput(a.path));
      a.summary = { format: sub.format, modules: sub.totals.modules, params: sub.totals.params, ranks: sub.ranks, errors: sub.errors };
    }
    process.stdout.write(values.json ? terminalSafeJson(JSON.stringify(report, null, 2)) + '\n' : formatReport(report, values.all === true));
    return report.errors.length ? EXIT.failed : EXIT.ok;
  },
};
