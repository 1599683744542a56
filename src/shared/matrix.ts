// Dense matrices and one module's low-rank factors as the host, the CLI's report and the webview
// pass them around (src/protocol re-exports both). Pure: no tfjs, no node built-ins, no vscode.

/** A dense row-major 2-D matrix. Conv weights arrive flattened to [out, in·kh·kw]. */
export interface Matrix {
  shape: [number, number];
  data: Float32Array;
}

/** The factors of one module at one step: ΔW = scale·B·A, or `delta` for kinds that are not plain A/B. */
export interface ModuleFactors {
  module: string;
  scale: number;
  /** [r, in] */
  a?: Matrix;
  /** [out, r] */
  b?: Matrix;
  delta?: Matrix;
}
