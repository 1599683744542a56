// Generation (src/engine/generate.ts, src/playground/, `lora-lab generate`): greedy steps see exactly the
// logits `lora-lab logits` gives for the growing sequence, seeded sampling replays, top-k never leaves
// the k most likely tokens, streamed text is whole characters, and bad input is named.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chooseToken, generate, logSoftmax, topKIndices, type NextLogits } from '../../../src/engine/generate';
import { Rng } from '../../../src/engine/rng';
import { EngineError } from '../../../src/engine/errors';
import { openPlaygroundSession, streamSide, type PlaygroundSession, type StreamedToken } from '../../../src/playground/session';
import { bytesPlaygroundTokenizer, StreamDecoder } from '../../../src/playground/tokenizer';
import { logitsCommand } from '../../../src/cli/commands/logits';
import { generateCommand } from '../../../src/cli/commands/generate';
import { CliError } from '../../../src/cli/command';
import { PEFT_FIXTURES, maxAbsDiff, useCpu } from '../interop/helpers';

const ROOT = path.resolve(__dirname, '../../..');
const QKVO = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8');
const DORA = path.join(PEFT_FIXTURES, 'llama-tiny-dora');
const GPT2 = path.join(ROOT, 'examples/models/tiny-gpt2');
/** The engine against itself on one backend: the same kernels, so far tighter than the PEFT tolerance. */
const SAME_ENGINE_TOL = 1e-5;

/** Runs a CLI command in this process, returning what it wrote to stdout (stderr is dropped). */
async function capture(cmd: { run(argv: string[]): unknown }, ...argv: string[]): Promise<{ code: unknown; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return { code: await cmd.run(argv), out };
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
  }
}

async function collect(it: AsyncGenerator<StreamedToken, string>): Promise<{ tokens: StreamedToken[]; stop: string }> {
  const tokens: StreamedToken[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return { tokens, stop: r.value };
    tokens.push(r.value);
  }
}

describe('playground: generation', function () {
  this.timeout(60000);
  let tmp: string;
  before(async () => {
    await useCpu();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-generate-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe('sampling maths', () => {
    it('topKIndices: the k largest, largest first, ties to the lower index', () => {
      assert.deepEqual(topKIndices([0.1, 3, -1, 3, 2], 3), [1, 3, 4]);
      assert.deepEqual(topKIndices([5, 4], 10), [0, 1]);
      assert.deepEqual(topKIndices([1, 1, 1], 1), [0]);
    });

    it('greedy is argmax; top-k draws only among the k best, in proportion to softmax(logits / T)', () => {
      const logits = Float32Array.from([0.5, 2.0, -1.0, 1.5, 1.9, 0.0]);
      assert.equal(chooseToken(logits, { temperature: 0 }), 1);
      const rng = new Rng(7);
      const counts = new Map<number, number>();
      const n = 20000;
      for (let i = 0; i < n; i++) {
        const id = chooseToken(logits, { temperature: 0.7, topK: 3 }, rng);
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      assert.deepEqual([...counts.keys()].sort(), [1, 3, 4], 'only the three most likely tokens are ever drawn');
      const want = logSoftmax([2.0, 1.9, 1.5], 0.7).map(Math.exp); // renormalised over the kept three
      [1, 4, 3].forEach((id, j) => {
        const f = counts.get(id)! / n;
        // Binomial standard error at n = 20000 is ≤ 0.0036; 5σ.
        assert.ok(Math.abs(f - want[j]) < 0.018, `token ${id}: frequency ${f.toFixed(4)}, softmax ${want[j].toFixed(4)}`);
      });
    });

    it('refuses bad options, naming the field and the value', async () => {
      const next: NextLogits = () => new Float32Array(4);
      const first = (o: Parameters<typeof generate>[2], prompt = [1]) => generate(next, prompt, o).next();
      await assert.rejects(first({ maxTokens: 0, temperature: 0 }), /maxTokens should be a positive integer, got 0/);
      await assert.rejects(first({ maxTokens: 3, temperature: -1 }), /temperature should be a number ≥ 0 \(0 = greedy\), got -1/);
      await assert.rejects(first({ maxTokens: 3, temperature: 1, topK: 1.5 }), /topK should be an integer ≥ 0/);
      await assert.rejects(first({ maxTokens: 3, temperature: 0 }, []), (e: unknown) => EngineError.is(e, 'invalid-argument') && /prompt is empty/.test((e as Error).message));
      await assert.rejects(first({ maxTokens: 3, temperature: 0, maxSequence: 2 }, [1, 2]), /the prompt has 2 tokens; the model takes at most 2/);
      await assert.rejects(generate(() => Float32Array.from([0, NaN]), [1], { maxTokens: 1, temperature: 0 }).next(), /logit for token 1 is NaN/);
    });

    it('stops at a stop id, at the longest sequence, and when cancelled', async () => {
      const next: NextLogits = (ids) => Float32Array.from([0, 0, 0, 0].map((_, i) => (i === ids.length % 4 ? 1 : 0)));
      const run = async (o: Parameters<typeof generate>[2], signal?: AbortSignal) => {
        const ids: number[] = [];
        const it = generate(next, [0], o, signal);
        for (;;) {
          const r = await it.next();
          if (r.done) return { ids, stop: r.value };
          ids.push(r.value.id);
        }
      };
      assert.deepEqual(await run({ maxTokens: 10, temperature: 0, stopIds: [3] }), { ids: [1, 2, 3], stop: 'stop-token' });
      assert.deepEqual(await run({ maxTokens: 10, temperature: 0, maxSequence: 3 }), { ids: [1, 2], stop: 'max-sequence' });
      assert.deepEqual(await run({ maxTokens: 2, temperature: 0 }), { ids: [1, 2], stop: 'max-tokens' });
      const c = new AbortController();
      c.abort();
      assert.deepEqual(await run({ maxTokens: 5, temperature: 0 }, c.signal), { ids: [], stop: 'cancelled' });
    });
  });

  describe('streamed text', () => {
    it('holds back an incomplete UTF-8 character until its last byte', () => {
      const tok = bytesPlaygroundTokenizer();
      const d = new StreamDecoder(tok);
      const bytes = tok.encode('aé€b'); // 61 | c3 a9 | e2 82 ac | 62
      assert.deepEqual(
        bytes.map((b) => d.push(b)),
        ['a', '', 'é', '', '', '€', 'b'],
      );
      assert.equal(tok.piece(0x0a), '\n');
      assert.equal(tok.piece(0xc3), '<0xC3>');
      assert.equal(tok.decode(bytes), 'aé€b');
    });
  });

  describe('on real models (cpu backend)', () => {
    const sessions: PlaygroundSession[] = [];
    after(() => sessions.forEach((s) => s.dispose()));
    async function open(model: string, adapter?: string): Promise<PlaygroundSession> {
      const s = await openPlaygroundSession(model, adapter);
      sessions.push(s);
      return s;
    }

    for (const [name, model, adapter] of [
      ['Llama + LoRA (q, k, v, o, r 8)', path.join(QKVO, 'base'), path.join(QKVO, 'adapter')],
      ['Llama + DoRA', path.join(DORA, 'base'), path.join(DORA, 'adapter')],
      ['GPT-2 base', GPT2, undefined],
    ] as const) {
      it(`${name}: each greedy step's logits equal \`lora-lab logits\` on the growing sequence`, async () => {
        const session = await open(model, adapter);
        const side = adapter ? 'adapter' : 'base';
        const seen: Float32Array[] = [];
        const inner = session.next(side);
        const recording = { ...session, next: () => (ids: readonly number[]) => { const l = inner(ids) as Float32Array; seen.push(l); return l; } } as PlaygroundSession;
        const prompt = 'LoRA';
        const { tokens } = await collect(streamSide(recording, side, { prompt, maxTokens: 6, temperature: 0, ignoreEos: true }));
        assert.equal(tokens.length, 6);
        const ids = [...Buffer.from(prompt)];
        for (let i = 0; i < tokens.length; i++) {
          const file = path.join(tmp, `ids-${i}.json`);
          fs.writeFileSync(file, JSON.stringify([ids]));
          const out = path.join(tmp, `logits-${i}.json`);
          await capture(logitsCommand, '--model', model, ...(adapter ? ['--adapter', adapter] : []), '--input-ids', file, '--out', out, '--backend', 'cpu');
          const { shape, data } = JSON.parse(fs.readFileSync(out, 'utf8')) as { shape: number[]; data: number[] };
          const v = shape[2];
          const last = data.slice((ids.length - 1) * v, ids.length * v);
          const d = maxAbsDiff(seen[i], last);
          assert.ok(d <= SAME_ENGINE_TOL, `step ${i}: max |Δ| ${d} between the generator's logits and lora-lab logits`);
          const argmax = topKIndices(last, 1)[0];
          assert.equal(tokens[i].id, argmax, `step ${i}: greedy picked ${tokens[i].id}, argmax of lora-lab logits is ${argmax}`);
          assert.ok(Math.abs(tokens[i].logprob - logSoftmax(last)[argmax]) < 1e-5, `step ${i}: log-prob`);
          ids.push(tokens[i].id);
        }
      });
    }

    it("uses the folder's tokenizer.json when there is one: pieces are its tokens, streamed text is its decoding", async () => {
      const model = path.join(tmp, 'tok-model');
      fs.mkdirSync(model, { recursive: true });
      for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(GPT2, f), path.join(model, f));
      const words = ['the', 'adapter', 'is', 'small', 'base', 'model', 'needs', 'a', '.'];
      fs.writeFileSync(
        path.join(model, 'tokenizer.json'),
        JSON.stringify({
          version: '1.0', truncation: null, padding: null, normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, added_tokens: [],
          decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
          model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: 'a' },
        }),
      );
      const session = await open(model);
      assert.equal(session.tokenizer.kind, 'tokenizer');
      // The model's vocabulary (256) is larger than the tokenizer's: restrict the draw to ids it can decode.
      const next = session.next('base');
      const wordsOnly = { ...session, next: () => (ids: readonly number[]) => (next(ids) as Float32Array).map((v, i) => (i < words.length ? v : -Infinity)) } as PlaygroundSession;
      const { tokens } = await collect(streamSide(wordsOnly, 'base', { prompt: 'the adapter', maxTokens: 6, temperature: 0, ignoreEos: true }));
      assert.equal(tokens.length, 6);
      for (const t of tokens) assert.equal(t.piece, words[t.id]);
      assert.equal(tokens.map((t) => t.text).join(''), ' ' + tokens.map((t) => words[t.id]).join(' '));
    });

    it('seeded sampling replays exactly; another seed gives another text; top-k stays in the k best', async () => {
      const session = await open(path.join(QKVO, 'base'), path.join(QKVO, 'adapter'));
      const req = { prompt: 'Hello', maxTokens: 24, temperature: 1.5, topK: 4, ignoreEos: true, alternatives: 4 };
      const a = await collect(streamSide(session, 'adapter', { ...req, seed: 11 }));
      const b = await collect(streamSide(session, 'adapter', { ...req, seed: 11 }));
      const c = await collect(streamSide(session, 'adapter', { ...req, seed: 12 }));
      assert.deepEqual(a.tokens.map((t) => t.id), b.tokens.map((t) => t.id));
      assert.notDeepEqual(a.tokens.map((t) => t.id), c.tokens.map((t) => t.id));
      for (const t of [...a.tokens, ...c.tokens]) {
        assert.ok(t.top.some((x) => x.id === t.id), `token ${t.id} at step ${t.index} is not among the 4 most likely ${JSON.stringify(t.top.map((x) => x.id))}`);
      }
      // A temperature this high on a near-uniform tiny model does not pick the argmax every time.
      assert.ok(a.tokens.some((t) => t.id !== t.top[0].id), 'sampling never left the argmax');
    });

    it('base and adapter differ on the same prompt (the adapter is applied)', async () => {
      const session = await open(path.join(QKVO, 'base'), path.join(QKVO, 'adapter'));
      const req = { prompt: 'LoRA', maxTokens: 8, temperature: 0, ignoreEos: true };
      const base = await collect(streamSide(session, 'base', req));
      const adapted = await collect(streamSide(session, 'adapter', req));
      assert.notDeepEqual(base.tokens.map((t) => t.logprob), adapted.tokens.map((t) => t.logprob));
    });

    it("stops at a stop token, and reads the model's eos ids from config.json", async () => {
      const session = await open(GPT2);
      const r = await collect(streamSide(session, 'base', { prompt: 'A', maxTokens: 3, temperature: 0, stopIds: [65] }));
      assert.equal(r.stop, 'stop-token');
      assert.equal(r.tokens.at(-1)!.id, 65);
      assert.deepEqual(session.eosIds, [0]);
    });
  });

  describe('lora-lab generate', () => {
    it('--json streams one object per token with log-probs, then a summary; text mode prints the continuation', async () => {
      const args = ['--model', path.join(QKVO, 'base'), '--adapter', path.join(QKVO, 'adapter'), '--prompt', 'LoRA', '--max-tokens', '5', '--ignore-eos', '--backend', 'cpu'];
      const { out } = await capture(generateCommand, ...args, '--json', '--base-too');
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(lines.length, 12);
      for (const side of ['base', 'adapter']) {
        const toks = lines.filter((l) => l.side === side && !l.done);
        assert.equal(toks.length, 5);
        for (const t of toks) {
          assert.ok(typeof t.logprob === 'number' && (t.logprob as number) <= 0, `logprob ${String(t.logprob)}`);
          assert.equal((t.top as unknown[]).length, 5);
        }
        const done = lines.find((l) => l.side === side && l.done)!;
        assert.equal(done.stop, 'max-tokens');
        assert.equal(done.text, toks.map((t) => t.text).join(''));
      }
      const text = await capture(generateCommand, ...args);
      const adapterText = lines.find((l) => l.side === 'adapter' && l.done)!.text as string;
      assert.equal(text.out, `LoRA${adapterText}\n[5 token(s), stopped: --max-tokens reached]\n`);
    });

    it('names what is wrong on the command line and in the folders', async () => {
      await assert.rejects(capture(generateCommand, '--prompt', 'x'), (e: unknown) => CliError.is(e, 'usage') && /--model and --prompt are required/.test(e.message));
      await assert.rejects(capture(generateCommand, '--model', GPT2, '--prompt', 'x', '--temperature=-1'), /--temperature must be ≥ 0, got -1/);
      await assert.rejects(capture(generateCommand, '--model', GPT2, '--prompt', 'x', '--top-k', '2.5'), /--top-k expects an integer, got 2.5/);
      await assert.rejects(capture(generateCommand, '--model', GPT2, '--prompt', 'x', '--base-too'), /--base-too compares with an adapter/);
      const missing = path.join(tmp, 'no-such-model');
      await assert.rejects(capture(generateCommand, '--model', missing, '--prompt', 'x', '--backend', 'cpu'), (e: unknown) => CliError.is(e, 'failed') && e.message.includes(missing) && /no such folder/.test(e.message));
      await assert.rejects(capture(generateCommand, '--model', GPT2, '--prompt', '', '--backend', 'cpu'), /the prompt is empty/);
    });
  });
});
