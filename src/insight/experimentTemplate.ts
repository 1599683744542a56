// The commented config that "New Experiment" scaffolds. Pure: the command asks the questions, this
// writes the text; a unit test runs every template through parseExperimentConfig.
import type { ExperimentKind } from '../formats/experimentTypes';

export interface TemplateAnswers {
  kind: ExperimentKind;
  name: string;
  r: number;
  /** causal-lm: model folder relative to the config file. */
  modelPath?: string;
  /** causal-lm: dataset file relative to the config file. */
  datasetPath?: string;
  /** Relative path from the config file to schemas/experiment.editor.schema.json, when the schema is in the workspace. */
  schemaPath?: string;
}

export function experimentTemplate(a: TemplateAnswers): string {
  const schema = a.schemaPath ? `  "$schema": ${JSON.stringify(a.schemaPath)},\n` : '';
  const alpha = 2 * a.r;
  const head = `{\n${schema}  "name": ${JSON.stringify(a.name)},\n  "kind": "${a.kind}",\n`;
  switch (a.kind) {
    case 'low-rank-recovery':
      return `// A frozen random linear layer W (k×d) and a target W* = W + U·V with rank(U·V) = trueRank.
// LoRA learns ΔW = (α/r)·B·A: with r ≥ trueRank the loss falls to ~0; with r < trueRank it plateaus.
// Hover over "r" for parameter counts. Train: "LoRA Lab: Train Experiment" (or npx lora-lab train <this file>).
${head}  "model": {
    "inFeatures": 64, // d
    "outFeatures": 64, // k
    "trueRank": 4, // r*: rank of the hidden update U·V
    "updateScale": 0.5, // ‖U·V‖ / ‖W‖
    "noise": 0 // std of the noise added to the targets
  },
  "lora": {
    "r": ${a.r}, // rank of A (r×d) and B (k×r)
    "alpha": ${alpha}, // scale s = α/r
    "scaling": "standard", // "standard" (α/r), "rslora" (α/√r) or "none" (s = 1, as the reference LoRA code)
    "init": "gaussian" // A ~ N(0, 0.02) as the reference LoRA code; B = 0
  },
  "optimizer": { "name": "adam", "lr": 0.01 },
  "schedule": { "name": "constant", "warmupSteps": 0 },
  "training": { "steps": 300, "batchSize": 64, "seed": 0, "evalEvery": 50, "checkpointEvery": 100 },
  "outputDir": "lora-runs" // run folders go here, relative to this file
}
`;
    case 'attention-adaptation':
      return `// LoRAAttention from the reference LoRA code (LoRA on Q, K, V; W_O a plain trainable linear layer) learns a teacher whose
// W_Q, W_K, W_V differ by low-rank updates of rank trueRank.
${head}  "model": {
    "embedDim": 64, // E: Q, K, V, O are E×E
    "numHeads": 1, // the reference LoRA code is single-head
    "seqLen": 16,
    "kvSeqLen": 16, // ≠ seqLen for cross-attention
    "trueRank": 4,
    "updateScale": 0.5
  },
  "lora": {
    "r": ${a.r},
    "alpha": ${alpha}, // scale s = α/r
    "targetModules": ["q", "k", "v"] // any of q, k, v, o
  },
  "optimizer": { "name": "adam", "lr": 0.01 },
  "training": { "steps": 500, "batchSize": 64, "seed": 0, "evalEvery": 50, "checkpointEvery": 100 },
  "outputDir": "lora-runs"
}
`;
    case 'causal-lm':
      return `// Fine-tune a Hugging Face Llama or GPT-2 folder (config.json + model.safetensors) on a local text file.
// The adapter is saved in PEFT layout; it cannot run without this base model.
${head}  "model": {
    "modelPath": ${JSON.stringify(a.modelPath ?? 'models/my-model')}, // relative to this file
    "dataset": {
      "path": ${JSON.stringify(a.datasetPath ?? 'data/train.txt')}, // .txt, or .jsonl with a "text" field
      "seqLen": 64,
      "evalFraction": 0.1,
      "tokenizer": "bytes" // "bytes" (vocab 256) or "tokenizer" (tokenizer.json in the model folder)
    }
  },
  "lora": {
    "r": ${a.r},
    "alpha": ${alpha}, // scale s = α/r
    "dropout": 0.05
    // "targetModules": ["q_proj", "v_proj"] — left out = PEFT's default for the model type (Llama: q_proj, v_proj; GPT-2: c_attn)
  },
  "optimizer": { "name": "adamw", "lr": 0.0002 },
  "schedule": { "name": "cosine", "warmupSteps": 10 },
  "training": { "steps": 200, "batchSize": 8, "seed": 0, "evalEvery": 25, "checkpointEvery": 50 },
  "outputDir": "lora-runs"
}
`;
    default: {
      const never: never = a.kind;
      return never;
    }
  }
}
