// Any Hugging Face Trainer output folder, made by the real stack (../shared/pystack) with a plain
// Trainer + PEFT script (plainTrainer.py, no LoRA Lab code), reads as a run: its log_history curve, the
// ΔW of each checkpoint-N/, the static report, and live following while the Trainer writes checkpoints.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isTrainerRunDir, loadTrainerRun, metricsFromLogHistory } from '../../../src/runs/hfTrainerRun';
import { buildReportData, loadSource, readFactors } from '../../../src/dashboard/dashboardData';
import { DashboardSession } from '../../../src/dashboard/dashboardSession';
import { parseSafetensors } from '../../../src/formats/safetensors';
import type { Envelope } from '../../../src/protocol/messageHandler';
import type { ToWebview } from '../../../src/protocol/webview';
import { until } from '../../support/until';

const REPO = path.resolve(__dirname, '../../..');
const PYSTACK = path.resolve(REPO, '../shared/pystack/python');

describe('log_history → metrics', () => {
  it('one point per logged step, the eval loss of the same step attached, non-numbers ignored', () => {
    const m = metricsFromLogHistory([
      { loss: 2.5, learning_rate: 0.001, grad_norm: 1.5, epoch: 0.1, step: 1 },
      { loss: 2.25, learning_rate: 0.002, epoch: 0.2, step: 2 },
      { eval_loss: 2.4, eval_runtime: 0.1, epoch: 0.2, step: 2 },
      { train_runtime: 3, train_loss: 2.3, step: 2 },
      { loss: 'NaN', step: 3 },
    ]);
    assert.deepEqual(
      m.map((p) => [p.step, p.loss, p.evalLoss, p.lr]),
      [
        [1, 2.5, undefined, 0.001],
        [2, 2.25, 2.4, 0.002],
      ],
    );
    assert.equal(m[0].gradNorm, 1.5);
    assert.ok(Number.isNaN(m[1].gradNorm), 'no grad_norm logged: NaN, not 0');
  });
});

describe('a Hugging Face Trainer folder made by the stack', function () {
  this.timeout(120_000);
  let dir: string;
  let run: string;

  before(function () {
    if (!fs.existsSync(PYSTACK)) this.skip(); // the offline Hugging Face stack is not beside this checkout
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-trainer-'));
    run = path.join(dir, 'plain-run');
    const r = spawnSync(PYSTACK, [path.join(__dirname, 'plainTrainer.py'), path.join(REPO, 'examples/models/tiny-llama'), path.join(REPO, 'examples/models/lora-notes.txt'), run, '6'], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads as a completed run: the curve of log_history and a checkpoint per checkpoint-N/', () => {
    assert.ok(isTrainerRunDir(run));
    const state = JSON.parse(fs.readFileSync(path.join(run, 'trainer_state.json'), 'utf8')) as { log_history: { loss?: number; eval_loss?: number; step: number }[] };
    const t = loadTrainerRun(run);
    assert.equal(t.info.status, 'completed');
    assert.equal(t.info.step, 6);
    assert.deepEqual(t.checkpoints, [2, 4, 6]);
    assert.deepEqual(
      t.metrics.map((p) => p.loss),
      state.log_history.filter((e) => e.loss !== undefined).map((e) => e.loss),
    );
    assert.deepEqual(
      t.metrics.filter((p) => p.evalLoss !== undefined).map((p) => p.step),
      [3, 6],
    );
    assert.equal(t.config.lora.r, 4);
    assert.equal(t.config.lora.alpha, 8);
  });

  it('opens in the dashboard with its curve and the ΔW factors of each checkpoint', async () => {
    const src = await loadSource(run);
    assert.equal(src.kind, 'run');
    assert.equal(src.metrics?.step.length, 6);
    assert.deepEqual(src.checkpoints, [2, 4, 6]);
    assert.equal(src.modules.length, 4, 'q_proj and v_proj of 2 layers');
    for (const s of src.spectra) assert.equal(s.samples.length, 3, `${s.module}: a spectrum per checkpoint`);
    // The factors of checkpoint-4 are that checkpoint's adapter tensors, scaled by alpha / r.
    const f = await readFactors(run, 4);
    const file = path.join(run, 'checkpoint-4/adapter_model.safetensors');
    const st = parseSafetensors(new Uint8Array(fs.readFileSync(file)), file);
    const q = f.find((x) => x.module.endsWith('layers.0.self_attn.q_proj'))!;
    assert.ok(q, f.map((x) => x.module).join(', '));
    assert.deepEqual(Array.from(q.b!.data), Array.from(st.toFloat32('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')));
    assert.equal(q.scale, 2);
    // B moves away from 0 as training goes on: later checkpoints differ.
    assert.notDeepEqual(Array.from((await readFactors(run, 2))[0].b!.data), Array.from((await readFactors(run, 6))[0].b!.data));
  });

  it('goes into the static report (lora-lab report) with every checkpoint', async () => {
    const data = await buildReportData([run]);
    const id = data.snapshot.sources[0].id;
    assert.deepEqual(Object.keys(data.factors[id]).sort(), ['2', '4', '6']);
    assert.equal(data.snapshot.sources[0].run?.step, 6);
  });

  it('is followed live: a new checkpoint-N/ with its trainer_state.json brings new points and ΔW', async () => {
    const live = path.join(dir, 'live-run');
    fs.mkdirSync(live);
    fs.cpSync(path.join(run, 'checkpoint-2'), path.join(live, 'checkpoint-2'), { recursive: true });
    const sent: ToWebview[] = [];
    const session = new DashboardSession({ post: (e: Envelope<ToWebview>) => sent.push((e as { body: ToWebview }).body), pollIntervalMs: 0, flushIntervalMs: 0 });
    try {
      await session.add([live]);
      const snap = sent.find((m) => m.type === 'didSnapshot') as Extract<ToWebview, { type: 'didSnapshot' }>;
      assert.equal(snap.snapshot.sources[0].metrics?.step.length, 2);
      assert.equal(snap.snapshot.sources[0].run?.status, 'running', 'short of max_steps and just written');
      fs.cpSync(path.join(run, 'checkpoint-4'), path.join(live, 'checkpoint-4'), { recursive: true });
      session.poll();
      // The source reloads asynchronously (checkpoint files are read without blocking).
      await until('the reloaded source', () => sent.some((m) => m.type === 'didUpdateSource'));
      const update = sent.filter((m) => m.type === 'didUpdateSource').pop() as Extract<ToWebview, { type: 'didUpdateSource' }>;
      assert.ok(update, 'the source was reloaded');
      assert.deepEqual(update.source.checkpoints, [2, 4]);
      assert.equal(update.source.run?.step, 4);
      // The metric batch goes out on the flush timer.
      await until('the new points', () => sent.filter((m) => m.type === 'didAppendMetrics').flatMap((m) => m.metrics.step).length >= 2);
      const appended = sent.filter((m) => m.type === 'didAppendMetrics') as Extract<ToWebview, { type: 'didAppendMetrics' }>[];
      assert.deepEqual(
        appended.flatMap((m) => m.metrics.step),
        [3, 4],
      );
      session.poll(); // nothing changed: nothing reloaded
      // Proving an absence needs some wait; a slow machine can only make this pass wrongly, never fail.
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(sent.filter((m) => m.type === 'didUpdateSource').length, 1);
    } finally {
      session.dispose();
    }
  });
});
