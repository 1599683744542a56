// One typed error for everything Hugging Face interop can refuse: a model folder we cannot run, an
// adapter file we cannot read, a merge that would produce NaN. `reason` lets callers (CLI, tree,
// dashboard) branch without parsing messages (STYLE.md §7).
import { ReasonError } from '../../shared/errors';

export type InteropErrorReason =
  | 'bad-config' // config.json / adapter_config.json missing a field or holding a wrong value
  | 'unsupported-model' // model_type we do not implement
  | 'missing-tensor' // a weight the config says must exist is absent
  | 'shape-mismatch' // a weight whose shape disagrees with the config or its partner
  | 'unknown-format' // not an adapter layout we recognise
  | 'lfs-pointer' // a Git LFS pointer text file instead of the weights
  | 'pickle-refused' // a PyTorch pickle (.bin/.pt/.ckpt): never unpickled
  | 'not-safetensors' // bytes that are not a safetensors file at all
  | 'non-finite' // NaN/Inf in a result (merge refuses, like PEFT's safe_merge)
  | 'too-large' // a model larger than the backend can hold (the wasm memory's 4 GiB)
  | 'bad-input'; // token ids or other user input out of range

export class InteropError extends ReasonError<InteropErrorReason> {
  static override readonly family = 'InteropError';
  constructor(
    reason: InteropErrorReason,
    message: string,
    /** The file (or folder) the problem is in, when known. */
    readonly source?: string,
  ) {
    super(reason, message);
  }
}

/** Prefix for messages: "model.safetensors: " or "". */
export function inFile(source: string | undefined): string {
  return source ? `${source}: ` : '';
}
