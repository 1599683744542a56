// Number formats of the playground page (pure, shared with its tests).

/** "−4.71": log-probs are ≤ 0; a true minus sign reads better than a hyphen. */
export function formatLogprob(lp: number): string {
  return (lp < 0 ? '−' : '') + Math.abs(lp).toFixed(2);
}

/** A token chip's background opacity from its probability: more opaque = more likely. */
export function chipAlpha(lp: number): string {
  const p = Math.exp(lp);
  return (0.12 + 0.78 * Math.min(1, Math.max(0, p))).toFixed(3);
}

/** A token's piece as a chip shows it: spaces, tabs and newlines made visible. */
export function displayPiece(piece: string): string {
  return piece.replace(/ /g, '·').replace(/\t/g, '⇥').replace(/\n/g, '↵');
}
