// Cross-field rules: what the schema cannot express (r ≤ min(d, k), warm-up shorter than the run,
// settings one kind ignores), checked on the resolved values and reported at a field the user wrote.
import { ATTENTION_TARGET_NAMES, attentionProjectionOf } from '../attentionTargets';
import { CONFIG_LIMITS } from '../experimentSchema';
import type { RawIssue } from './schema';
import { closestName } from './spelling';
import { parsePathString, type PathSegments } from './text';
import type { ExperimentConfig } from '../experimentTypes';

/** The raw value at a path in the file's data, or undefined. */
function getAt(data: unknown, path: PathSegments): unknown {
  let v: unknown = data;
  for (const s of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[s];
  }
  return v;
}

/** Rules that span fields (or need the kind), checked on the resolved values. */
export function crossFieldIssues(c: ExperimentConfig, data: unknown, badPaths: Set<string>): RawIssue[] {
  const out: RawIssue[] = [];
  const has = (p: string) => getAt(data, parsePathString(p)) !== undefined;
  // A rule speaks only when none of its fields already has a schema error, and points at a field the user wrote.
  const report = (severity: RawIssue['severity'], paths: string[], message: string) => {
    const bad = (p: string) => [...badPaths].some((b) => b === p || p.startsWith(`${b}.`) || p.startsWith(`${b}[`));
    if (paths.some(bad)) return;
    const at = paths.find(has) ?? paths[0];
    out.push({ severity, path: parsePathString(at), message, anchor: has(at) ? undefined : 'parent' });
  };
  const { lora, training: t, optimizer: o, schedule: s, model: m } = c;

  if (lora.useDora && m.kind !== 'causal-lm') {
    report('error', ['lora.useDora'], `\`lora.useDora\` is supported by kind "causal-lm" only (a PEFT DoRA adapter on a Hugging Face model), not by "${m.kind}"`);
  }
  if (m.kind === 'low-rank-recovery') {
    const minDk = Math.min(m.inFeatures, m.outFeatures);
    if (m.trueRank > minDk) {
      report('error', ['model.trueRank', 'model.inFeatures', 'model.outFeatures'], `\`model.trueRank\` (${m.trueRank}) must be ≤ min(inFeatures, outFeatures) = ${minDk}: a ${m.outFeatures}×${m.inFeatures} update has at most rank ${minDk}`);
    }
    if (lora.r > minDk) {
      report('error', ['lora.r', 'model.inFeatures', 'model.outFeatures'], `\`lora.r\` (${lora.r}) must be ≤ min(inFeatures, outFeatures) = ${minDk}; a larger rank adds parameters and no expressiveness`);
    }
    if (has('lora.targetModules')) report('warning', ['lora.targetModules'], '`lora.targetModules` is ignored by kind "low-rank-recovery" (it has a single linear layer)');
  } else if (m.kind === 'attention-adaptation') {
    if (m.embedDim % m.numHeads !== 0) {
      report('error', ['model.numHeads', 'model.embedDim'], `\`model.embedDim\` (${m.embedDim}) must be divisible by \`model.numHeads\` (${m.numHeads})`);
    }
    if (m.trueRank > m.embedDim) report('error', ['model.trueRank', 'model.embedDim'], `\`model.trueRank\` (${m.trueRank}) must be ≤ embedDim (${m.embedDim})`);
    if (lora.r > m.embedDim) report('error', ['lora.r', 'model.embedDim'], `\`lora.r\` (${lora.r}) must be ≤ embedDim (${m.embedDim}), the size of the adapted projections`);
    // The same rule the engine applies (attentionTargets.ts).
    lora.targetModules.forEach((name, i) => {
      if (!attentionProjectionOf(name)) {
        const hint = closestName(name.split('.').pop() ?? name, ATTENTION_TARGET_NAMES);
        report('error', [`lora.targetModules[${i}]`], `\`lora.targetModules[${i}]\` must name an attention projection (q, k, v, o or q_proj, k_proj, v_proj, o_proj) for kind "attention-adaptation", got "${name}"${hint ? ` — did you mean "${hint}"?` : ''}`);
      }
    });
    const chosen = [...new Set(lora.targetModules.map(attentionProjectionOf))].sort().join(',');
    if (m.numHeads === 1 && has('lora.targetModules') && chosen !== 'k,q,v') {
      report('warning', ['lora.targetModules'], '`lora.targetModules` is ignored with `model.numHeads` 1: the reference LoRA code\'s single-head LoRAAttention always adapts q, k and v (use numHeads ≥ 2 to choose)');
    }
    if (m.numHeads === 1 && lora.trainBias) {
      report('warning', ['lora.trainBias'], '`lora.trainBias` is ignored with `model.numHeads` 1: the reference LoRA code\'s LoRAAttention keeps the biases of W_Q, W_K, W_V frozen (its W_O trains in full)');
    }
  } else {
    if (!/\.(txt|jsonl)$/i.test(m.dataset.path)) {
      report('error', ['model.dataset.path'], `\`model.dataset.path\` must be a .txt or .jsonl file, got "${m.dataset.path}"`);
    }
    if (lora.trainBias) {
      report('error', ['lora.trainBias'], '`lora.trainBias` must be false for kind "causal-lm": the biases stay frozen (PEFT\'s bias "none")');
    }
    if (m.dataset.evalFraction === 0 && t.evalEvery > 0) {
      report('error', ['training.evalEvery', 'model.dataset.evalFraction'], '`training.evalEvery` > 0 needs held-out text: set `model.dataset.evalFraction` > 0 (or evalEvery to 0)');
    }
  }

  // Sizes across fields, before anything is allocated: each field may be within its limit while the
  // tensor they make together is not.
  const big = (n: number) => `${n.toLocaleString('en-US')}`;
  const maxElems = CONFIG_LIMITS.tensorElements;
  if (m.kind === 'low-rank-recovery') {
    const n = t.batchSize * Math.max(m.inFeatures, m.outFeatures);
    if (n > maxElems) {
      report('error', ['training.batchSize', 'model.inFeatures', 'model.outFeatures'], `\`training.batchSize\` × max(inFeatures, outFeatures) = ${big(n)} values per batch, more than one tensor may hold (2^28 = ${big(maxElems)}): lower the batch size or the layer size`);
    }
  } else if (m.kind === 'attention-adaptation') {
    const scores = t.batchSize * m.numHeads * m.seqLen * m.kvSeqLen;
    const acts = t.batchSize * Math.max(m.seqLen, m.kvSeqLen) * m.embedDim;
    if (scores > maxElems) {
      report('error', ['model.seqLen', 'model.kvSeqLen', 'training.batchSize', 'model.numHeads'], `\`training.batchSize\` × \`model.numHeads\` × \`model.seqLen\` × \`model.kvSeqLen\` = ${big(scores)} attention scores per step, more than one tensor may hold (2^28 = ${big(maxElems)}): lower the batch size or the sequence lengths`);
    } else if (acts > maxElems) {
      report('error', ['model.seqLen', 'model.kvSeqLen', 'training.batchSize', 'model.embedDim'], `\`training.batchSize\` × max(seqLen, kvSeqLen) × \`model.embedDim\` = ${big(acts)} activations per step, more than one tensor may hold (2^28 = ${big(maxElems)}): lower the batch size, the sequence lengths or embedDim`);
    }
  } else {
    const tokens = t.batchSize * m.dataset.seqLen;
    if (tokens > CONFIG_LIMITS.lmTokensPerStep) {
      report('error', ['training.batchSize', 'model.dataset.seqLen'], `\`training.batchSize\` × \`model.dataset.seqLen\` = ${big(tokens)} tokens per step, more than ${big(CONFIG_LIMITS.lmTokensPerStep)} (2^20; the logits are that times the vocabulary): lower the batch size or the sequence length`);
    }
  }

  if (s.warmupSteps > 0 && s.warmupSteps >= t.steps) {
    report('error', ['schedule.warmupSteps', 'training.steps'], `\`schedule.warmupSteps\` (${s.warmupSteps}) must be less than \`training.steps\` (${t.steps})`);
  }
  for (const k of ['evalEvery', 'checkpointEvery', 'logEvery'] as const) {
    if (t[k] > t.steps) report('error', [`training.${k}`, 'training.steps'], `\`training.${k}\` (${t[k]}) must be ≤ \`training.steps\` (${t.steps}), or it never happens`);
  }
  if (t.evalEvery === 0 && has('training.evalBatches')) report('warning', ['training.evalBatches'], '`training.evalBatches` is ignored because `training.evalEvery` is 0 (no evaluation)');

  if (lora.scaling === 'none' && has('lora.alpha')) report('warning', ['lora.alpha'], '`lora.alpha` is ignored with `lora.scaling` "none" (the scale is 1)');
  if (o.name !== 'sgd' && o.momentum > 0) report('warning', ['optimizer.momentum'], `\`optimizer.momentum\` is used by "sgd" only and is ignored by "${o.name}"`);
  if (o.name === 'sgd') {
    for (const k of ['beta1', 'beta2', 'eps'] as const) if (has(`optimizer.${k}`)) report('warning', [`optimizer.${k}`], `\`optimizer.${k}\` is used by Adam/AdamW only and is ignored by "sgd"`);
  }
  if (s.name === 'constant' && has('schedule.minLrRatio')) report('warning', ['schedule.minLrRatio'], '`schedule.minLrRatio` is ignored by the "constant" schedule');
  return out;
}
