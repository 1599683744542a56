// The parameter-count helpers live in src/shared (pure, also used by the dashboard webview).
export * from '../shared/paramCount';
