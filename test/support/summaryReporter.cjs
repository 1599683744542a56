// Mocha's spec reporter, plus what CI reads at the end:
//   - per test file: how many tests passed, failed and were skipped (files with skips listed first);
//   - skipped tests of suites that must run here (requiredSuites.cjs): under CI they fail the run;
//   - the closing line "unit: N passed, N failed, N skipped".
const Mocha = require('mocha');
const { violations, enforced, rel } = require('./requiredSuites.cjs');

const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants;

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    /** file → { passed, failed, skipped } */
    const perFile = new Map();
    const requiredSkips = [];
    const count = (test, key) => {
      const f = rel(test.file) || '(no file)';
      const c = perFile.get(f) ?? { passed: 0, failed: 0, skipped: 0 };
      c[key]++;
      perFile.set(f, c);
    };
    runner.on(EVENT_TEST_PASS, (t) => count(t, 'passed'));
    // A failing hook reports the hook, not a test; it still counts against its file.
    runner.on(EVENT_TEST_FAIL, (t) => count(t, 'failed'));
    runner.on(EVENT_TEST_PENDING, (t) => {
      count(t, 'skipped');
      for (const v of violations(t.file, t.fullTitle())) requiredSkips.push({ title: t.fullTitle(), file: rel(t.file), ...v });
    });
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats ?? {};
      const label = process.env.LORA_LAB_SUITE || 'unit';
      const out = [];
      const rows = [...perFile].sort(([a, x], [b, y]) => Number(y.skipped > 0) - Number(x.skipped > 0) || a.localeCompare(b));
      out.push('', `${label}, per file (passed / failed / skipped):`);
      for (const [f, c] of rows) out.push(`  ${String(c.passed).padStart(4)} ${String(c.failed).padStart(3)} ${String(c.skipped).padStart(3)}  ${f}`);
      let failed = s.failures ?? 0;
      if (requiredSkips.length) {
        const hard = enforced();
        out.push('', hard ? `${label}: ${requiredSkips.length} test(s) of suites that must run here were SKIPPED (a failure under CI):` : `${label}: warning: ${requiredSkips.length} test(s) of suites that must run in CI were skipped (CI=true makes this a failure):`);
        for (const r of requiredSkips) out.push(`  - [${r.rule}: ${r.why}] ${r.title} (${r.file})`);
        if (hard) {
          failed += requiredSkips.length;
          // Mocha exits with runner.failures, read after this listener (the reporter's runs first).
          runner.failures += requiredSkips.length;
        }
      }
      out.push('', `${label}: ${s.passes ?? 0} passed, ${failed} failed, ${s.pending ?? 0} skipped`, '');
      process.stdout.write(out.join('\n'));
    });
  }
}
module.exports = SummaryReporter;
