// Typed errors for everything under src/formats (STYLE.md §7): a `reason` discriminator callers can
// switch on, the file (`source`) and the tensor or field involved, and a message a user can act on.
// The safetensors reasons mirror the reference Rust crate's `SafeTensorError` variants so a failure
// here can be compared with what `safetensors.safe_open` would say about the same file.
import { ReasonError } from '../shared/errors';

export type FormatErrorReason =
  // safetensors, named after the Rust crate's SafeTensorError variants
  | 'header-too-small' // HeaderTooSmall: fewer than 8 bytes
  | 'header-too-large' // HeaderTooLarge: the u64 length prefix is beyond any sane header
  | 'invalid-header-length' // InvalidHeaderLength: the header claims more bytes than the file has
  | 'invalid-header' // InvalidHeader: not UTF-8, or the JSON is not an object
  | 'invalid-header-json' // InvalidHeaderDeserialization: not JSON, or a field has the wrong JSON type
  | 'invalid-metadata' // `__metadata__` is not a string -> string map
  | 'unknown-dtype' // dtype string not in the known set
  | 'invalid-shape' // a dimension is not a non-negative integer
  | 'validation-overflow' // ValidationOverflow: element count or byte size does not fit
  | 'tensor-invalid-info' // TensorInvalidInfo: data_offsets span != nelem * itemsize
  | 'invalid-offset' // InvalidOffset: offsets overlap, leave a gap, or are not [begin <= end]
  | 'incomplete-buffer' // MetadataIncompleteBuffer: data section length != what the tensors cover
  | 'tensor-not-found' // TensorNotFound
  | 'invalid-tensor' // serializer input: data length / type does not match dtype and shape
  | 'unsupported-conversion' // e.g. a dtype that cannot be read as the requested typed array
  | 'file-too-large' // too large to read into memory whole (over 4 GiB); read it tensor by tensor
  // experiment configs
  | 'invalid-config';

export class FormatError extends ReasonError<FormatErrorReason> {
  static override readonly family = 'FormatError';
  /** The file (path or display name) the bytes came from, when the caller said. */
  readonly source: string | undefined;
  /** The tensor (or config field) the problem is about, when there is one. */
  readonly tensor: string | undefined;

  constructor(reason: FormatErrorReason, message: string, options: { source?: string; tensor?: string; cause?: unknown } = {}) {
    const where = options.source ? `${options.source}: ` : '';
    const what = options.tensor !== undefined ? `tensor "${options.tensor}": ` : '';
    super(reason, `${where}${what}${message}`, { cause: options.cause });
    this.source = options.source;
    this.tensor = options.tensor;
  }
}
