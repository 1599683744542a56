import * as assert from 'node:assert/strict';
import { contentSecurityPolicy, newNonce, pageCsp, panelPageHtml } from '../../../src/dashboard/webviewPage';
import { renderReportHtml } from '../../../src/cli/commands/report';
import type { ReportData } from '../../../src/protocol/webview';

describe('webview pages: one shell and CSP for the dashboard, the playground and the report', () => {
  const src = 'https://file+.vscode-resource.vscode-cdn.net';

  const cspOf = (html: string) => /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)![1];

  it('each page’s policy is exactly as strict as written out here', () => {
    assert.equal(
      cspOf(panelPageHtml('dashboard', src, (f) => `${src}/${f}`, 'N')),
      `default-src 'none'; script-src 'nonce-N'; style-src ${src}; img-src ${src} data:; font-src ${src}; worker-src blob:`,
    );
    assert.equal(cspOf(panelPageHtml('playground', src, (f) => `${src}/${f}`, 'N')), `default-src 'none'; script-src 'nonce-N'; style-src ${src}; font-src ${src}`);
    assert.equal(contentSecurityPolicy('N', pageCsp.report('N')), "default-src 'none'; script-src 'nonce-N'; style-src 'nonce-N'; img-src data:; font-src data:; worker-src blob:");
  });

  it('a panel page loads its bundle and stylesheet by URL, the script under the nonce', () => {
    for (const [panel, bundle, title] of [['dashboard', 'main', 'LoRA Lab Dashboard'], ['playground', 'playground', 'LoRA Lab: Try Adapter']] as const) {
      const html = panelPageHtml(panel, src, (f) => `${src}/dist/webview/${f}`, 'N');
      assert.deepEqual(html.match(/<link[^>]*>/g), [`<link rel="stylesheet" href="${src}/dist/webview/${bundle}.css">`]);
      assert.deepEqual(html.match(/<script[^>]*>/g), [`<script nonce="N" src="${src}/dist/webview/${bundle}.js">`]);
      assert.ok(html.includes(`<title>${title}</title>`), title);
    }
    assert.notEqual(cspOf(panelPageHtml('dashboard', src, (f) => f)), cspOf(panelPageHtml('dashboard', src, (f) => f)), 'a new nonce per page');
  });

  it('the report inlines style and script under one fresh nonce; hostile text cannot end an element', () => {
    const data = { snapshot: { title: '</title><script>alert(1)</script>', generatedAt: '', live: false, sources: [] }, factors: {}, references: {}, metrics: {} } as unknown as ReportData;
    const html = renderReportHtml(data, 'let s = "</script><!-- x";', 'a::after { content: "</style>" }');
    const nonce = /script-src 'nonce-([^']+)'/.exec(html)![1];
    assert.equal(Buffer.from(nonce, 'base64').length, 16);
    assert.notEqual(nonce, /script-src 'nonce-([^']+)'/.exec(renderReportHtml(data, '', ''))![1], 'a new nonce per page');
    // A plain substring: a base64 nonce may hold '+' and '/', which a RegExp would read as syntax.
    assert.ok(html.includes(`content="default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; img-src data:; font-src data:; worker-src blob:"`), 'the CSP meta tag');
    // One executable script (the nonce'd bundle) after the inert data block; one element each.
    assert.deepEqual(html.match(/<script[^>]*>/g), ['<script type="application/json" id="lora-lab-data">', `<script nonce="${nonce}">`]);
    assert.equal(html.match(/<\/script>/g)!.length, 2);
    assert.equal(html.match(/<\/style>/g)!.length, 1);
    assert.ok(!html.includes('<!-- x'));
    assert.match(html, /<title>&lt;\/title&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/title>/);
    assert.match(html, /<body class="report">/);
  });

  it('newNonce: 128 random bits, base64, never the same twice', () => {
    const seen = new Set(Array.from({ length: 100 }, () => newNonce()));
    assert.equal(seen.size, 100);
    for (const n of seen) assert.equal(Buffer.from(n, 'base64').length, 16);
  });
});
