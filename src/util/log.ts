// One LogOutputChannel for the extension ("LoRA Lab"), as rust-analyzer's `Log` in `util.ts`.
import * as vscode from 'vscode';

let channel: vscode.LogOutputChannel | undefined;

export function initLog(): vscode.LogOutputChannel {
  channel ??= vscode.window.createOutputChannel('LoRA Lab', { log: true });
  return channel;
}

export const log = {
  /** Internal timings and details: shown only when the channel's level is Debug or Trace. */
  debug(msg: string): void {
    channel?.debug(msg);
  },
  info(msg: string): void {
    channel?.info(msg);
  },
  warn(msg: string): void {
    channel?.warn(msg);
  },
  error(msg: string, err?: unknown): void {
    channel?.error(err === undefined ? msg : `${msg}: ${errorMessage(err)}`);
  },
  show(): void {
    channel?.show(true);
  },
  dispose(): void {
    channel?.dispose();
    channel = undefined;
  },
};

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
