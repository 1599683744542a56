// The hyperparameters that differ between compared runs: their resolved configs flattened to dotted
// keys ("lora.r", "optimizer.lr"), keeping only keys whose values are not all the same. Pure.

/** {a: {b: 1}} → {"a.b": "1"}; arrays and scalars are values, shown as JSON. */
export function flattenConfig(obj: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (obj !== null && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = typeof obj === 'string' ? obj : JSON.stringify(obj);
  }
  return out;
}

export interface DifferingRow {
  key: string;
  /** One value per run, in the runs' order; undefined where a run's config has no such key. */
  values: (string | undefined)[];
}

/** Keys (sorted) whose values differ between the configs; a run's name is not a hyperparameter. */
export function differingHyperparameters(configs: readonly (Record<string, unknown> | undefined)[]): DifferingRow[] {
  const flat = configs.map((c) => flattenConfig(c ?? {}));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].filter((k) => k !== 'name' && k !== '$schema').sort();
  const rows: DifferingRow[] = [];
  for (const key of keys) {
    const values = flat.map((f) => f[key]);
    if (values.some((v) => v !== values[0])) rows.push({ key, values });
  }
  return rows;
}
