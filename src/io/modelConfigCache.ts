// A model folder's config.json and the size of its weight files, read without blocking the caller (the
// extension host asks on every hover) and cached by the file's mtime and size, so that hovering again
// costs one stat and an edited config.json is read afresh.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { parseHfConfig, type HfModelConfig } from '../formats/hfConfig';

interface Cached {
  mtimeMs: number;
  size: number;
  config: HfModelConfig;
}

const cache = new Map<string, Cached>();
/** Enough for the model folders of a workspace; the oldest entry goes first. */
const MAX_ENTRIES = 64;

/** The parsed config.json at `file` (parseHfConfig's errors propagate; nothing is cached then). */
export async function readModelConfigCached(file: string): Promise<HfModelConfig> {
  const key = path.resolve(file);
  const st = await fs.stat(key);
  const hit = cache.get(key);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.config;
  const config = parseHfConfig(await fs.readFile(key, 'utf8'), key);
  cache.delete(key);
  cache.set(key, { mtimeMs: st.mtimeMs, size: st.size, config });
  if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value as string);
  return config;
}

/** Bytes of a model folder's weight files (model.safetensors, or the shards its index names); 0 when none is found. */
export async function weightFileBytes(dir: string): Promise<number> {
  const single = await fs.stat(path.join(dir, 'model.safetensors')).catch(() => undefined);
  if (single) return single.size;
  try {
    const index = JSON.parse(await fs.readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map?: Record<string, unknown> };
    const files = new Set(Object.values(index.weight_map ?? {}).filter((f): f is string => typeof f === 'string'));
    const sizes = await Promise.all([...files].map((f) => fs.stat(path.resolve(dir, f)).then((s) => s.size, () => 0)));
    return sizes.reduce((a, b) => a + b, 0);
  } catch {
    return 0;
  }
}
