// Types for the pthread worker source that tfjs-backend-wasm ships as a CommonJS string export.
declare module '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js' {
  export const wasmWorkerContents: string;
}
