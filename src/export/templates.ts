// Where the job templates (templates/hf-job: train.py, launch.sh, ...) are at run time. Kept apart from
// exportJob.ts so the extension host can find them without loading the engine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExportError } from './exportError';

/** templates/hf-job: beside the bundle (dist/templates) or in the repository (from src/export). */
export function templatesDir(): string {
  const candidates = [path.join(__dirname, 'templates', 'hf-job'), path.resolve(__dirname, '..', '..', 'templates', 'hf-job')];
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'train.py')));
  if (!found) throw new ExportError('bad-input', `the job templates are missing (looked in ${candidates.join(', ')}); reinstall LoRA Lab`);
  return found;
}
