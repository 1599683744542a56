// The playground webview ("LoRA Lab: Try Adapter"): a prompt box, the generation settings, and one
// column per side (base model; base + adapter) that grows token by token. Each token is also a chip
// showing its log-probability, coloured by its probability; hovering or focusing a chip lists the most
// likely alternatives at that step. Talks to the host only through src/protocol/playground.ts.
import './playground.css';
import { PLAYGROUND_DEFAULTS, PLAYGROUND_LIMITS, type PlaygroundInfo, type PlaygroundRequest, type PlaygroundSide, type PlaygroundStop, type PlaygroundToken, type ToPlaygroundWebview, type FromPlaygroundWebview } from '../../../src/protocol/playground';
import { clear, h } from '../dom';
import { chipAlpha, displayPiece, formatLogprob } from './format';

interface VsCodeApi {
  postMessage(msg: FromPlaygroundWebview): void;
  getState(): unknown;
  setState(s: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api = acquireVsCodeApi();
const SIDE_TITLE: Record<PlaygroundSide, string> = { base: 'Base model', adapter: 'Base + adapter' };
const STOP_TEXT: Record<PlaygroundStop, string> = {
  'max-tokens': 'max tokens reached',
  'stop-token': 'end-of-sequence token',
  'max-sequence': "the model's longest sequence",
  cancelled: 'stopped',
  failed: 'failed',
};


interface SideView {
  side: PlaygroundSide;
  root: HTMLElement;
  generated: HTMLElement;
  chips: HTMLElement;
  stats: HTMLElement;
  tokens: PlaygroundToken[];
  stop?: PlaygroundStop;
  error?: string;
}

function numberInput(label: string, id: string, value: number, attrs: Record<string, string | number>, hint: string): { wrap: HTMLElement; input: HTMLInputElement } {
  const input = h('input', { type: 'number', id, 'data-testid': id, value: String(value), ...attrs });
  const wrap = h('label', { class: 'field', for: id, title: hint }, h('span', {}, label), input);
  return { wrap, input };
}

function main(): void {
  const app = document.getElementById('app') ?? document.body.appendChild(h('div', { id: 'app' }));
  const saved = (api.getState() ?? {}) as Partial<PlaygroundRequest>;
  const req: PlaygroundRequest = { prompt: 'LoRA ', ...PLAYGROUND_DEFAULTS, ...saved };

  const status = h('div', { class: 'status', 'data-testid': 'status', role: 'status' }, 'Loading…');
  const modelLine = h('div', { class: 'where', 'data-testid': 'model' });
  const adapterLine = h('div', { class: 'where', 'data-testid': 'adapter' });
  const notes = h('ul', { class: 'notes', 'data-testid': 'notes' });
  const chooseModel = h('button', { class: 'link', type: 'button', 'data-testid': 'choose-model' }, 'Change model…');
  const chooseAdapter = h('button', { class: 'link', type: 'button', 'data-testid': 'choose-adapter' }, 'Change adapter…');
  chooseModel.addEventListener('click', () => api.postMessage({ type: 'chooseModel' }));
  chooseAdapter.addEventListener('click', () => api.postMessage({ type: 'chooseAdapter' }));

  const prompt = h('textarea', { id: 'prompt', 'data-testid': 'prompt', rows: 3, spellcheck: false, 'aria-label': 'Prompt', placeholder: 'Type a prompt; Ctrl+Enter generates' });
  prompt.value = req.prompt;
  const maxTokens = numberInput('Max tokens', 'max-tokens', req.maxTokens, { min: 1, max: PLAYGROUND_LIMITS.maxTokens, step: 1 }, 'New tokens at most');
  const temperature = numberInput('Temperature', 'temperature', req.temperature, { min: 0, max: PLAYGROUND_LIMITS.maxTemperature, step: 0.1 }, '0 = greedy (the most likely token each step); above 0 samples from softmax(logits / T)');
  const topK = numberInput('Top-k', 'top-k', req.topK, { min: 0, step: 1 }, 'Sample among the k most likely tokens only (0 = all); no effect when greedy');
  const seed = numberInput('Seed', 'seed', req.seed, { min: 0, step: 1 }, 'The same seed gives the same sampled text');
  const ignoreEos = h('input', { type: 'checkbox', id: 'ignore-eos', 'data-testid': 'ignore-eos' });
  ignoreEos.checked = req.ignoreEos;
  const generateBtn = h('button', { type: 'button', class: 'primary', 'data-testid': 'generate', disabled: true }, 'Generate');
  const stopBtn = h('button', { type: 'button', class: 'secondary', 'data-testid': 'stop', disabled: true }, 'Stop');
  const mode = h('span', { class: 'mode', 'data-testid': 'mode' });
  const formError = h('div', { class: 'form-error', 'data-testid': 'form-error', role: 'alert' });

  const columns = h('div', { class: 'columns', 'data-testid': 'columns' });
  const detail = h('div', { class: 'detail', 'data-testid': 'detail' }, 'Hover or focus a token to see the most likely tokens at that step.');

  app.append(
    h('header', {}, h('h1', {}, 'Try Adapter'), status),
    h('section', { class: 'loaded' }, h('div', { class: 'row' }, modelLine, chooseModel), h('div', { class: 'row' }, adapterLine, chooseAdapter), notes),
    h(
      'section',
      { class: 'form' },
      prompt,
      h(
        'div',
        { class: 'settings' },
        maxTokens.wrap,
        temperature.wrap,
        topK.wrap,
        seed.wrap,
        h('label', { class: 'check', for: 'ignore-eos' }, ignoreEos, h('span', {}, 'Ignore end-of-sequence')),
        mode,
        h('span', { class: 'spacer' }),
        stopBtn,
        generateBtn,
      ),
      formError,
    ),
    columns,
    detail,
  );

  let loaded = false;
  let running = false;
  let current = 0;
  let sides: SideView[] = [];

  const updateMode = () => {
    const t = Number(temperature.input.value);
    const k = Number(topK.input.value);
    mode.textContent = t === 0 ? 'greedy' : `sampling, T = ${t}${k > 0 ? `, top-${k}` : ''}, seed ${seed.input.value}`;
  };
  const setRunning = (r: boolean) => {
    running = r;
    generateBtn.disabled = !loaded;
    stopBtn.disabled = !r;
    document.body.dataset.running = String(r);
  };

  /** The form as a request, or a message naming the field that is wrong. */
  const readForm = (): PlaygroundRequest | string => {
    const int = (el: HTMLInputElement, name: string, min: number, max: number) => {
      const v = Number(el.value);
      return el.value.trim() !== '' && Number.isInteger(v) && v >= min && v <= max ? v : `${name} should be a whole number from ${min} to ${max}`;
    };
    const mt = int(maxTokens.input, 'Max tokens', 1, PLAYGROUND_LIMITS.maxTokens);
    const tk = int(topK.input, 'Top-k', 0, PLAYGROUND_LIMITS.maxTopK);
    const sd = int(seed.input, 'Seed', 0, 2 ** 31 - 1);
    const t = Number(temperature.input.value);
    for (const v of [mt, tk, sd]) if (typeof v === 'string') return v;
    if (temperature.input.value.trim() === '' || !Number.isFinite(t) || t < 0 || t > PLAYGROUND_LIMITS.maxTemperature) return `Temperature should be a number from 0 (greedy) to ${PLAYGROUND_LIMITS.maxTemperature}`;
    if (prompt.value.length === 0) return 'Type a prompt first';
    return { prompt: prompt.value, maxTokens: mt as number, temperature: t, topK: tk as number, seed: sd as number, ignoreEos: ignoreEos.checked };
  };

  const generate = () => {
    if (!loaded) return;
    const r = readForm();
    if (typeof r === 'string') {
      formError.textContent = r;
      return;
    }
    formError.textContent = '';
    api.setState(r);
    api.postMessage({ type: 'generate', request: r });
  };
  generateBtn.addEventListener('click', generate);
  stopBtn.addEventListener('click', () => api.postMessage({ type: 'cancel' }));
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      generate();
    }
  });
  for (const el of [temperature.input, topK.input, seed.input]) el.addEventListener('input', updateMode);
  updateMode();

  const showDetail = (v: SideView, t: PlaygroundToken) => {
    clear(detail);
    detail.append(
      h('div', { class: 'detail-title' }, `${SIDE_TITLE[v.side]}, token ${t.index + 1}: `, h('code', {}, displayPiece(t.piece)), ` log p = ${formatLogprob(t.logprob)} (p = ${(Math.exp(t.logprob) * 100).toFixed(2)} %)`),
    );
    const table = h('table', { 'data-testid': 'alternatives' }, h('thead', {}, h('tr', {}, h('th', {}, 'Token'), h('th', {}, 'log p'), h('th', {}, 'p'))));
    const body = h('tbody', {});
    // Bars relative to the most likely alternative: a near-uniform tiny model still shows its ranking.
    const best = Math.max(...t.top.map((c) => c.logprob));
    for (const c of t.top) {
      const bar = h('span', { class: 'bar' });
      bar.style.width = `${(80 * Math.exp(c.logprob - best)).toFixed(1)}px`;
      body.append(h('tr', { class: c.id === t.id ? 'chosen' : undefined }, h('td', {}, h('code', {}, displayPiece(c.piece))), h('td', { class: 'num' }, formatLogprob(c.logprob)), h('td', { class: 'num' }, `${(Math.exp(c.logprob) * 100).toFixed(2)} %`, bar)));
    }
    table.append(body);
    detail.append(table);
  };

  const renderStats = (v: SideView) => {
    const n = v.tokens.length;
    const mean = n ? v.tokens.reduce((a, t) => a + t.logprob, 0) / n : 0;
    const parts = [`${n} token${n === 1 ? '' : 's'}`];
    if (n) parts.push(`mean log p ${formatLogprob(mean)}`, `perplexity ${Math.exp(-mean).toFixed(1)}`);
    if (v.stop) parts.push(v.stop === 'failed' ? `failed: ${v.error ?? ''}` : STOP_TEXT[v.stop]);
    else if (running) parts.push('generating…');
    v.stats.textContent = parts.join(' · ');
    v.root.classList.toggle('failed', v.stop === 'failed');
  };

  const startGeneration = (m: Extract<ToPlaygroundWebview, { type: 'didStartGeneration' }>) => {
    current = m.genId;
    clear(columns);
    clear(detail);
    detail.append('Hover or focus a token to see the most likely tokens at that step.');
    sides = m.sides.map((side) => {
      const generated = h('span', { class: 'generated', 'data-testid': `text-${side}` });
      const chips = h('div', { class: 'chips', 'data-testid': `tokens-${side}`, role: 'list', 'aria-label': `${SIDE_TITLE[side]} tokens` });
      const stats = h('div', { class: 'stats', 'data-testid': `stats-${side}` });
      const root = h(
        'section',
        { class: `side side-${side}`, 'data-testid': `side-${side}` },
        h('h2', {}, SIDE_TITLE[side]),
        stats,
        h('div', { class: 'text' }, h('span', { class: 'prompt-echo' }, m.prompt), generated),
        h('div', { class: 'chips-title' }, 'Tokens and their log-probabilities'),
        chips,
      );
      columns.append(root);
      return { side, root, generated, chips, stats, tokens: [] };
    });
    columns.classList.toggle('two', m.sides.length > 1);
    setRunning(true);
    sides.forEach(renderStats);
  };

  const addTokens = (m: Extract<ToPlaygroundWebview, { type: 'didTokens' }>) => {
    const v = sides.find((s) => s.side === m.side);
    if (!v || m.genId !== current) return;
    for (const t of m.tokens) {
      v.tokens.push(t);
      v.generated.append(t.text);
      const chip = h(
        'span',
        { class: 'chip', role: 'listitem', tabindex: 0, 'data-logprob': t.logprob.toFixed(6), 'data-id': t.id, title: `log p ${formatLogprob(t.logprob)}; alternatives: ${t.top.map((c) => `${displayPiece(c.piece)} ${formatLogprob(c.logprob)}`).join(', ')}` },
        h('span', { class: 'piece' }, displayPiece(t.piece)),
        h('span', { class: 'lp' }, formatLogprob(t.logprob)),
      );
      chip.style.setProperty('--p', chipAlpha(t.logprob));
      chip.addEventListener('mouseenter', () => showDetail(v, t));
      chip.addEventListener('focus', () => showDetail(v, t));
      v.chips.append(chip);
    }
    renderStats(v);
  };

  const finishSide = (m: Extract<ToPlaygroundWebview, { type: 'didFinishSide' }>) => {
    const v = sides.find((s) => s.side === m.side);
    if (!v || m.genId !== current) return;
    v.stop = m.stop;
    v.error = m.error;
    if (sides.every((s) => s.stop)) setRunning(false);
    sides.forEach(renderStats);
  };

  const showLoaded = (info: PlaygroundInfo) => {
    loaded = true;
    modelLine.textContent = `Base model: ${info.modelDir} (${info.modelType}, vocabulary ${info.vocabSize.toLocaleString('en-US')}, ${info.tokenizer === 'bytes' ? 'UTF-8 bytes as tokens' : 'tokenizer.json'})`;
    adapterLine.textContent = info.adapterDir ? `Adapter: ${info.adapterDir}` : 'Adapter: none (only the base model generates)';
    clear(notes);
    for (const n of info.notes) notes.append(h('li', {}, n));
    status.textContent = `Ready · backend ${info.backend} · each token recomputes the whole sequence (no key/value cache)`;
    status.classList.remove('error');
    setRunning(running);
  };

  window.addEventListener('message', (e: MessageEvent<ToPlaygroundWebview>) => {
    const m = e.data;
    switch (m?.type) {
      case 'didStartLoading':
        loaded = false;
        status.textContent = 'Loading the model…';
        status.classList.remove('error');
        modelLine.textContent = `Base model: ${m.modelDir}`;
        adapterLine.textContent = m.adapterDir ? `Adapter: ${m.adapterDir}` : 'Adapter: none';
        clear(columns);
        setRunning(false);
        break;
      case 'didLoad':
        showLoaded(m.info);
        break;
      case 'didFailLoad':
        loaded = false;
        status.textContent = m.message;
        status.classList.add('error');
        setRunning(false);
        break;
      case 'didStartGeneration':
        startGeneration(m);
        break;
      case 'didTokens':
        addTokens(m);
        break;
      case 'didFinishSide':
        finishSide(m);
        break;
    }
  });
  api.postMessage({ type: 'ready' });
  document.body.dataset.ready = 'true';
}

main();
