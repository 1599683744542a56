// One playground generation: the base and base + adapter advance a token each in turn, so both columns
// grow together, and every token is reported as it is chosen. Used by the playground worker (and by the
// webview test's host, which runs it in-process). Cancelling stops both sides after their current token.
import type { FromPlaygroundWorker, PlaygroundRequest, PlaygroundSide, PlaygroundStop } from '../protocol/playground';
import type { StopReason } from '../engine/generate';
import { encodePrompt, streamSide, type PlaygroundSession, type StreamedToken } from './session';

export type PlaygroundEvent = Extract<FromPlaygroundWorker, { type: 'didStartGeneration' | 'didTokens' | 'didFinishSide' }>;

/** The sides a session can generate from: both when an adapter is loaded. */
export function sidesOf(session: PlaygroundSession): PlaygroundSide[] {
  return session.adapterDir ? ['base', 'adapter'] : ['base'];
}

export async function runPlaygroundGeneration(session: PlaygroundSession, genId: number, request: PlaygroundRequest, emit: (e: PlaygroundEvent) => void, signal?: AbortSignal): Promise<void> {
  const sides = sidesOf(session);
  let promptTokens: number;
  try {
    promptTokens = encodePrompt(session, request.prompt).length;
  } catch (e) {
    emit({ type: 'didStartGeneration', genId, sides, prompt: request.prompt, promptTokens: 0 });
    for (const side of sides) emit({ type: 'didFinishSide', genId, side, stop: 'failed', error: (e as Error).message });
    return;
  }
  emit({ type: 'didStartGeneration', genId, sides, prompt: request.prompt, promptTokens });
  const live = sides.map((side) => ({
    side,
    it: streamSide(session, side, { ...request, alternatives: 5 }, signal) as AsyncGenerator<StreamedToken, StopReason>,
  }));
  while (live.length > 0) {
    for (const s of [...live]) {
      let stop: PlaygroundStop | undefined;
      let error: string | undefined;
      try {
        const r = await s.it.next();
        if (r.done) stop = r.value;
        else {
          const t = r.value;
          emit({
            type: 'didTokens',
            genId,
            side: s.side,
            tokens: [{ index: t.index, id: t.id, text: t.text, piece: t.piece, logprob: t.logprob, top: t.top.map((c, i) => ({ id: c.id, piece: t.topPieces[i], logprob: c.logprob })) }],
          });
        }
      } catch (e) {
        stop = 'failed';
        error = (e as Error).message;
      }
      if (stop) {
        emit({ type: 'didFinishSide', genId, side: s.side, stop, error });
        live.splice(live.indexOf(s), 1);
      }
    }
  }
}
