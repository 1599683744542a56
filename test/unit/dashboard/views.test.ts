// Pure parts of the dashboard views: the differing-hyperparameter table, the subtitle, the heatmap
// zoom window, CSV lines, tooltip order, Parameters counts (the shared paramCount helpers) and the
// export message's validation.
import assert from 'node:assert/strict';
import { ProtocolError, validateFromWebview, type SourceSnapshot } from '../../../src/protocol/webview';
import { differingHyperparameters, flattenConfig } from '../../../webview-ui/src/hyperparams';
import { subtitleText } from '../../../webview-ui/src/header';
import { panWindow, sliceMatrix, zoomWindow } from '../../../webview-ui/src/heatmap/window';
import { csvLine, safeFileName } from '../../../webview-ui/src/exportChart';
import { sortRows } from '../../../webview-ui/src/tooltip';
import { modelParams, moduleRow } from '../../../webview-ui/src/params';
import { formatDuration } from '../../../webview-ui/src/series';

function source(kind: 'run' | 'adapter', label: string, status?: string): SourceSnapshot {
  return { id: label, kind, label, path: `/x/${label}`, checkpoints: [], modules: [], spectra: [], references: [], ...(status ? { run: { status } as SourceSnapshot['run'] } : {}) };
}

describe('dashboard views (pure parts)', () => {
  it('lists only the hyperparameters that differ, by dotted key, with a dash where one run lacks the key', () => {
    const a = { name: 'a', lora: { r: 1, alpha: 1, dropout: 0 }, optimizer: { lr: 0.02 }, training: { seed: 1 } };
    const b = { name: 'b', lora: { r: 4, alpha: 4, dropout: 0 }, optimizer: { lr: 0.01, betas: [0.9, 0.99] }, training: { seed: 1 } };
    assert.deepEqual(flattenConfig(b)['optimizer.betas'], '[0.9,0.99]');
    assert.deepEqual(differingHyperparameters([a, b]), [
      { key: 'lora.alpha', values: ['1', '4'] },
      { key: 'lora.r', values: ['1', '4'] },
      { key: 'optimizer.betas', values: [undefined, '[0.9,0.99]'] },
      { key: 'optimizer.lr', values: ['0.02', '0.01'] },
    ]);
    assert.deepEqual(differingHyperparameters([a, { ...a, name: 'other' }]), []);
  });

  it('subtitle: Live only while a run trains; an adapter alone names itself; a report says when', () => {
    const header = { title: 't', generatedAt: '2026-01-02T03:04:05Z', live: true };
    assert.equal(subtitleText(header, [source('adapter', 'lora_disney.safetensors')]), 'Adapter · lora_disney.safetensors');
    assert.equal(subtitleText(header, [source('run', 'a', 'running'), source('run', 'b', 'completed')]), 'Live · 2 runs (1 training)');
    assert.equal(subtitleText(header, [source('run', 'a', 'completed'), source('run', 'b', 'cancelled')]), '2 runs · completed, cancelled');
    assert.equal(subtitleText({ ...header, live: false }, [source('run', 'a', 'completed')]), 'Report · 1 run · generated 2026-01-02T03:04:05Z');
    assert.equal(subtitleText(header, []), 'nothing shown yet');
  });

  it('zoom keeps the value under the cursor in place and stays inside the matrix; pan clamps', () => {
    const whole = { r0: 0, r1: 100, c0: 0, c1: 200 };
    const z = zoomWindow(whole, 100, 200, 2, 50, 100);
    assert.deepEqual(z, { r0: 25, r1: 75, c0: 50, c1: 150 });
    // At the corner: the window stays inside.
    assert.deepEqual(zoomWindow(whole, 100, 200, 4, 0, 0), { r0: 0, r1: 25, c0: 0, c1: 50 });
    // Never below 8 values across; never beyond the whole matrix.
    const tiny = zoomWindow({ r0: 0, r1: 9, c0: 0, c1: 9 }, 100, 200, 10, 4, 4);
    assert.equal(tiny.r1 - tiny.r0, 8);
    assert.deepEqual(zoomWindow(z, 100, 200, 0.1, 50, 100), whole);
    assert.deepEqual(panWindow(z, 100, 200, 1000, -1000), { r0: 50, r1: 100, c0: 0, c1: 100 });
    const m = Float32Array.from({ length: 12 }, (_, i) => i); // [3, 4]
    assert.deepEqual(Array.from(sliceMatrix(m, 3, 4, { r0: 1, r1: 3, c0: 1, c1: 3 })), [5, 6, 9, 10]);
    assert.equal(sliceMatrix(m, 3, 4, { r0: 0, r1: 3, c0: 0, c1: 4 }), m);
  });

  it('CSV cells are quoted when needed; gaps are empty; file names are plain', () => {
    assert.equal(csvLine(['run "a", r=1', 3, null, NaN, 0.5]), '"run ""a"", r=1",3,,,0.5');
    assert.equal(safeFileName('Loss-sweep r=1/../x', 'csv'), 'Loss-sweep-r-1-..-x.csv');
    assert.equal(safeFileName('', 'png'), 'chart.png');
    assert.equal(formatDuration(42_510), '42.5 s');
    assert.equal(formatDuration(185_000), '3 min 05 s');
  });

  it('tooltip rows: highest value first, rows without a value left out', () => {
    const rows = sortRows([
      { label: 'a', value: 0.1, color: '#000' },
      { label: 'b', value: null, color: '#000' },
      { label: 'c', value: 2, color: '#000' },
      { label: 'd', value: NaN, color: '#000' },
      { label: 'e', value: 0.5, color: '#000' },
    ]);
    assert.deepEqual(rows.map((r) => r.label), ['c', 'e', 'a']);
  });

  it('Parameters: GPT-2 c_attn with its bias, PEFT % over base + LoRA only when the base is known', () => {
    const m = { name: 'transformer.h.0.attn.c_attn', inFeatures: 64, outFeatures: 192, r: 8, alpha: 16, scale: 2, hasBias: true, kind: 'lora' };
    const row = moduleRow(m)!;
    assert.equal(row.full, 12_480);
    assert.equal(row.loraBiasFrozen, 8 * (64 + 192));
    assert.equal(row.loraBiasTrained, 8 * (64 + 192) + 192);
    // GPT-2 small (124,439,808 parameters), c_attn in 12 layers at r = 8 (768 → 2304): PEFT prints 0.2359 %.
    const layers = Array.from({ length: 12 }, (_, i) => ({ ...m, name: `transformer.h.${i}.attn.c_attn`, inFeatures: 768, outFeatures: 2304 }));
    const known = modelParams(layers, 124_439_808);
    assert.equal(known.loraBiasFrozen, 294_912);
    assert.ok(Math.abs(known.percentPeft - 0.2364) < 1e-3, String(known.percentPeft));
    const unknown = modelParams(layers);
    assert.equal(unknown.totalKnown, false);
    assert.equal(unknown.total, 12 * (768 * 2304 + 2304));
    assert.equal(moduleRow({ ...m, r: 0, kind: 'lokr' }), undefined);
  });

  it('saveExport messages: plain file names of the right type, base64 PNGs, anything else refused', () => {
    assert.deepEqual(validateFromWebview({ type: 'saveExport', fileName: 'Loss-a.csv', mime: 'text/csv', data: 'run,step\n' }), { type: 'saveExport', fileName: 'Loss-a.csv', mime: 'text/csv', data: 'run,step\n' });
    assert.throws(() => validateFromWebview({ type: 'saveExport', fileName: '../x.csv', mime: 'text/csv', data: '' }), ProtocolError);
    assert.throws(() => validateFromWebview({ type: 'saveExport', fileName: 'x.png', mime: 'text/csv', data: '' }), /plain file name ending in \.csv/);
    assert.throws(() => validateFromWebview({ type: 'saveExport', fileName: 'x.png', mime: 'image/png', data: '<svg>' }), /base64/);
    assert.throws(() => validateFromWebview({ type: 'saveExport', fileName: 'x.exe', mime: 'application/x', data: '' }), /'mime'/);
  });
});
