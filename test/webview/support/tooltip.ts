// Reads the chart tooltip (webview-ui/src/tooltip.ts): its header, rows in display order and where it is.
import type { Page } from 'playwright-core';

export interface TooltipRead {
  header: string;
  rows: { label: string; value: string; color: string; dashed: boolean }[];
  box: { left: number; top: number; width: number; height: number };
}

/** Waits for the loss-view tooltip to be shown, then reads it. */
export async function tooltip(page: Page, testId = 'loss-readout'): Promise<TooltipRead> {
  await page.waitForFunction((id) => {
    const el = document.querySelector(`[data-testid=${id}]`) as HTMLElement | null;
    return !!el && !el.hidden && el.querySelector('.tt-head') !== null;
  }, testId);
  return page.evaluate((id) => {
    const el = document.querySelector(`[data-testid=${id}]`) as HTMLElement;
    const r = el.getBoundingClientRect();
    return {
      header: el.querySelector('.tt-head')?.textContent ?? '',
      rows: Array.from(el.querySelectorAll('.tt-row')).map((row) => {
        const sw = row.querySelector('.tt-swatch') as HTMLElement;
        return {
          label: (row.querySelector('.tt-label')?.textContent ?? '').replace(/: $/, ''),
          value: row.querySelector('.tt-value')?.textContent ?? '',
          color: getComputedStyle(sw).borderTopColor,
          dashed: sw.classList.contains('dashed'),
        };
      }),
      box: { left: r.left, top: r.top, width: r.width, height: r.height },
    };
  }, testId);
}
