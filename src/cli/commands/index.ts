// The `lora-lab` command table: one line per command, in the order `--help` lists them.
import type { CliCommand } from '../command';
import { trainCommand } from './train';
import { paramsCommand } from './params';
import { reportCommand } from './report';
import { inspectCommand } from './inspect';
import { logitsCommand } from './logits';
import { generateCommand } from './generate';
import { mergeCommand } from './merge';
import { exportCommand } from './export';
import { convertCommand } from './convert';

export const commands: CliCommand[] = [
  trainCommand,
  paramsCommand,
  reportCommand,
  inspectCommand,
  logitsCommand,
  generateCommand,
  mergeCommand,
  exportCommand,
  convertCommand,
];
