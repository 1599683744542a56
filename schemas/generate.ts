// Writes schemas/experiment.schema.json (the full schema: types, ranges, unknown keys) and
// schemas/experiment.editor.schema.json (documentation and suggestions only, what the editor is given)
// from src/formats/experimentSchema.ts (the single source). Run `npm run schema` after editing the
// schema; test/unit/formats/experimentConfig.test.ts fails while they differ.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXPERIMENT_SCHEMA, editorSchema } from '../src/formats/experimentSchema';

for (const [name, schema] of [
  ['experiment.schema.json', EXPERIMENT_SCHEMA],
  ['experiment.editor.schema.json', editorSchema()],
] as const) {
  const out = path.join(__dirname, name);
  fs.writeFileSync(out, `${JSON.stringify(schema, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}
