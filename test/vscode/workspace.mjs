// A fresh copy of the example workspace (test/integration/workspace) for each run, so runs, edits and
// caches never land in the repository. Adapter fixtures are added here rather than committed twice:
// the PEFT case from test/fixtures/peft (with its base model), and small kohya / mlx / LFS-pointer /
// hostile-metadata files written by a minimal safetensors writer.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const workspaceFixture = path.join(repoRoot, 'test', 'integration', 'workspace');
const peftCase = path.join(repoRoot, 'test', 'fixtures', 'peft', 'llama-tiny-qkvo-r8');

/** Minimal safetensors writer (F32 only) for fixtures: sorted names, 8-byte aligned header. */
export function safetensorsBytes(tensors, metadata) {
  const names = Object.keys(tensors).sort();
  const header = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const n of names) {
    const { shape, data } = tensors[n];
    header[n] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.length * 4] };
    offset += data.length * 4;
  }
  let json = JSON.stringify(header);
  while ((Buffer.byteLength(json) + 8) % 8 !== 0) json += ' ';
  const hbuf = Buffer.from(json);
  const out = Buffer.alloc(8 + hbuf.length + offset);
  out.writeBigUInt64LE(BigInt(hbuf.length), 0);
  hbuf.copy(out, 8);
  let p = 8 + hbuf.length;
  for (const n of names) {
    for (const v of tensors[n].data) {
      out.writeFloatLE(v, p);
      p += 4;
    }
  }
  return out;
}

const filled = (n, f = (i) => ((i % 7) - 3) / 100) => Float32Array.from({ length: n }, (_, i) => f(i));

export function makeWorkspace(parent) {
  const dest = path.join(parent, 'workspace');
  fs.cpSync(workspaceFixture, dest, { recursive: true });
  // PEFT adapter + its base model, found by relative path.
  fs.cpSync(path.join(peftCase, 'base'), path.join(dest, 'models', 'llama-tiny'), { recursive: true });
  const peft = path.join(dest, 'adapters', 'llama-tiny-r8');
  fs.cpSync(path.join(peftCase, 'adapter'), peft, { recursive: true });
  fs.rmSync(path.join(peft, 'README.md'), { force: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(peft, 'adapter_config.json'), 'utf8'));
  fs.writeFileSync(path.join(peft, 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: '../../models/llama-tiny' }, null, 2));
  // The same weights naming a hub model that is not here (Merge must ask for the base).
  const orphan = path.join(dest, 'adapters', 'orphan-r8');
  fs.cpSync(peft, orphan, { recursive: true });
  fs.writeFileSync(path.join(orphan, 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: 'meta-llama/Llama-2-7b-hf' }, null, 2));
  // A config that does not match its weights (r 16 in adapter_config.json, rank 8 in lora_A).
  const mismatch = path.join(dest, 'adapters', 'mismatch-r16');
  fs.cpSync(peft, mismatch, { recursive: true });
  fs.writeFileSync(path.join(mismatch, 'adapter_config.json'), JSON.stringify({ ...cfg, r: 16, base_model_name_or_path: '../../models/llama-tiny' }, null, 2));
  // kohya-style SD LoRA (conv + linear), with hostile metadata that must stay text.
  const lora = path.join(dest, 'loras');
  fs.mkdirSync(lora, { recursive: true });
  fs.writeFileSync(
    path.join(lora, 'kohya-style.safetensors'),
    safetensorsBytes(
      {
        'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight': { shape: [4, 320, 1, 1], data: filled(4 * 320) },
        'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight': { shape: [320, 4, 1, 1], data: filled(320 * 4) },
        'lora_unet_down_blocks_0_attentions_0_proj_in.alpha': { shape: [], data: [4] },
        'lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': { shape: [4, 768], data: filled(4 * 768) },
        'lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight': { shape: [768, 4], data: filled(768 * 4) },
        'lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha': { shape: [], data: [2] },
      },
      { ss_output_name: '<script>alert("pwned")</script>', ss_sd_model_name: 'v1-5-pruned-emaonly.safetensors', ss_network_dim: '4' },
    ),
  );
  // A LoRA file whose values went NaN.
  fs.writeFileSync(
    path.join(lora, 'nan-lora.safetensors'),
    safetensorsBytes({
      'layer.lora_A.weight': { shape: [2, 8], data: filled(16, (i) => (i === 3 ? NaN : 0.1)) },
      'layer.lora_B.weight': { shape: [8, 2], data: filled(16) },
    }),
  );
  // A Git LFS pointer saved where the weights should be.
  fs.writeFileSync(path.join(lora, 'lfs-pointer-lora.safetensors'), 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n');
  // mlx-lm adapter folder: lora_a [in, r], lora_b [r, out], absolute scale in adapter_config.json.
  const mlx = path.join(dest, 'adapters', 'mlx-adapter');
  fs.mkdirSync(mlx, { recursive: true });
  fs.writeFileSync(path.join(mlx, 'adapter_config.json'), JSON.stringify({ model: 'models/llama-tiny', fine_tune_type: 'lora', num_layers: 2, lora_parameters: { rank: 4, scale: 20.0, dropout: 0.0 } }, null, 2));
  fs.writeFileSync(
    path.join(mlx, 'adapters.safetensors'),
    safetensorsBytes({
      'model.layers.0.self_attn.q_proj.lora_a': { shape: [64, 4], data: filled(256) },
      'model.layers.0.self_attn.q_proj.lora_b': { shape: [4, 64], data: filled(256) },
    }),
  );
  return dest;
}
