// Parsing and validating one experiment file: text with positions -> schema check -> cross-field
// rules -> defaults, then one config per combination when fields list several values (a sweep).
import { nestingTooDeep, lineColumnAt } from '../jsonText';
import { CONFIG_LIMITS } from '../experimentSchema';
import { crossFieldIssues } from './crossField';
import { resolveConfigDefaults } from './defaults';
import { EXPERIMENT_KINDS, getValidator, schemaIssue, type RawIssue } from './schema';
import { combinations, findSweepAxes, MAX_SWEEP_RUNS, setAtPath, sweepValueText, type SweepVariant } from './sweeps';
import { formatPath, isYamlFileName, lineStarts, parseText, type PathSegments, type TextRange } from './text';
import type { ConfigIssue, ExperimentConfig, ExperimentKind } from '../experimentTypes';

export type ParseExperimentResult =
  | { config: ExperimentConfig; issues: ConfigIssue[]; sweep?: SweepVariant[] }
  | { config?: undefined; issues: ConfigIssue[]; sweep?: undefined };

/**
 * Parses and validates an experiment file. `fileName` picks the syntax (.yaml/.yml = YAML, else JSON
 * with comments) and the default `name`. Returns the resolved config only when there is no error;
 * warnings (ignored fields) come with it.
 */
export function parseExperimentConfig(text: string, fileName: string): ParseExperimentResult {
  // A UTF-8 byte order mark (Notepad writes one) is not part of the text; editors do not show it either.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const starts = lineStarts(text);
  const tooDeep = nestingTooDeep(text, isYamlFileName(fileName), CONFIG_LIMITS.depth);
  if (tooDeep !== undefined) {
    // Refused unparsed: the parsers and the schema check recurse once per level (a 10,000-deep file
    // overflowed the stack).
    const { line, column } = lineColumnAt(text, tooDeep);
    return {
      issues: [
        {
          severity: 'error',
          path: '',
          message: `the file is nested more than ${CONFIG_LIMITS.depth} levels deep (objects or lists inside each other); an experiment config needs about 4`,
          offset: tooDeep,
          length: 1,
          line,
          column,
        },
      ],
    };
  }
  const doc = parseText(text, fileName);
  const toIssue = (severity: ConfigIssue['severity'], path: PathSegments, message: string, range: TextRange | undefined): ConfigIssue => {
    const offset = Math.min(range?.offset ?? 0, text.length);
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { severity, path: formatPath(path), message, offset, length: range?.length ?? 0, line: lo + 1, column: offset - starts[lo] + 1 };
  };

  const issues: ConfigIssue[] = doc.problems.map((p) => toIssue(p.severity, p.path ?? [], p.message, p)).sort((a, b) => a.offset - b.offset);
  if (issues.some((i) => i.severity === 'error')) return { issues };
  if (doc.value === undefined) {
    return { issues: [...issues, toIssue('error', [], 'the file is empty: an experiment needs at least a `kind` (e.g. "low-rank-recovery")', { offset: 0, length: 0 })] };
  }

  const locate = (raw: RawIssue): TextRange | undefined => {
    if (raw.anchor === 'key') return doc.keyRange(raw.path);
    if (raw.anchor === 'parent') {
      // The field is missing: point at the nearest key the user did write.
      for (let n = raw.path.length - 1; n >= 1; n--) {
        const r = doc.keyRange(raw.path.slice(0, n));
        if (r) return r;
      }
      const root = doc.valueRange([]);
      return root ? { offset: root.offset, length: Math.min(root.length, 1) } : undefined;
    }
    return doc.valueRange(raw.path) ?? doc.keyRange(raw.path);
  };

  const axes = findSweepAxes(doc.value);
  if (axes.length === 0) {
    const checked = checkValue(doc.value, fileName);
    for (const raw of checked.raws) issues.push(toIssue(raw.severity, raw.path, raw.message, locate(raw)));
    issues.sort((a, b) => a.offset - b.offset || (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
    if (!checked.config || issues.some((i) => i.severity === 'error')) return { issues };
    return { config: checked.config, issues };
  }

  // A sweep: every combination of the listed values is checked as the config it makes, and a problem
  // with one value is reported at that list element.
  const empty = axes.find((a) => a.values.length === 0);
  const count = axes.reduce((n, a) => n * a.values.length, 1);
  if (empty) {
    issues.push(toIssue('error', empty.path, `\`${formatPath(empty.path)}\` is an empty list: a sweep needs at least one value`, locate({ severity: 'error', path: empty.path, message: '' })));
    return { issues };
  }
  if (count > MAX_SWEEP_RUNS) {
    const where = axes[0].path;
    const lists = axes.map((a) => `\`${formatPath(a.path)}\` (${a.values.length})`).join(' × ');
    issues.push(toIssue('error', where, `this sweep makes ${count} runs (${lists}); at most ${MAX_SWEEP_RUNS} runs per config`, locate({ severity: 'error', path: where, message: '' })));
    return { issues };
  }
  const seen = new Set<string>();
  const sweep: SweepVariant[] = [];
  for (const combo of combinations(axes.map((a) => a.values.length))) {
    const value = structuredClone(doc.value) as Record<string, unknown>;
    const settings = axes.map((a, i) => {
      setAtPath(value, a.path, a.values[combo[i]]);
      return { path: formatPath(a.path), value: a.values[combo[i]] };
    });
    const checked = checkValue(value, fileName);
    for (const raw of checked.raws) {
      const at = axes.findIndex((a) => a.path.length <= raw.path.length && a.path.every((seg, k) => raw.path[k] === seg));
      const path = at >= 0 ? [...axes[at].path, combo[at], ...raw.path.slice(axes[at].path.length)] : raw.path;
      const key = `${formatPath(path)}\u0000${raw.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push(toIssue(raw.severity, path, raw.message, locate({ ...raw, path })));
    }
    if (checked.config) {
      const suffix = settings.map((x) => sweepValueText(x.path, x.value)).join('-');
      sweep.push({ label: settings.map((x) => `${x.path} = ${JSON.stringify(x.value)}`).join(', '), settings, config: { ...checked.config, name: `${checked.config.name}-${suffix}` } });
    }
  }
  issues.sort((a, b) => a.offset - b.offset || (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
  if (issues.some((i) => i.severity === 'error') || sweep.length !== count) return { issues };
  return { config: sweep[0].config, issues, sweep };
}

function checkValue(value: unknown, fileName: string): { raws: RawIssue[]; config?: ExperimentConfig } {
  const validate = getValidator();
  const raws: RawIssue[] = [];
  if (!validate(value)) {
    const seen = new Set<string>();
    for (const e of validate.errors ?? []) {
      const raw = schemaIssue(e, value);
      if (!raw) continue;
      const key = `${formatPath(raw.path)}\u0000${raw.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      raws.push(raw);
    }
  }
  const obj = value as Record<string, unknown>;
  const kindOk = typeof obj === 'object' && obj !== null && !Array.isArray(obj) && EXPERIMENT_KINDS.includes(obj.kind as ExperimentKind);
  let config: ExperimentConfig | undefined;
  if (kindOk) {
    config = resolveConfigDefaults(obj, fileName);
    const badPaths = new Set(raws.filter((r) => r.severity === 'error').map((r) => formatPath(r.path)));
    raws.push(...crossFieldIssues(config, obj, badPaths));
  }
  return { raws, config };
}

