// The HTML page of every LoRA Lab webview: the dashboard and Try Adapter panels and the standalone
// report. One shell and one Content-Security-Policy builder, so the pages cannot drift apart:
// `default-src 'none'`, the only script that runs is the one carrying this page load's nonce, and
// each page names, in `pageCsp`, the few other sources it needs. No vscode here: `lora-lab report`
// writes the same page.
import * as crypto from 'node:crypto';

/** A fresh nonce for one page load: 128 random bits, base64. */
export function newNonce(): string {
  return crypto.randomBytes(16).toString('base64');
}

/** Sources a page may load besides its nonce'd script, per directive; a directive left out stays 'none'. */
export interface CspAllow {
  style?: string;
  img?: string;
  font?: string;
  worker?: string;
}

/** What each page may load. A webview's resources come from `cspSource` (dist/webview and media/). */
export const pageCsp = {
  /** The heatmap worker is created from a blob: URL (webview-ui/src/heatmap/workerClient.ts). */
  dashboard: (cspSource: string): CspAllow => ({ style: cspSource, img: `${cspSource} data:`, font: cspSource, worker: 'blob:' }),
  playground: (cspSource: string): CspAllow => ({ style: cspSource, font: cspSource }),
  /** One file opened from disk: its only style is inline under the nonce, images and fonts are data: URLs. */
  report: (nonce: string): CspAllow => ({ style: `'nonce-${nonce}'`, img: 'data:', font: 'data:', worker: 'blob:' }),
};

export function contentSecurityPolicy(nonce: string, allow: CspAllow): string {
  const directives = ["default-src 'none'", `script-src 'nonce-${nonce}'`];
  const named: [string, string | undefined][] = [
    ['style-src', allow.style],
    ['img-src', allow.img],
    ['font-src', allow.font],
    ['worker-src', allow.worker],
  ];
  for (const [directive, sources] of named) if (sources) directives.push(`${directive} ${sources}`);
  return directives.join('; ');
}

export interface WebviewPage {
  title: string;
  nonce: string;
  allow: CspAllow;
  /** A stylesheet URL (a panel), or the CSS itself, inlined under the nonce (the report). */
  style: { href: string } | { text: string };
  /** The bundle: a URL, or its text inlined under the nonce. */
  script: { src: string } | { text: string };
  /** Markup between the app's root and the script (the report's data block), already escaped. */
  data?: string;
  bodyClass?: string;
  /** `<meta name="generator">`. */
  generator?: string;
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function webviewPageHtml(p: WebviewPage): string {
  const style =
    'href' in p.style ? `<link rel="stylesheet" href="${escapeHtml(p.style.href)}">` : `<style nonce="${p.nonce}">${p.style.text.replace(/<\/style/gi, '<\\/style')}</style>`;
  // Inlined text must not end its element early (`</script`) or open an HTML comment inside it.
  const script =
    'src' in p.script
      ? `<script nonce="${p.nonce}" src="${escapeHtml(p.script.src)}"></script>`
      : `<script nonce="${p.nonce}">${p.script.text.replace(/<\/script/gi, '<\\/script').replace(/<!--/g, '<\\!--')}</script>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(p.nonce, p.allow)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
${p.generator ? `<meta name="generator" content="${escapeHtml(p.generator)}">\n` : ''}<title>${escapeHtml(p.title)}</title>
${style}
</head>
<body${p.bodyClass ? ` class="${escapeHtml(p.bodyClass)}"` : ''}>
<div id="app"></div>
${p.data ? `${p.data}\n` : ''}${script}
</body>
</html>
`;
}

const panels = {
  dashboard: { title: 'LoRA Lab Dashboard', bundle: 'main', allow: pageCsp.dashboard },
  playground: { title: 'LoRA Lab: Try Adapter', bundle: 'playground', allow: pageCsp.playground },
} as const;

/**
 * A VS Code panel's page: its bundle and stylesheet from dist/webview. `uri` makes a URL the webview
 * may load from a file name there (webview.asWebviewUri); the nonce is fresh unless a test fixes it.
 */
export function panelPageHtml(panel: keyof typeof panels, cspSource: string, uri: (file: string) => string, nonce = newNonce()): string {
  const { title, bundle, allow } = panels[panel];
  return webviewPageHtml({ title, nonce, allow: allow(cspSource), style: { href: uri(`${bundle}.css`) }, script: { src: uri(`${bundle}.js`) } });
}
