// The webpack config's decisions, checked without running a build (too slow for a unit test; `npm start` does it).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Configuration } from 'webpack';
import { defaultWasmDir } from '../../../src/runs/trainRun';
import { REPO_ROOT } from '../runs/tinyExperiment';

type ExternalFn = (data: { request?: string }, cb: (err?: Error | null, result?: string) => void) => void;

// eslint-disable-next-line @typescript-eslint/no-require-imports
const makeConfigs = require(path.join(REPO_ROOT, 'webpack.config.js')) as (env: unknown, argv: { mode?: string }) => Configuration[];

function externalOf(config: Configuration, request: string): string | undefined {
  const fn = (config.externals as unknown[]).find((e) => typeof e === 'function') as ExternalFn;
  let result: string | undefined;
  fn({ request }, (_err, r) => (result = r));
  return result;
}

describe('build: webpack.config.js', () => {
  const configs = makeConfigs({}, { mode: 'production' });
  const byName = Object.fromEntries(configs.map((c) => [c.name, c]));

  it('has one target per runtime, each entry pointing at a file that exists', () => {
    assert.ok(byName.runtime, 'worker + cli target');
    assert.deepEqual(Object.keys(byName.runtime.entry as object).sort(), ['cli', 'playgroundWorker', 'worker']);
    for (const c of configs) {
      for (const file of Object.values(c.entry as Record<string, string>)) assert.ok(fs.existsSync(path.join(REPO_ROOT, file)), file);
    }
    if (fs.existsSync(path.join(REPO_ROOT, 'src/extension.ts'))) assert.equal(byName.extension.target, 'node20');
    if (byName.webview) {
      assert.equal(byName.webview.target, 'web');
      assert.equal(byName.webview.devtool, false, 'no eval devtool in the webview (CSP)');
      assert.equal(makeConfigs({}, { mode: 'development' }).find((c) => c.name === 'webview')!.devtool, 'source-map');
    }
  });

  it('keeps vscode and the tfjs package roots external, bundles deep tfjs-core imports', () => {
    for (const c of configs.filter((x) => x.target === 'node20')) {
      assert.deepEqual((c.externals as unknown[])[0], { vscode: 'commonjs vscode' });
      assert.equal(externalOf(c, '@tensorflow/tfjs-core'), 'commonjs @tensorflow/tfjs-core');
      assert.equal(externalOf(c, '@tensorflow/tfjs-node'), 'commonjs @tensorflow/tfjs-node');
      assert.equal(externalOf(c, '@tensorflow/tfjs-core/dist/register_all_gradients'), undefined);
      assert.equal(externalOf(c, 'yaml'), undefined);
      assert.deepEqual(c.node, { __dirname: false, __filename: false });
    }
  });

  it('copies the wasm binaries next to the bundles, and tsx runs find them in the npm package', () => {
    const copy = byName.runtime.plugins!.find((p: unknown) => (p as object).constructor.name === 'CopyPlugin') as unknown as { patterns: { from: string; to: string }[] };
    assert.equal(copy.patterns[0].to, 'wasm/[name][ext]');
    const dir = defaultWasmDir();
    assert.ok(dir, 'found');
    assert.equal(fs.realpathSync(dir), fs.realpathSync(path.join(REPO_ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist')));
    for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) assert.ok(fs.existsSync(path.join(dir!, f)), f);
  });
});
