// The webview protocol: MessageHandler request/reply/error round trips and validation of
// untrusted webview messages.
import assert from 'node:assert/strict';
import { MessageHandler, RemoteError, type Envelope } from '../../../src/protocol/messageHandler';
import { ProtocolError, validateFromWebview } from '../../../src/protocol/webview';
import { mergeMetricColumns, toMetricColumns } from '../../../src/shared/metricColumns';
import { until } from '../../support/until';

type Req = { type: 'add'; x: number; y: number } | { type: 'fail' } | { type: 'note'; text: string };
type Res = { type: 'sum'; value: number };

/** Two handlers wired back to back, as host and webview are (asynchronous delivery, like postMessage). */
function pair(onNote: (t: string) => void) {
  const wire: Envelope<unknown>[] = [];
  const left: MessageHandler<Req, Res> = new MessageHandler<Req, Res>(
    (env) => { wire.push(env); setTimeout(() => void right.handleMessage(JSON.parse(JSON.stringify(env))), 0); },
    () => undefined,
  );
  const right: MessageHandler<Res, Req> = new MessageHandler<Res, Req>(
    (env) => { wire.push(env); setTimeout(() => void left.handleMessage(env), 0); },
    (body) => {
      if (body.type === 'add') return { type: 'sum', value: body.x + body.y };
      if (body.type === 'fail') throw new Error('cannot do that: file x.safetensors is missing');
      onNote(body.text);
      return undefined;
    },
  );
  return { left, right, wire };
}

describe('MessageHandler', () => {
  it('matches replies to requests by messageId/inReplyTo', async () => {
    const { left, wire } = pair(() => {});
    const [a, b] = await Promise.all([left.sendRequest({ type: 'add', x: 1, y: 2 }), left.sendRequest({ type: 'add', x: 10, y: 20 })]);
    assert.deepEqual(a, { type: 'sum', value: 3 });
    assert.deepEqual(b, { type: 'sum', value: 30 });
    assert.deepEqual(wire.filter((e) => e.inReplyTo !== undefined).map((e) => e.inReplyTo).sort(), [1, 2]);
  });

  it('turns a thrown handler error into a rejected request (error reply)', async () => {
    const { left } = pair(() => {});
    await assert.rejects(left.sendRequest({ type: 'fail' }), (e: unknown) => RemoteError.is(e) && /x\.safetensors is missing/.test((e as Error).message));
  });

  it('delivers events without a reply', async () => {
    const notes: string[] = [];
    const { left, wire } = pair((t) => notes.push(t));
    left.sendEvent({ type: 'note', text: 'hello' });
    await until('the event', () => notes.length > 0);
    // A reply, if one were (wrongly) sent, goes out right after the handler: let that turn finish.
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(notes, ['hello']);
    assert.equal(wire.length, 1);
  });

  it('answers invalid requests with an error reply, and dispose rejects pending requests', async () => {
    const posted: Envelope<unknown>[] = [];
    const h = new MessageHandler<unknown, unknown>((e) => posted.push(e), () => 'ok', () => { throw new ProtocolError('bad message'); }, 0);
    await h.handleMessage({ messageId: 7, body: { type: 'evil' } });
    assert.deepEqual(posted, [{ inReplyTo: 7, error: 'bad message' }]);
    const p = h.sendRequest('x');
    h.dispose();
    await assert.rejects(p, /closed/);
  });

  it('times out a request nobody answers', async () => {
    const h = new MessageHandler<string, string>(() => {}, () => undefined, undefined, 20);
    await assert.rejects(h.sendRequest('x'), /no reply to request #1 within 20 ms/);
  });
});

describe('validateFromWebview', () => {
  it('accepts well-formed messages and copies only known fields', () => {
    assert.deepEqual(validateFromWebview({ type: 'ready', extra: 1 }), { type: 'ready' });
    assert.deepEqual(validateFromWebview({ type: 'factorsRequest', sourceId: 'abc', step: 20, __proto__: { x: 1 } }), { type: 'factorsRequest', sourceId: 'abc', step: 20 });
    assert.deepEqual(validateFromWebview({ type: 'referenceRequest', sourceId: 'abc', module: 'linear', kind: 'truth' }), { type: 'referenceRequest', sourceId: 'abc', module: 'linear', kind: 'truth' });
  });

  it('rejects unknown types, wrong field types and oversized strings with a clear message', () => {
    const bad: [unknown, RegExp][] = [
      [null, /should be an object, got null/],
      [[1], /should be an object/],
      [{ type: 'runShell', cmd: 'rm -rf /' }, /unknown webview message type "runShell"/],
      [{ type: 'factorsRequest', sourceId: 'a', step: -1 }, /'step' should be a non-negative integer, got -1/],
      [{ type: 'factorsRequest', sourceId: 'a', step: 1.5 }, /'step'/],
      [{ type: 'factorsRequest', sourceId: 5, step: 1 }, /'sourceId' should be a string, got number/],
      [{ type: 'factorsRequest', sourceId: 'x'.repeat(200), step: 1 }, /too long/],
      [{ type: 'referenceRequest', sourceId: 'a', module: 'm', kind: 'weights' }, /'kind' should be 'base' or 'truth'/],
      [{ type: 'log', level: 'fatal', message: 'x' }, /'level'/],
    ];
    for (const [msg, re] of bad) assert.throws(() => validateFromWebview(msg), (e: unknown) => ProtocolError.is(e) && re.test((e as Error).message), JSON.stringify(msg));
  });
});

describe('metric columns', () => {
  it('converts points and replaces a resumed tail', () => {
    const pt = (step: number, loss: number, evalLoss?: number) => ({ step, loss, evalLoss, lr: 0.1, gradNorm: 1, elapsedMs: step });
    const c = toMetricColumns([pt(1, 5), pt(2, 4, 4.5), pt(3, 3), pt(4, 2)]);
    assert.deepEqual(c.evalLoss, [null, 4.5, null, null]);
    assert.equal(mergeMetricColumns(c, toMetricColumns([pt(3, 3.1), pt(4, 2.1), pt(5, 1)])), 2, 'changed from index 2 on');
    assert.deepEqual(c.step, [1, 2, 3, 4, 5]);
    assert.deepEqual(c.loss, [5, 4, 3.1, 2.1, 1]);
    assert.equal(mergeMetricColumns(c, toMetricColumns([pt(6, 0.5)])), 5, 'appended only');
    assert.deepEqual(c.step, [1, 2, 3, 4, 5, 6]);
  });
});
