// The JSON Schema (draft-07) of experiment files (*.lora.json, *.lora.yaml). This object is the
// single source: schemas/experiment.schema.json is generated from it (`npm run schema`) for
// `contributes.jsonValidation`, and a unit test fails when the two differ. The `description`s are the
// editor's hover docs; the `default`s are what `resolveConfigDefaults` fills in (a test checks that
// too). Where a default depends on the experiment kind, the description says so and `default` is
// omitted.

const KINDS = ['low-rank-recovery', 'attention-adaptation', 'causal-lm'] as const;

/**
 * Upper limits of sizes and counts. They are the schema's `maximum`s (so the editor and the parser
 * say the same), checked before anything is allocated: a batch of 1e9 or 1e5 features otherwise ends
 * deep in the engine as "Invalid typed array length", with no field named.
 */
export const CONFIG_LIMITS = {
  /** Examples (or sequences) per step. */
  batchSize: 65536,
  /** inFeatures / outFeatures of the low-rank-recovery layer: W is out × in float32 (8192² = 256 MiB). */
  features: 8192,
  /** embedDim of attention-adaptation. */
  embedDim: 4096,
  numHeads: 256,
  /** seqLen / kvSeqLen of attention-adaptation (the scores are batch × heads × seqLen × kvSeqLen). */
  attentionSeqLen: 4096,
  /** Tokens per causal-lm training sequence (the model's own position limit applies too). */
  lmSeqLen: 32768,
  /** Adapter rank. */
  rank: 8192,
  /** Steps and the other step counts: integers beyond 2^53 are not exact in JSON or JavaScript. */
  steps: Number.MAX_SAFE_INTEGER,
  /** Elements of the largest tensor a config may ask for (2^28 float32 = 1 GiB), checked across fields. */
  tensorElements: 2 ** 28,
  /** causal-lm tokens per step (batchSize × seqLen): the logits are that × the vocabulary. */
  lmTokensPerStep: 2 ** 20,
  /** Nesting of objects and lists in the file; an experiment needs 4. Deeper files are refused unparsed. */
  depth: 64,
} as const;

const maxSteps = { maximum: CONFIG_LIMITS.steps };

/** Hover text: `description` for tools that show plain text, `markdownDescription` for VS Code. */
function doc(text: string): { description: string; markdownDescription: string } {
  return { description: text, markdownDescription: text };
}

const positiveInt = (text: string, extra: Record<string, unknown> = {}) => ({
  type: 'integer',
  minimum: 1,
  ...doc(text),
  ...extra,
});

export const EXPERIMENT_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'LoRA Lab experiment',
  ...doc(
    'A LoRA Lab experiment: what to train (kind + model), the adapter (lora), how to train it (optimizer, schedule, training) and where runs go (outputDir). Only `kind` is required; everything else has a default. Sizes have upper limits (each field says), and a file nested more than 64 levels deep is refused.',
  ),
  type: 'object',
  additionalProperties: false,
  required: ['kind'],
  properties: {
    $schema: {
      type: 'string',
      ...doc('Path or URL of this schema, for editors that do not pick it up from the file name.'),
    },
    name: {
      type: 'string',
      minLength: 1,
      ...doc('Name of the experiment, used in run ids and the dashboard legend. Default: the file name without `.lora.json` / `.lora.yaml`.'),
    },
    kind: {
      enum: [...KINDS],
      ...doc(
        'What to train.\n' +
        '- `low-rank-recovery`: a frozen random linear layer W (k×d) and a target W* = W + U·V of true rank r*. LoRA of rank r ≥ r* drives the loss to ~0 and recovers U·V; r < r* plateaus (the intrinsic-rank hypothesis, visible).\n' +
        "- `attention-adaptation`: the reference LoRA code's LoRAAttention (LoRA on W_Q, W_K, W_V) learns a teacher attention whose projections differ by low-rank updates.\n" +
        '- `causal-lm`: fine-tune a Hugging Face Llama or GPT-2 folder on a local text file.'),
    },
    model: {
      type: 'object',
      ...doc('The model and data of the experiment; which keys are allowed depends on `kind`.'),
    },
    lora: { $ref: '#/definitions/lora' },
    optimizer: { $ref: '#/definitions/optimizer' },
    schedule: { $ref: '#/definitions/schedule' },
    training: { $ref: '#/definitions/training' },
    outputDir: {
      type: 'string',
      minLength: 1,
      default: 'lora-runs',
      ...doc('Folder for runs (`<outputDir>/<run-id>/`), relative to the folder of this file.'),
    },
  },
  allOf: [
    {
      if: { properties: { kind: { const: 'low-rank-recovery' } }, required: ['kind'] },
      then: { properties: { model: { $ref: '#/definitions/lowRankRecoveryModel' } } },
    },
    {
      if: { properties: { kind: { const: 'attention-adaptation' } }, required: ['kind'] },
      then: { properties: { model: { $ref: '#/definitions/attentionAdaptationModel' } } },
    },
    {
      if: { properties: { kind: { const: 'causal-lm' } }, required: ['kind'] },
      then: { required: ['model'], properties: { model: { $ref: '#/definitions/causalLmModel' } } },
    },
  ],
  definitions: {
    lowRankRecoveryModel: {
      type: 'object',
      additionalProperties: false,
      ...doc('A frozen random linear layer W (outFeatures × inFeatures) and the target W* = W + U·V with rank(U·V) = trueRank. Inputs are Gaussian; targets are W*·x (+ noise).'),
      properties: {
        kind: { const: 'low-rank-recovery', ...doc('Optional; must equal the top-level `kind` (present in saved run configs).') },
        inFeatures: positiveInt('d, the input size of the layer (at most 8192).', { default: 64, maximum: CONFIG_LIMITS.features }),
        outFeatures: positiveInt('k, the output size of the layer (at most 8192).', { default: 64, maximum: CONFIG_LIMITS.features }),
        trueRank: positiveInt('r*, the rank of the hidden update U·V (at most min(inFeatures, outFeatures)). LoRA with `lora.r` ≥ trueRank can reach ~0 loss; below it the loss plateaus.', {
          default: 4,
        }),
        updateScale: {
          type: 'number',
          exclusiveMinimum: 0,
          default: 0.5,
          ...doc('Size of U·V relative to W (ratio of Frobenius norms).'),
        },
        noise: {
          type: 'number',
          minimum: 0,
          default: 0,
          ...doc('Standard deviation of Gaussian noise added to the targets (0 = noiseless, the loss can reach 0).'),
        },
      },
    },
    attentionAdaptationModel: {
      type: 'object',
      additionalProperties: false,
      ...doc("The reference LoRA code's attention block: a frozen teacher whose W_Q, W_K, W_V differ from the student's by low-rank updates; the student learns them through LoRA."),
      properties: {
        kind: { const: 'attention-adaptation', ...doc('Optional; must equal the top-level `kind` (present in saved run configs).') },
        embedDim: positiveInt('Embedding size (d_model in the reference LoRA code). Must be divisible by numHeads; at most 4096.', { default: 32, maximum: CONFIG_LIMITS.embedDim }),
        numHeads: positiveInt("Attention heads. 1 is the reference LoRA code's single-head LoRAAttention; more gives the multi-head variant. At most 256.", { default: 1, maximum: CONFIG_LIMITS.numHeads }),
        seqLen: positiveInt('Query sequence length (at most 4096).', { default: 8, maximum: CONFIG_LIMITS.attentionSeqLen }),
        kvSeqLen: positiveInt('Key/value sequence length. Default: seqLen (self-attention); a different value makes it cross-attention. At most 4096.', { maximum: CONFIG_LIMITS.attentionSeqLen }),
        trueRank: positiveInt("Rank of the teacher's update to each adapted projection (at most embedDim).", { default: 2 }),
        updateScale: {
          type: 'number',
          exclusiveMinimum: 0,
          default: 0.5,
          ...doc("Size of the teacher's updates relative to the projections (ratio of Frobenius norms)."),
        },
      },
    },
    causalLmModel: {
      type: 'object',
      additionalProperties: false,
      required: ['modelPath', 'dataset'],
      ...doc('A Hugging Face causal language model folder and a local text dataset.'),
      properties: {
        kind: { const: 'causal-lm', ...doc('Optional; must equal the top-level `kind` (present in saved run configs).') },
        modelPath: {
          type: 'string',
          minLength: 1,
          ...doc('Folder with config.json and model.safetensors (or model.safetensors.index.json + shards) of a Llama or GPT-2 model, relative to this file.'),
        },
        dataset: {
          type: 'object',
          additionalProperties: false,
          required: ['path'],
          ...doc('Training text.'),
          properties: {
            path: {
              type: 'string',
              minLength: 1,
              ...doc('A .txt file, or .jsonl with one {"text": ...} object per line; relative to this file.'),
            },
            seqLen: positiveInt('Tokens per training sequence (at most 32768, and the model\'s own position limit).', { default: 64, maximum: CONFIG_LIMITS.lmSeqLen }),
            evalFraction: {
              type: 'number',
              minimum: 0,
              exclusiveMaximum: 1,
              default: 0.1,
              ...doc('Fraction of the text held out for evaluation loss (the tail of the file).'),
            },
            tokenizer: {
              enum: ['bytes', 'tokenizer'],
              default: 'bytes',
              ...doc('`bytes`: raw UTF-8 bytes as tokens (vocab 256, for tiny byte-level models). `tokenizer`: the tokenizer.json in the model folder.'),
            },
          },
        },
      },
    },
    lora: {
      type: 'object',
      additionalProperties: false,
      ...doc('The adapter: ΔW = s·B·A with A: [r, in], B: [out, r], B = 0 at the start, so training starts from the base model exactly.'),
      properties: {
        r: positiveInt('Rank of the adapter (rows of A, columns of B). At most min(in, out) of the adapted layer (and 8192). Trainable parameters grow linearly with r.', {
          default: 4,
          maximum: CONFIG_LIMITS.rank,
        }),
        alpha: {
          type: 'number',
          exclusiveMinimum: 0,
          ...doc('α in the scale s = α/r (or α/√r with rsLoRA). Default: r, so that s = 1. Changing r with α fixed changes the effective step size.'),
        },
        scaling: {
          enum: ['standard', 'rslora', 'none'],
          default: 'standard',
          ...doc("How α becomes the scale s on B·A: `standard` s = α/r (the LoRA paper, PEFT's default), `rslora` s = α/√r (rank-stabilised LoRA), `none` s = 1 (the reference LoRA code has no α; the saved adapter_config.json then says lora_alpha = r, so PEFT applies 1 too)."),
        },
        dropout: {
          type: 'number',
          minimum: 0,
          exclusiveMaximum: 1,
          default: 0,
          ...doc('Dropout on the input of the LoRA path only (PEFT `lora_dropout`), in [0, 1).'),
        },
        init: {
          enum: ['gaussian', 'kaiming-uniform'],
          ...doc(
            "How A is initialised (B is always 0): `gaussian` N(0, 0.02) as in the reference LoRA code, `kaiming-uniform` as PEFT's default (a = √5). Default: gaussian for the built-in experiments, kaiming-uniform for causal-lm."),
        },
        targetModules: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          minItems: 1,
          uniqueItems: true,
          ...doc(
            'Modules that get an adapter, matched as name suffixes like PEFT. attention-adaptation: any of "q", "k", "v", "o" (or "q_proj", ...); default ["q", "k", "v"] as in the reference LoRA code, which is also the only choice with numHeads 1. causal-lm: e.g. ["q_proj", "v_proj"] for Llama or ["c_attn"] for GPT-2; default: PEFT\'s default for the model type. Ignored by low-rank-recovery (one layer).'),
        },
        trainBias: {
          type: 'boolean',
          default: false,
          ...doc("Also train the bias of adapted layers (the reference LoRA code's convention, counted in its r·d + k·r + k formula) instead of keeping it frozen (PEFT's bias: \"none\"). low-rank-recovery and multi-head attention-adaptation only: the reference LoRA code's single-head attention keeps its W_Q, W_K, W_V biases frozen, and causal-lm refuses it."),
        },
        useDora: {
          type: 'boolean',
          default: false,
          ...doc(
            "DoRA (weight-decomposed LoRA, PEFT's `use_dora`): each adapted layer's weight becomes m · (W + s·B·A) / ‖W + s·B·A‖ per output row, with a trainable magnitude vector m (one value per output feature, initialised to ‖W‖ so training starts from the base model). Adds `out` parameters per layer; the saved adapter has `use_dora: true` and `…lora_magnitude_vector` tensors. causal-lm only."),
        },
      },
    },
    optimizer: {
      type: 'object',
      additionalProperties: false,
      ...doc('The optimizer of the trainable parameters (A, B and trained biases).'),
      properties: {
        name: {
          enum: ['sgd', 'adam', 'adamw'],
          ...doc('Default: adam for the built-in experiments, adamw for causal-lm.'),
        },
        lr: {
          type: 'number',
          exclusiveMinimum: 0,
          ...doc('Peak learning rate (after warm-up). Default: 0.01 for the built-in experiments, 0.0002 for causal-lm.'),
        },
        weightDecay: {
          type: 'number',
          minimum: 0,
          ...doc('Weight decay λ, as in torch.optim: adamw decays the weights directly (decoupled, p ← p·(1 − lr·λ)); sgd and adam add λ·p to the gradient (L2). Default: 0.01 for adamw, else 0.'),
        },
        beta1: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.9, ...doc('Adam/AdamW first-moment decay.') },
        beta2: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.999, ...doc('Adam/AdamW second-moment decay.') },
        eps: { type: 'number', exclusiveMinimum: 0, default: 1e-8, ...doc('Adam/AdamW ε added to the denominator.') },
        momentum: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0, ...doc('SGD momentum (0 = plain SGD).') },
        gradClip: {
          type: 'number',
          minimum: 0,
          ...doc('Clip the global gradient norm to this value; 0 disables clipping. Default: 0 for the built-in experiments, 1 for causal-lm.'),
        },
      },
    },
    schedule: {
      type: 'object',
      additionalProperties: false,
      ...doc('Learning-rate schedule: linear warm-up from 0, then constant, linear or cosine decay to lr·minLrRatio at the last step.'),
      properties: {
        name: {
          enum: ['constant', 'linear', 'cosine'],
          ...doc('Default: constant for the built-in experiments, cosine for causal-lm.'),
        },
        warmupSteps: {
          type: 'integer',
          minimum: 0,
          ...maxSteps,
          default: 0,
          ...doc('Steps of linear warm-up from 0 to `optimizer.lr`; must be fewer than `training.steps`.'),
        },
        minLrRatio: {
          type: 'number',
          minimum: 0,
          maximum: 1,
          default: 0.1,
          ...doc('For linear and cosine: the learning rate at the last step, as a fraction of `optimizer.lr`.'),
        },
      },
    },
    training: {
      type: 'object',
      additionalProperties: false,
      ...doc('Length, batch, seed and logging of the run.'),
      properties: {
        steps: positiveInt('Optimizer steps, at most 2^53 − 1. Default: 300 (low-rank-recovery), 500 (attention-adaptation), 200 (causal-lm).', maxSteps),
        batchSize: positiveInt('Examples per step, at most 65536. Default: 64 for the built-in experiments, 8 sequences for causal-lm.', { maximum: CONFIG_LIMITS.batchSize }),
        seed: {
          type: 'integer',
          minimum: 0,
          maximum: 4294967295,
          default: 0,
          ...doc('Seeds the data, the teacher and the initialisation: the same seed gives the same loss curve.'),
        },
        evalEvery: {
          type: 'integer',
          minimum: 0,
          ...maxSteps,
          ...doc('Compute the evaluation loss every N steps (and at the last step); 0 = never. Default: steps / 10 (at least 1).'),
        },
        evalBatches: positiveInt('Batches averaged for each evaluation loss (at most 65536).', { default: 4, maximum: 65536 }),
        checkpointEvery: positiveInt('Save a resumable checkpoint every N steps (and at the end). Default: steps / 10 (at least 1).', maxSteps),
        keepCheckpoints: {
          type: 'integer',
          minimum: 0,
          ...maxSteps,
          default: 10,
          ...doc('How many of the newest checkpoints to keep; 0 keeps all. Each holds the LoRA parameters and the optimizer state (small next to the model); the dashboard scrubs ΔW and spectra over them.'),
        },
        logEvery: positiveInt('Append a line to metrics.jsonl every N steps.', { default: 1, ...maxSteps }),
        gradientCheckpointing: {
          type: 'boolean',
          default: false,
          ...doc('causal-lm: keep only each transformer block\'s input and recompute the block in the backward pass. Activations then take one block\'s worth instead of all of them, for about a third more compute per step; the gradients are the same.'),
        },
      },
    },
  },
} as const;

export type ExperimentSchema = typeof EXPERIMENT_SCHEMA;

/** Keywords that only validate: the editor copy of the schema leaves them out. */
const VALIDATION_ONLY = new Set(['type', 'additionalProperties', 'required', 'minLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minItems', 'uniqueItems']);

/**
 * The schema the editor is given (contributes.jsonValidation / yamlValidation, and `$schema` in the
 * examples): documentation, defaults and value suggestions, no validation. The parser already reports
 * every problem, with the same text as the CLI, so an editor schema that validated too would list each
 * error twice in Problems, and flag a sweep's list (`"r": [1, 2, 4]`) that the parser accepts. `enum`
 * becomes `examples` (still offered as completions); `if` blocks are kept whole (they select the model
 * section by `kind`).
 */
export function editorSchema(schema: unknown = EXPERIMENT_SCHEMA): unknown {
  const walk = (node: unknown, inIf: boolean): unknown => {
    if (Array.isArray(node)) return node.map((x) => walk(x, inIf));
    if (typeof node !== 'object' || node === null) return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (inIf) out[k] = v;
      else if (k === 'if') out[k] = walk(v, true);
      else if (k === 'properties' || k === 'definitions') out[k] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([name, sub]) => [name, walk(sub, false)]));
      else if (k === 'enum') out.examples = v;
      else if (!VALIDATION_ONLY.has(k)) out[k] = walk(v, false);
    }
    return out;
  };
  return walk(schema, false);
}
