// A seeded generator for tests that choose at random but must choose the same way on every run
// (fuzz inputs, fault points, kill moments): a failure names its seed and replays.

/** mulberry32: small and fast, good enough to spread test cases; rng() in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
