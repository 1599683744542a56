// The training-speed benchmark's workloads, built on tfjs. test/bench/torch_reference.py builds the SAME
// computations in PyTorch (same shapes, same ops, same loss); the specs below are sent to it as JSON.
//
// Two formulations of our side:
//   naive  the textbook port: y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ with transposed matMuls, 4-D attention with
//          batched matMuls, autograd for everything (what the engine did before src/engine/kernels);
//   tuned  src/engine/kernels: frozen weights packed once (Wᵀ and W), a custom LoRA gradient that
//          computes no dW and no dx where the input needs none, plus the wasm kernel overrides.
import * as tf from '@tensorflow/tfjs-core';
import { loraLinear, packFrozenLinear, type PackedFrozenLinear } from '../../src/engine/kernels/loraLinear';
import { FrozenLinear, LoRALinear } from '../../src/engine/lora';
import { geluTanh } from '../../src/engine/kernels/gelu';
import { layerNorm, rmsNorm } from '../../src/engine/kernels/norm';
import { rotateHalfMatrix } from '../../src/engine/kernels/rope';
import { fusedAdamAvailable, fusedAdamStep, registerFusedAdam } from '../../src/engine/kernels/fusedAdam';

export interface LoraLinearSpec {
  kind: 'lora-linear';
  name: string;
  title: string;
  d: number;
  k: number;
  r: number;
  alpha: number;
  batch: number;
}

export interface TransformerSpec {
  kind: 'transformer';
  name: string;
  title: string;
  batch: number;
  seq: number;
  dModel: number;
  heads: number;
  kvHeads: number;
  layers: number;
  ffn: number;
  mlp: 'gelu' | 'swiglu';
  norm: 'none' | 'layernorm' | 'rmsnorm';
  rope: boolean;
  /** With a vocabulary: token embedding in, LM head + cross-entropy out; else MSE on a random target. */
  vocab?: number;
  loraTargets: ('q' | 'k' | 'v' | 'o')[];
  r: number;
  alpha: number;
  bias: boolean;
  /** Train every weight with Adam instead of LoRA factors (memory comparison). */
  fullFinetune?: boolean;
}

export type WorkloadSpec = LoraLinearSpec | TransformerSpec;
/** naive: textbook autograd; tuned: src/engine/kernels; engine: the engine's own LoRALinear (src/engine/lora.ts). */
export type Formulation = 'naive' | 'tuned' | 'engine';

export const WORKLOADS: WorkloadSpec[] = [
  { kind: 'lora-linear', name: 'a', title: '(a) LoRA linear d=k=1024, r=8, batch 256', d: 1024, k: 1024, r: 8, alpha: 16, batch: 256 },
  {
    kind: 'transformer', name: 'b', title: '(b) causal self-attention d256 h4 T128 B16, LoRA r8 on q,k,v + 4x MLP',
    batch: 16, seq: 128, dModel: 256, heads: 4, kvHeads: 4, layers: 1, ffn: 1024, mlp: 'gelu', norm: 'none',
    rope: false, loraTargets: ['q', 'k', 'v'], r: 8, alpha: 16, bias: true,
  },
  {
    kind: 'transformer', name: 'c', title: '(c) llama-tiny-qkvo-r8 sized Llama (hidden 64, 2 layers, GQA 4/2, RoPE, SwiGLU), B8 T64',
    batch: 8, seq: 64, dModel: 64, heads: 4, kvHeads: 2, layers: 2, ffn: 128, mlp: 'swiglu', norm: 'rmsnorm',
    rope: true, vocab: 256, loraTargets: ['q', 'k', 'v', 'o'], r: 8, alpha: 16, bias: false,
  },
  {
    kind: 'transformer', name: 'd', title: '(d) GPT-2-style d512 h8, 2 layers, T128 B4, LayerNorm, LoRA r8 on q,v, vocab 2048',
    batch: 4, seq: 128, dModel: 512, heads: 8, kvHeads: 8, layers: 2, ffn: 2048, mlp: 'gelu', norm: 'layernorm',
    rope: false, vocab: 2048, loraTargets: ['q', 'v'], r: 8, alpha: 16, bias: true,
  },
];

export function workloadByName(name: string): WorkloadSpec {
  const w = WORKLOADS.find((x) => x.name === name);
  if (!w) throw new Error(`unknown workload "${name}" (expected one of ${WORKLOADS.map((x) => x.name).join(', ')})`);
  return w;
}

/**
 * Matmul FLOPs of one LoRA training step (forward + the backward products it needs: no dW, no dx
 * for the data). The same count is used for ours and PyTorch, so GFLOP/s compare like for like.
 */
export function flopsPerStep(spec: WorkloadSpec): number {
  if (spec.kind === 'lora-linear') {
    const { d, k, r, batch: n } = spec;
    return 2 * n * d * k + 2 * n * d * r + 2 * n * r * k + 2 * n * k * r * 2 + 2 * n * r * d;
  }
  const n = spec.batch * spec.seq;
  const dh = spec.dModel / spec.heads;
  const lin = (inF: number, outF: number, lora: boolean, needsDx: boolean): number => {
    const full = spec.fullFinetune === true;
    let f = 2 * n * inF * outF; // forward
    if (needsDx) f += 2 * n * inF * outF;
    if (full) f += 2 * n * inF * outF; // dW
    if (lora && !full) f += 2 * n * spec.r * (inF + outF) + (needsDx ? 2 * n * spec.r * inF : 0) + 2 * n * spec.r * (2 * outF + inF);
    return f;
  };
  let total = 0;
  for (let l = 0; l < spec.layers; l++) {
    const first = l === 0;
    const kv = spec.kvHeads * dh;
    total += lin(spec.dModel, spec.dModel, spec.loraTargets.includes('q'), !first);
    total += lin(spec.dModel, kv, spec.loraTargets.includes('k'), !first);
    total += lin(spec.dModel, kv, spec.loraTargets.includes('v'), !first);
    total += lin(spec.dModel, spec.dModel, spec.loraTargets.includes('o'), true);
    total += 3 * 2 * 2 * spec.batch * spec.heads * spec.seq * spec.seq * dh; // QKᵀ, PV + 4 backward
    const mlps = spec.mlp === 'gelu' ? [[spec.dModel, spec.ffn], [spec.ffn, spec.dModel]] : [[spec.dModel, spec.ffn], [spec.dModel, spec.ffn], [spec.ffn, spec.dModel]];
    for (const [i, o] of mlps) total += lin(i, o, false, true);
  }
  if (spec.vocab) total += lin(spec.dModel, spec.vocab, false, true);
  return total;
}

export interface BuiltWorkload {
  trainable: tf.Variable[];
  loss(): tf.Scalar;
  dispose(): void;
}

/** Deterministic init (tfjs seeded normal); values differ from PyTorch's but shapes and ops match. */
let seedCounter = 1;
const randn = (shape: number[], std: number): tf.Tensor => tf.randomNormal(shape, 0, std, 'float32', seedCounter++);

interface Linear {
  /** x [N, in] → [N, out] */
  apply(x: tf.Tensor2D, inputGrad: boolean): tf.Tensor2D;
  variables: tf.Variable[];
  dispose(): void;
}

function makeLinear(
  inF: number, outF: number, lora: boolean, bias: boolean, r: number, alpha: number, form: Formulation, full: boolean,
  /** Whether this layer's input needs a gradient (false for layers fed with data). */
  staticInputGrad = true,
): Linear {
  const s = alpha / r;
  const w = randn([outF, inF], 0.02) as tf.Tensor2D; // [out, in]
  const b = bias ? (tf.zeros([outF]) as tf.Tensor1D) : undefined;
  const useLora = lora && !full;
  const A = useLora ? tf.variable(randn([r, inF], 1 / Math.sqrt(inF)) as tf.Tensor2D, true) : undefined; // [r, in]
  const B = useLora ? tf.variable(randn([outF, r], 0.02) as tf.Tensor2D, true) : undefined; // [out, r], non-zero
  const vars: tf.Variable[] = [];
  if (A && B) vars.push(A, B);
  if (full) {
    const wv = tf.variable(w, true);
    const bv = b ? tf.variable(b, true) : undefined;
    vars.push(wv, ...(bv ? [bv] : []));
    return {
      variables: vars,
      apply: (x) => {
        const y = tf.matMul(x, wv, false, true);
        return (bv ? tf.add(y, bv) : y) as tf.Tensor2D;
      },
      dispose: () => tf.dispose([w, ...(b ? [b] : []), ...vars]),
    };
  }
  if (form === 'naive') {
    return {
      variables: vars,
      apply: (x) => {
        let y: tf.Tensor = tf.matMul(x, w, false, true);
        if (b) y = tf.add(y, b);
        if (A && B) y = tf.add(y, tf.mul(tf.matMul(tf.matMul(x, A, false, true), B, false, true), s));
        return y as tf.Tensor2D;
      },
      dispose: () => tf.dispose([w, ...(b ? [b] : []), ...vars]),
    };
  }
  if (form === 'engine' && A && B) {
    const layer = new LoRALinear({
      inFeatures: inF, outFeatures: outF, r, alpha, hasBias: bias, trainBias: false, inputGrad: staticInputGrad,
      weight: w.dataSync() as Float32Array, bias: b?.dataSync() as Float32Array | undefined,
      A: A.dataSync() as Float32Array, B: B.dataSync() as Float32Array,
    });
    tf.dispose([w, ...(b ? [b] : []), A, B]);
    return { variables: [layer.A, layer.B], apply: (x) => layer.apply(x) as tf.Tensor2D, dispose: () => layer.dispose() };
  }
  if (form === 'engine' && !full) {
    const layer = new FrozenLinear(inF, outF, w, b);
    tf.dispose([w, ...(b ? [b] : [])]);
    return { variables: [], apply: (x) => layer.apply(x) as tf.Tensor2D, dispose: () => layer.dispose() };
  }
  const packed: PackedFrozenLinear = packFrozenLinear(w, b);
  tf.dispose([w, ...(b ? [b] : [])]);
  return {
    variables: vars,
    apply: (x, inputGrad) => loraLinear(x, packed, A && B ? { A, B, scaling: s } : null, { inputGrad }),
    dispose: () => {
      packed.dispose();
      tf.dispose(vars);
    },
  };
}

export function buildWorkload(spec: WorkloadSpec, form: Formulation): BuiltWorkload {
  seedCounter = 1;
  if (spec.kind === 'lora-linear') {
    const lin = makeLinear(spec.d, spec.k, true, true, spec.r, spec.alpha, form, false, false);
    const x = randn([spec.batch, spec.d], 1) as tf.Tensor2D;
    const t = randn([spec.batch, spec.k], 1);
    return {
      trainable: lin.variables,
      loss: () => tf.mean(tf.square(tf.sub(lin.apply(x, false), t))) as tf.Scalar,
      dispose: () => {
        lin.dispose();
        tf.dispose([x, t]);
      },
    };
  }
  return buildTransformer(spec, form);
}

function buildTransformer(spec: TransformerSpec, form: Formulation): BuiltWorkload {
  const { batch: Bt, seq: T, dModel: d, heads: H, kvHeads: kvH } = spec;
  const dh = d / H;
  const N = Bt * T;
  const full = spec.fullFinetune === true;
  const keep: tf.Tensor[] = [];
  const mk = (inF: number, outF: number, target: string, bias = spec.bias, inputGrad = true): Linear =>
    makeLinear(inF, outF, (spec.loraTargets as string[]).includes(target), bias, spec.r, spec.alpha, form, full, inputGrad);
  const normW = (): tf.Tensor1D => {
    const t = full ? tf.variable(tf.ones([d]), true) : tf.ones([d]);
    keep.push(t);
    return t as tf.Tensor1D;
  };
  const layers = Array.from({ length: spec.layers }, (_, i) => ({
    q: mk(d, H * dh, 'q', spec.bias, i > 0),
    k: mk(d, kvH * dh, 'k', spec.bias, i > 0),
    v: mk(d, kvH * dh, 'v', spec.bias, i > 0),
    o: mk(H * dh, d, 'o'),
    gate: spec.mlp === 'swiglu' ? mk(d, spec.ffn, 'gate') : undefined,
    up: mk(d, spec.ffn, 'up'),
    down: mk(spec.ffn, d, 'down'),
    n1: spec.norm !== 'none' ? normW() : undefined,
    n2: spec.norm !== 'none' ? normW() : undefined,
  }));
  const lmHead = spec.vocab ? mk(d, spec.vocab, 'lm_head', false) : undefined;
  const finalNorm = spec.vocab && spec.norm !== 'none' ? normW() : undefined;
  const maskData = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;
  const mask = tf.tensor2d(maskData, [T, T]); // [T, T]
  keep.push(mask);
  const maskGrouped = kvH !== H ? tf.tile(mask, [H / kvH, 1]) : undefined; // [rep·T, T]
  if (maskGrouped) keep.push(maskGrouped);
  let cos: tf.Tensor | undefined;
  let sin: tf.Tensor | undefined;
  if (spec.rope) {
    const c = new Float32Array(T * dh);
    const s = new Float32Array(T * dh);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < dh / 2; i++) {
        const f = t / Math.pow(10000, (2 * i) / dh);
        c[t * dh + i] = c[t * dh + i + dh / 2] = Math.cos(f);
        s[t * dh + i] = s[t * dh + i + dh / 2] = Math.sin(f);
      }
    }
    cos = tf.tensor2d(c, [T, dh]);
    sin = tf.tensor2d(s, [T, dh]);
    keep.push(cos, sin);
  }
  let emb: tf.Tensor | undefined;
  let ids: tf.Tensor | undefined;
  let labels: tf.Tensor | undefined;
  let x0: tf.Tensor | undefined;
  let target: tf.Tensor | undefined;
  if (spec.vocab) {
    emb = randn([spec.vocab, d], 0.02);
    const idv = new Int32Array(N);
    const lv = new Int32Array(N);
    for (let i = 0; i < N; i++) {
      idv[i] = (i * 7919 + 13) % spec.vocab;
      lv[i] = (i * 104729 + 7) % spec.vocab;
    }
    ids = tf.tensor1d(idv, 'int32');
    const V = spec.vocab;
    labels = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(lv, 'int32'), V), 'float32')); // [N, V], float once (an int32 one-hot is cast on every use)
    keep.push(emb, ids, labels);
  } else {
    x0 = randn([N, d], 1);
    target = randn([N, d], 1);
    keep.push(x0, target);
  }

  const norm = (x: tf.Tensor2D, w?: tf.Tensor1D): tf.Tensor2D => {
    if (!w || spec.norm === 'none') return x;
    // tuned: src/engine/kernels/norm.ts (one fused kernel each way where the native kernels are in use).
    if (form !== 'naive') return (spec.norm === 'layernorm' ? layerNorm(x, w, undefined, 1e-5) : rmsNorm(x, w, 1e-5)) as tf.Tensor2D;
    if (spec.norm === 'layernorm') {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), w) as tf.Tensor2D;
    }
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), w) as tf.Tensor2D;
  };
  const rotP = spec.rope && form !== 'naive' ? rotateHalfMatrix(dh) : undefined; // [dh, dh]
  if (rotP) keep.push(rotP);
  const rope = (t: tf.Tensor): tf.Tensor => {
    // t [B, h, T, dh]; rotate_half(t) = [-t2, t1]
    if (rotP) return tf.add(tf.mul(t, cos!), tf.mul(tf.reshape(tf.matMul(tf.reshape(t, [-1, dh]), rotP), t.shape), sin!));
    const half = dh / 2;
    const t1 = tf.slice(t, [0, 0, 0, 0], [-1, -1, -1, half]);
    const t2 = tf.slice(t, [0, 0, 0, half], [-1, -1, -1, half]);
    return tf.add(tf.mul(t, cos!), tf.mul(tf.concat([tf.neg(t2), t1], -1), sin!));
  };
  const heads = (t: tf.Tensor2D, h: number): tf.Tensor => tf.transpose(tf.reshape(t, [Bt, T, h, dh]), [0, 2, 1, 3]); // [B, h, T, dh]
  const gelu = (u: tf.Tensor): tf.Tensor =>
    form === 'naive'
      ? tf.mul(tf.mul(u, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(u, tf.mul(0.044715, tf.mul(u, tf.mul(u, u))))))))
      : geluTanh(u);

  const block = (x: tf.Tensor2D, L: (typeof layers)[number], first: boolean): tf.Tensor2D => {
    const h = norm(x, L.n1); // [N, d]
    const inGrad = !first;
    let q = heads(L.q.apply(h, inGrad), H); // [B, H, T, dh]
    let k = heads(L.k.apply(h, inGrad), kvH); // [B, kvH, T, dh]
    let v = heads(L.v.apply(h, inGrad), kvH);
    if (spec.rope) {
      q = rope(q);
      k = rope(k);
    }
    let ctx: tf.Tensor; // [B, H, T, dh]
    if (kvH !== H && form === 'naive') {
      const rep = H / kvH;
      // repeat_interleave over heads: each kv head serves `rep` consecutive query heads
      k = tf.reshape(tf.tile(tf.reshape(k, [Bt * kvH, 1, T * dh]), [1, rep, 1]), [Bt, H, T, dh]);
      v = tf.reshape(tf.tile(tf.reshape(v, [Bt * kvH, 1, T * dh]), [1, rep, 1]), [Bt, H, T, dh]);
      const att = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)), mask)); // [B, H, T, T]
      ctx = tf.matMul(att, v);
    } else if (kvH !== H) {
      // Grouped queries (no tile): the `rep` query heads of one kv head are consecutive, so
      // [B, H, T, dh] is [B, kvH, rep·T, dh] as stored; one product per kv head, mask stacked rep times.
      const qg = tf.reshape(q, [Bt, kvH, (H / kvH) * T, dh]);
      const att = tf.softmax(tf.add(tf.mul(tf.matMul(qg, k, false, true), 1 / Math.sqrt(dh)), maskGrouped!)); // [B, kvH, rep·T, T]
      ctx = tf.reshape(tf.matMul(att, v), [Bt, H, T, dh]);
    } else {
      const att = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)), mask)); // [B, H, T, T]
      ctx = tf.matMul(att, v);
    }
    const y = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [N, d]) as tf.Tensor2D; // [N, d]
    const x1 = tf.add(x, L.o.apply(y, true)) as tf.Tensor2D;
    const h2 = norm(x1, L.n2);
    let m: tf.Tensor2D;
    if (spec.mlp === 'gelu') m = L.down.apply(gelu(L.up.apply(h2, true)) as tf.Tensor2D, true);
    else {
      const g = L.gate!.apply(h2, true);
      m = L.down.apply(tf.mul(tf.mul(g, tf.sigmoid(g)), L.up.apply(h2, true)) as tf.Tensor2D, true);
    }
    return tf.add(x1, m) as tf.Tensor2D;
  };

  const all = [...layers.flatMap((L) => [L.q, L.k, L.v, L.o, L.up, L.down, ...(L.gate ? [L.gate] : [])]), ...(lmHead ? [lmHead] : [])];
  const trainable = all.flatMap((l) => l.variables);
  if (full) for (const t of keep) if (t instanceof tf.Variable) trainable.push(t);
  return {
    trainable,
    loss: () => {
      let x = (spec.vocab ? tf.gather(emb!, ids!) : x0!) as tf.Tensor2D; // [N, d]
      layers.forEach((L, i) => {
        x = block(x, L, i === 0);
      });
      if (spec.vocab) {
        const logits = lmHead!.apply(norm(x, finalNorm), true); // [N, V]
        return tf.neg(tf.mean(tf.sum(tf.mul(labels!, tf.logSoftmax(logits)), -1))) as tf.Scalar;
      }
      return tf.mean(tf.square(tf.sub(x, target!))) as tf.Scalar;
    },
    dispose: () => {
      for (const l of all) l.dispose();
      tf.dispose(keep);
    },
  };
}

/** Adam on tfjs ops (β1 0.9, β2 0.999, ε 1e-8), as torch.optim.Adam in the reference. */
export class Adam {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;
  /** fused: one kernel per parameter (src/engine/kernels/fusedAdam.ts) where the backend has it. */
  constructor(private readonly params: tf.Variable[], private readonly lr = 1e-3, private readonly fused = false) {
    this.m = params.map((p) => tf.variable(tf.zerosLike(p), false));
    this.v = params.map((p) => tf.variable(tf.zerosLike(p), false));
    if (fused) registerFusedAdam();
  }
  step(grads: tf.NamedTensorMap): void {
    this.t++;
    const c1 = 1 - Math.pow(0.9, this.t);
    const c2 = 1 - Math.pow(0.999, this.t);
    if (this.fused && fusedAdamAvailable()) {
      const attrs = { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: this.lr / c1, sqrtBc2: Math.sqrt(c2), decay: 1 };
      this.params.forEach((p, i) => {
        const [p1, m1, v1] = fusedAdamStep(p, this.m[i], this.v[i], grads[p.name], attrs);
        this.m[i].assign(m1);
        this.v[i].assign(v1);
        p.assign(p1);
        tf.dispose([p1, m1, v1]);
      });
      return;
    }
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = grads[p.name];
        const m = tf.add(tf.mul(this.m[i], 0.9), tf.mul(g, 0.1));
        const v = tf.add(tf.mul(this.v[i], 0.999), tf.mul(tf.square(g), 0.001));
        this.m[i].assign(m);
        this.v[i].assign(v);
        p.assign(tf.sub(p, tf.div(tf.mul(m, this.lr / c1), tf.add(tf.sqrt(tf.div(v, c2)), 1e-8))));
      });
    });
  }
  /** Bytes of optimizer state (m and v). */
  stateBytes(): number {
    return this.m.reduce((s, t) => s + t.size * 8, 0);
  }
  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/** One training step: forward, backward, Adam. Returns the loss. */
export function trainStep(w: BuiltWorkload, opt: Adam): number {
  const { value, grads } = tf.variableGrads(() => w.loss(), w.trainable);
  opt.step(grads);
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
}
