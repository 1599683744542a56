// Does this Python have what an exported job needs? Imports torch, transformers, peft and accelerate in
// the interpreter itself (never guessed from pip metadata) and compares their versions with the lower
// bounds of the job's requirements.txt (templates/hf-job), so both say the same thing.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { templatesDir } from '../export/templates';

export const REQUIRED_PACKAGES = ['torch', 'transformers', 'peft', 'accelerate'] as const;

export interface PythonCheck {
  ok: boolean;
  python: string;
  /** "3.11.2" when the interpreter ran. */
  pythonVersion?: string;
  /** Imported packages and their __version__. */
  versions: Record<string, string>;
  missing: string[];
  /** "peft 0.5.0 (need >= 0.13)". */
  tooOld: string[];
  /** One line for the user: what is wrong and the command that fixes it. */
  message: string;
  /** The pip command that installs the job's requirements into this interpreter. */
  installCommand: string;
}

/** Lower bounds (`name>=x`) of the job's requirements.txt. */
export function minimumVersions(requirements = fs.readFileSync(path.join(templatesDir(), 'requirements.txt'), 'utf8')): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of requirements.split('\n')) {
    const m = /^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)/.exec(line.trim());
    if (m) out[m[1].toLowerCase()] = m[2];
  }
  return out;
}

/** Numeric compare of dotted versions ("1.13.0a0" counts as 1.13.0). */
export function versionAtLeast(have: string, need: string): boolean {
  const nums = (v: string) => v.split('+')[0].split('.').map((p) => parseInt(p, 10)).map((n) => (Number.isFinite(n) ? n : 0));
  const a = nums(have);
  const b = nums(need);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

const PROBE = `
import importlib, json, sys
out = {"python": sys.version.split()[0], "versions": {}, "missing": {}}
for name in ${JSON.stringify([...REQUIRED_PACKAGES])}:
    try:
        mod = importlib.import_module(name)
        out["versions"][name] = str(getattr(mod, "__version__", "0"))
    except Exception as e:
        out["missing"][name] = f"{type(e).__name__}: {e}"
print("LORA_LAB_PROBE " + json.dumps(out))
`;

/** Runs the probe in `python` (a path or a command on PATH); never throws for a bad interpreter. */
export async function checkPython(python: string, opts: { env?: NodeJS.ProcessEnv; requirementsFile?: string; timeoutMs?: number } = {}): Promise<PythonCheck> {
  const reqs = opts.requirementsFile ?? path.join(templatesDir(), 'requirements.txt');
  const installCommand = `${/\s/.test(python) ? JSON.stringify(python) : python} -m pip install -r ${JSON.stringify(reqs)}`;
  const base = { python, versions: {}, missing: [], tooOld: [], installCommand };
  const result = await new Promise<{ err: (Error & { code?: unknown }) | null; stdout: string; stderr: string }>((resolve) => {
    execFile(python, ['-c', PROBE], { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => resolve({ err, stdout, stderr }));
  });
  const line = result.stdout.split('\n').find((l) => l.startsWith('LORA_LAB_PROBE '));
  if (!line) {
    const code = result.err?.code;
    const why =
      code === 'ENOENT'
        ? `no Python at "${python}"`
        : code === 'EACCES'
          ? `"${python}" is not executable`
          : `"${python}" did not run as Python 3 (${(result.stderr || result.err?.message || 'no output').trim().split('\n').pop()})`;
    return { ...base, ok: false, message: `${why}: set the loraLab.python setting to a Python 3 interpreter (or select one with the Python extension)` };
  }
  const probe = JSON.parse(line.slice('LORA_LAB_PROBE '.length)) as { python: string; versions: Record<string, string>; missing: Record<string, string> };
  const mins = minimumVersions(fs.readFileSync(reqs, 'utf8'));
  const missing = Object.keys(probe.missing);
  const tooOld = Object.entries(probe.versions)
    .filter(([name, v]) => mins[name] && !versionAtLeast(v, mins[name]))
    .map(([name, v]) => `${name} ${v} (need >= ${mins[name]})`);
  const ok = missing.length === 0 && tooOld.length === 0;
  const parts = [...(missing.length ? [`not importable: ${missing.join(', ')}`] : []), ...(tooOld.length ? [`too old: ${tooOld.join(', ')}`] : [])];
  return {
    ...base,
    ok,
    pythonVersion: probe.python,
    versions: probe.versions,
    missing,
    tooOld,
    message: ok
      ? `Python ${probe.python} at ${python}: ${Object.entries(probe.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`
      : `${python} (Python ${probe.python}) cannot run the job: ${parts.join('; ')}. Install with: ${installCommand}`,
  };
}
