// `lora-lab report RUN_DIR|ADAPTER [...] --out FILE.html`: one self-contained HTML file with the
// dashboard's views (static): the webview bundle and its CSS inlined, the data embedded as JSON,
// a strict CSP with a fresh nonce. Opens offline in any browser.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ReportData } from '../../protocol/webview';
import { jsonForHtmlScript } from '../../shared/reportEncoding';
import { buildReportData } from '../../dashboard/dashboardData';
import { newNonce, pageCsp, webviewPageHtml } from '../../dashboard/webviewPage';
import { writeFileAtomic } from '../../io/atomic';
import { CliError, parseFlags, UsageError, type CliCommand } from '../command';

const usage = `Usage: lora-lab report PATH [PATH...] --out FILE.html [--title TEXT]

Writes one self-contained HTML file with the dashboard's views for each PATH: a run folder (loss
curves, parameters, ΔW heatmaps over checkpoints, spectra) or an adapter (a PEFT folder or a
.safetensors LoRA file: modules, metadata as text, heatmaps, spectra). Several runs are overlaid
(e.g. a rank sweep). The file needs no network and no other files.

Options:
  --out FILE.html   where to write the report
  --title TEXT      the page title (default: the run names)

Example: lora-lab report lora-runs/rank-sweep-r1-* lora-runs/rank-sweep-r4-* --out sweep.html`;

/** Where the built webview bundle is: next to dist/cli.js, or dist/ of the repo when run from source. */
export function findWebviewBundle(): { js: string; css: string } {
  const candidates = [path.join(__dirname, 'webview'), path.join(__dirname, '..', 'webview'), path.resolve(__dirname, '..', '..', '..', 'dist', 'webview')];
  for (const dir of candidates) {
    const js = path.join(dir, 'main.js');
    const css = path.join(dir, 'main.css');
    if (fs.existsSync(js) && fs.existsSync(css)) return { js, css };
  }
  throw new CliError(`the dashboard bundle (dist/webview/main.js) was not found next to the CLI; build it first with \`npm run build\` (looked in ${candidates.join(', ')})`);
}

/** The report page. Inline script and style carry the nonce; the data block is not executable. */
export function renderReportHtml(data: ReportData, js: string, css: string): string {
  const nonce = newNonce();
  return webviewPageHtml({
    title: data.snapshot.title,
    nonce,
    allow: pageCsp.report(nonce),
    style: { text: css },
    script: { text: js },
    data: `<script type="application/json" id="lora-lab-data">${jsonForHtmlScript(data)}</script>`,
    bodyClass: 'report',
    generator: 'lora-lab report',
  });
}

export async function writeReport(paths: string[], out: string, title?: string): Promise<{ bytes: number }> {
  const bundle = findWebviewBundle();
  for (const p of paths) if (!fs.existsSync(p)) throw new CliError(`${p}: no such run folder or adapter`);
  const data = await buildReportData(paths, title);
  const html = renderReportHtml(data, fs.readFileSync(bundle.js, 'utf8'), fs.readFileSync(bundle.css, 'utf8'));
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  await writeFileAtomic(out, html);
  return { bytes: Buffer.byteLength(html) };
}

export const reportCommand: CliCommand = {
  name: 'report',
  summary: 'Write a self-contained HTML report of runs and adapters',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { out: { type: 'string', short: 'o' }, title: { type: 'string' } });
    if (positionals.length === 0) throw new UsageError('give at least one run folder or adapter');
    if (!values.out) throw new UsageError('--out FILE.html is required');
    const { bytes } = await writeReport(positionals, values.out, values.title);
    process.stdout.write(`Report written to ${path.resolve(values.out)} (${(bytes / 1024).toFixed(0)} KiB); open it in any browser, no network needed.\n`);
  },
};
