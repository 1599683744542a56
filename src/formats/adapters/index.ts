// Public API of adapter reading, for the CLI, the extension's adapter tree and the dashboard. Everything
// here is pure (no fs, no tfjs, no vscode), so the extension host can call it directly:
//
//   const input = await loadInspectInput(pathOnDisk, { readValues: false }); // src/io/hfFolder.ts (node)
//   const report = inspectAdapter(input);   // format, base model, modules (rank, alpha, scale, shapes,
//                                           // params, dtype), metadata as text, warnings, errors
//   const dw = deltaW(report.format, report.modules[0], (name) => float32ValuesOf(name)); // ΔW [out, in(, kh, kw)]
//
// `detectFormat(names, metadata)` and `describeLayout({tensors, metadata, ...})` work from a safetensors
// header alone (readSafetensorsHeader in src/io/safetensorsFile.ts), fast enough for hundreds of files.
// `checkValuesAsync(header.tensors, values, pause)` is inspectAdapter's values pass (alpha scalars, NaN/Inf)
// in steps, for a caller that must stay responsive; hand its result to inspectAdapter as `weights.checked`.
export { detectFormat, describeLayout, FORMAT_LABEL } from './adapterFormats';
export type { AdapterFormat, AdapterLayout, AdapterModule, LayoutInput, ModuleKind, TensorInfo } from './adapterFormats';
export { deltaNorm, deltaW, kron, matmul } from './deltaW';
export type { DeltaW } from './deltaW';
export { inspectAdapter } from './inspect';
export type { InspectFileInput, InspectInput, InspectModule, InspectReport } from './inspect';
export { InteropError } from './interopError';
export type { InteropErrorReason } from './interopError';
export { isPickleName, sniffBytes } from './sniff';
export type { Sniffed } from './sniff';
export { checkValues, checkValuesAsync, nonFiniteSummary, nonFiniteWarning, valuesCheckSteps } from './valuesCheck';
export type { NonFiniteTensor, ValuesCheck } from './valuesCheck';
