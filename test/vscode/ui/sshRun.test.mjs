// An SSH run followed in the dashboard, in the packaged extension: Debian's sshd on localhost (temporary
// keys, started here), a host alias from the ssh_config file named by loraLab.sshConfigFile, picked in
// "Run Experiment On…"; the job runs on ../shared/pystack. The dashboard's curve grows from the synced
// metrics, the Runs view names the host, Stop ends it. Screenshot (dark theme): ui-ssh-run.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { ui } from './workbench.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PYSTACK = path.resolve(repoRoot, '..', 'shared', 'pystack', 'python');
const ALIAS = 'lab-ssh-test';

function dashboardFrame(page) {
  return page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
}

async function points(frame) {
  return Number((await frame.locator('body').getAttribute('data-points', { timeout: 30_000 })) ?? 0);
}

describe('UI: a run on an SSH host', function () {
  let sshd;
  let sshConfig;
  before(async function () {
    const { SSHD, TestSshd } = await tsImport('../../unit/runners/sshd.ts', import.meta.url);
    if (!fs.existsSync(SSHD) || !fs.existsSync(PYSTACK)) {
      console.log(`skipped: ${!fs.existsSync(SSHD) ? `no sshd at ${SSHD}` : `no ${PYSTACK}`}`);
      this.skip();
    }
    sshd = await TestSshd.start();
    const t = sshd.target;
    sshConfig = path.join(sshd.dir, 'ssh_config');
    fs.writeFileSync(
      sshConfig,
      [`Host ${ALIAS}`, `  HostName ${t.host}`, `  Port ${t.port}`, `  User ${t.user}`, `  IdentityFile ${t.identityFile}`, '  IdentitiesOnly yes', '  StrictHostKeyChecking no', '  UserKnownHostsFile /dev/null', '  LogLevel ERROR', ''].join('\n'),
    );
  });

  after(async () => {
    // End the job on the host (this machine) whatever the test did, then the server.
    const runs = path.join(ui.workspace ?? '', 'runs-ssh-ui');
    for (const d of fs.existsSync(runs) ? fs.readdirSync(runs) : []) {
      const rec = path.join(runs, d, 'remote.json');
      if (!fs.existsSync(rec)) continue;
      const { pid, remoteDir } = JSON.parse(fs.readFileSync(rec, 'utf8'));
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already ended
      }
      if (typeof remoteDir === 'string' && remoteDir.startsWith('lora-lab-jobs/')) fs.rmSync(path.join(os.userInfo().homedir, remoteDir), { recursive: true, force: true });
    }
    await sshd?.dispose();
  });

  it('picks a host of loraLab.sshConfigFile, follows the run live in the dashboard, stops it', async () => {
    const { page, workbench, workspace } = ui;
    const ex = path.join(repoRoot, 'examples', 'models');
    fs.mkdirSync(path.join(workspace, '.vscode'), { recursive: true });
    fs.writeFileSync(
      path.join(workspace, '.vscode', 'settings.json'),
      JSON.stringify({ 'workbench.colorTheme': 'Default Dark Modern', 'loraLab.sshConfigFile': sshConfig, 'loraLab.remotePython': PYSTACK }, null, 2),
    );
    fs.writeFileSync(
      path.join(workspace, 'ssh-ui.lora.json'),
      JSON.stringify(
        {
          name: 'ssh-ui',
          kind: 'causal-lm',
          model: { modelPath: path.join(ex, 'tiny-llama'), dataset: { path: path.join(ex, 'lora-notes.txt'), seqLen: 32, tokenizer: 'bytes' } },
          lora: { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] },
          optimizer: { name: 'adamw', lr: 0.003 },
          // Far more steps than the test lasts: it stops the run itself.
          training: { steps: 100000, batchSize: 4, evalEvery: 50, checkpointEvery: 100000 },
          outputDir: 'runs-ssh-ui',
        },
        null,
        2,
      ),
    );
    await workbench.runCommand('View: Close All Editors');
    await workbench.showLoraLab();
    await workbench.openFile('ssh-ui.lora.json');
    await workbench.runCommand('LoRA Lab: Run Experiment On…');
    await workbench.pick('SSH host');
    await workbench.pick(ALIAS);
    // The dashboard opens once the job's run.json has come back; its curve grows with each sync.
    const frame = dashboardFrame(page);
    await frame.locator('body[data-ready="true"]').waitFor({ timeout: 120_000 });
    await frame.locator('[data-testid=loss-chart]').waitFor({ timeout: 60_000 });
    const deadline = Date.now() + 90_000;
    let first = await points(frame);
    while (first < 2 && Date.now() < deadline) {
      await page.waitForTimeout(250);
      first = await points(frame);
    }
    let later = first;
    while (later <= first + 10 && Date.now() < deadline) {
      await page.waitForTimeout(250);
      later = await points(frame);
    }
    assert.ok(later > first + 10, `the curve did not grow over SSH (${first} -> ${later} points)`);
    const runs = page.locator('.pane:has(.pane-header:has-text("Runs")) .monaco-list');
    const row = runs.locator('.monaco-list-row', { hasText: 'ssh-ui' }).filter({ hasText: `on ${ALIAS}` }).first();
    await row.waitFor({ timeout: 30_000 });
    assert.match(await row.innerText(), /running/);
    // run.json comes back with the step the job has reached (not only its last checkpoint's).
    await runs.locator('.monaco-list-row', { hasText: 'ssh-ui' }).filter({ hasText: /step [1-9]\d*\/100000/ }).first().waitFor({ timeout: 30_000 });
    // Let a few more points in so the picture shows a curve, then keep it.
    while (later < first + 40 && Date.now() < deadline) {
      await page.waitForTimeout(250);
      later = await points(frame);
    }
    // The row's tooltip names the host (the sidebar is too narrow for the whole description).
    // A refresh of the view (run.json synced back) re-renders the row and drops its hover: hover again.
    const tip = page.locator('.workbench-hover, .monaco-hover', { hasText: `on ${ALIAS}` }).first();
    for (const until = Date.now() + 30_000; ; ) {
      await page.mouse.move(700, 880);
      await row.hover();
      try {
        await tip.waitFor({ timeout: 3000 });
        break;
      } catch (e) {
        if (Date.now() > until) throw e;
      }
    }
    const shot = await workbench.screenshot('ui-ssh-run');
    console.log(`screenshot: ${shot}`);

    await workbench.runCommand('LoRA Lab: Stop Run');
    await workbench.pick('ssh-ui');
    await runs.locator('.monaco-list-row', { hasText: 'ssh-ui' }).filter({ hasText: /cancelled/ }).first().waitFor({ timeout: 90_000 });
    // The exported job's initial adapter (.jobs/…/init) is not listed as an adapter of the workspace.
    const adapters = page.locator('.pane:has(.pane-header:has-text("Adapters")) .monaco-list');
    assert.equal(await adapters.locator('.monaco-list-row', { hasText: /^\s*init\b/ }).count(), 0, 'the job\'s init adapter is listed');
    await workbench.screenshot('ui-ssh-run-stopped');
  });
});
