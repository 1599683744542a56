// @ts-check
// Three targets (STYLE.md §11): the extension host (node, `vscode` external), the training worker + the
// `lora-lab` CLI (node, @tensorflow/* external so an installed tfjs-node registers into the same
// tfjs-core the engine uses), and the dashboard webview (web). An entry whose source file does not
// exist yet is skipped, so the build works at every stage of the project.
'use strict';
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS config file: webpack-cli loads it with require() */
const fs = require('node:fs');
const path = require('node:path');
const webpack = require('webpack');
const CopyPlugin = require('copy-webpack-plugin');
const MiniCssExtractPlugin = require('mini-css-extract-plugin');

const dist = path.resolve(__dirname, 'dist');
const exists = (/** @type {string} */ file) => fs.existsSync(path.resolve(__dirname, file));

/** ts-loader on one tsconfig project; type checking is `tsc -b`'s job, so only transpile here. */
const tsRule = (/** @type {string} */ configFile) => ({
  test: /\.ts$/,
  exclude: /node_modules/,
  use: [
    {
      loader: 'ts-loader',
      options: {
        configFile: path.resolve(__dirname, configFile),
        transpileOnly: true,
        // The projects only emit declarations for `tsc -b`; the bundle needs JavaScript.
        compilerOptions: { emitDeclarationOnly: false, declaration: false, composite: false, noEmit: false },
      },
    },
  ],
});

/**
 * Keep `vscode` (provided by the host) and, when asked, the @tensorflow/* packages out of the bundle. Only
 * package roots are external: deep ESM imports such as tfjs-core/dist/register_all_gradients (which the
 * Node build of tfjs-core lacks) are bundled; they register into tfjs-core's global engine and registries.
 */
const nodeExternals = (/** @type {boolean} */ tfjs) => [
  { vscode: 'commonjs vscode' },
  ({ request }, /** @type {(e?: Error | null, r?: string) => void} */ callback) =>
    tfjs && request && /^@tensorflow\/[^/]+$/.test(request) ? callback(null, `commonjs ${request}`) : callback(),
];

/** @returns {import('webpack').Configuration} */
function nodeTarget(/** @type {string} */ name, /** @type {Record<string, string>} */ entry, /** @type {boolean} */ dev, extra = {}) {
  return {
    name,
    target: 'node20',
    mode: dev ? 'development' : 'production',
    entry,
    output: { path: dist, filename: '[name].js', library: { type: 'commonjs2' }, clean: false },
    // Real __dirname at run time: the bundles find dist/wasm and package.json relative to themselves.
    node: { __dirname: false, __filename: false },
    resolve: { extensions: ['.ts', '.js'] },
    // createRequire() is left to Node: it resolves the installed @tensorflow/tfjs-backend-wasm at run time.
    module: { rules: [tsRule('src/tsconfig.json')], parser: { javascript: { createRequire: false } } },
    externals: nodeExternals(true),
    devtool: 'source-map',
    performance: { hints: false },
    // sideEffects: false — with tfjs-core's "sideEffects" list, webpack 5.113 drops the `long` import of the
    // bundled tfjs-core/dist/hash_util.js (pulled in by register_all_gradients) without an error, and the
    // bundle throws "Cannot find module 'long'" at start-up.
    optimization: { minimize: false, sideEffects: false },
    ...extra,
  };
}

/** After emit: make dist/cli.js executable (the `bin` of package.json). */
class ChmodCliPlugin {
  /** @param {import('webpack').Compiler} compiler */
  apply(compiler) {
    compiler.hooks.afterEmit.tap('ChmodCliPlugin', () => {
      const cli = path.join(dist, 'cli.js');
      if (fs.existsSync(cli)) fs.chmodSync(cli, 0o755);
    });
  }
}

module.exports = (/** @type {unknown} */ _env, /** @type {{ mode?: string }} */ argv) => {
  const dev = argv.mode === 'development';
  /** @type {import('webpack').Configuration[]} */
  const configs = [];

  if (exists('src/extension.ts')) {
    configs.push(nodeTarget('extension', { extension: './src/extension.ts' }, dev));
  }

  /** @type {Record<string, string>} */
  const runtime = {};
  if (exists('src/worker/trainWorker.ts')) runtime.worker = './src/worker/trainWorker.ts';
  if (exists('src/worker/playgroundWorker.ts')) runtime.playgroundWorker = './src/worker/playgroundWorker.ts';
  if (exists('src/cli/main.ts')) runtime.cli = './src/cli/main.ts';
  if (Object.keys(runtime).length) {
    configs.push(
      nodeTarget('runtime', runtime, dev, {
        plugins: [
          new webpack.BannerPlugin({ banner: '#!/usr/bin/env node', raw: true, entryOnly: true, include: /^cli\.js$/ }),
          new ChmodCliPlugin(),
          // The wasm backend loads these by file path: dist/wasm next to dist/worker.js and dist/cli.js.
          new CopyPlugin({
            // `lora-lab export` copies its job files (train.py, launch.sh, ...) from dist/templates.
            patterns: [
              { from: 'node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm', to: 'wasm/[name][ext]' },
              { from: 'templates', to: 'templates', globOptions: { ignore: ['**/__pycache__/**'] } },
            ],
          }),
        ],
      }),
    );
  }

  if (exists('webview-ui/src/main.ts')) {
    configs.push({
      name: 'webview',
      target: 'web',
      mode: dev ? 'development' : 'production',
      entry: { main: './webview-ui/src/main.ts', ...(exists('webview-ui/src/playground/main.ts') ? { playground: './webview-ui/src/playground/main.ts' } : {}) },
      output: { path: path.join(dist, 'webview'), filename: '[name].js', assetModuleFilename: '[name][ext]', clean: true },
      resolve: { extensions: ['.ts', '.js'] },
      module: {
        rules: [
          tsRule('webview-ui/tsconfig.json'),
          { test: /\.css$/, use: [MiniCssExtractPlugin.loader, 'css-loader'] },
          { test: /\.(ttf|woff2?)$/, type: 'asset/resource' },
        ],
      },
      plugins: [new MiniCssExtractPlugin({ filename: '[name].css' })],
      // The webview CSP forbids eval: never an eval-based devtool (webpack's development default).
      devtool: dev ? 'source-map' : false,
      performance: { hints: false },
    });
  }
  return configs;
};
