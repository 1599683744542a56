// Experiment files (*.lora.json with comments, *.lora.yaml) -> a resolved ExperimentConfig.
//
// Pipeline: parse with positions (jsonc-parser / yaml) -> JSON Schema check (ajv, draft-07, the same
// schema the editor uses) -> cross-field rules the schema cannot express (r <= min(d, k), warm-up
// shorter than the run, ...) -> defaults filled per kind. Every problem is reported, not just the
// first, each with its JSON path and a text range, so the same result drives editor diagnostics and
// `file:line:col` CLI errors. Nothing here touches the file system: relative paths in the config
// (outputDir, modelPath, dataset.path) are returned as written and resolved by the caller against
// the config file's folder.
//
// One module per job: text.ts (positions, bytes to text), schema.ts (schema walking, ajv issues),
// spelling.ts (did-you-mean), defaults.ts, crossField.ts (rules across fields), sweeps.ts, and
// parse.ts (the pipeline).

export { nestingTooDeep } from '../jsonText';
export type { ConfigIssue, ExperimentConfig } from '../experimentTypes';
export { parseExperimentConfig, type ParseExperimentResult } from './parse';
export { decodeExperimentBytes, findNodeAtPath, firstInvalidUtf8, formatPath, isYamlFileName, parsePathString, pathAtOffset, type PathSegments, type TextRange } from './text';
export { allowedKeysAt, EXPERIMENT_KINDS, schemaInfoAt, type SchemaInfo } from './schema';
export { closestName } from './spelling';
export { KIND_DEFAULTS, resolveConfigDefaults, type ExperimentFile } from './defaults';
export { findSweepAxes, MAX_SWEEP_RUNS, type SweepAxis, type SweepVariant } from './sweeps';
