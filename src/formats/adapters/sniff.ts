// What a file is, from its first bytes and size, before anyone tries to parse it as safetensors.
// Git LFS pointers and PyTorch pickles are common in adapter folders cloned without LFS.

export type Sniffed = 'safetensors' | 'lfs-pointer' | 'pickle' | 'json' | 'too-small' | 'unknown';

const LFS = 'version https://git-lfs';

/** `first` is the start of the file (64 bytes are plenty); `size` the whole file's size. */
export function sniffBytes(first: Uint8Array, size: number): Sniffed {
  const head = String.fromCharCode(...first.subarray(0, Math.min(first.length, LFS.length)));
  if (head === LFS) return 'lfs-pointer';
  if (size < 8) return 'too-small';
  // safetensors first: its header length (u64 LE) can start with the bytes of a pickle's magic (a header of
  // 640, 896, 1152 or 1408 bytes begins 0x80 0x02..0x05), while a pickle never passes this check.
  if (first.length >= 9) {
    // safetensors: u64 LE header length that fits the file, then '{' (possibly after whitespace).
    let n = 0;
    for (let i = 7; i >= 0; i--) n = n * 256 + first[i];
    const c = first[8];
    if (n > 0 && n + 8 <= size && (c === 0x7b || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) return 'safetensors';
  }
  // torch.save since 1.6 writes a zip archive; older ones a raw pickle (protocol 2+ starts 0x80 0x02..0x05).
  if (first[0] === 0x50 && first[1] === 0x4b && first[2] === 0x03 && first[3] === 0x04) return 'pickle';
  if (first[0] === 0x80 && first[1] >= 2 && first[1] <= 5) return 'pickle';
  const c0 = first[0];
  if (c0 === 0x7b || c0 === 0x5b) return 'json';
  return 'unknown';
}

/** File names that are PyTorch pickles by convention. */
export function isPickleName(name: string): boolean {
  return /\.(bin|pt|pth|ckpt|pkl)$/i.test(name);
}
