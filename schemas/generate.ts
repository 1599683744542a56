// Writes schemas/experiment.schema.json from src/formats/experimentSchema.ts (the single source).
// Run `npm run schema` after editing the schema; test/unit/formats/experimentConfig.test.ts fails
// while the two differ.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXPERIMENT_SCHEMA } from '../src/formats/experimentSchema';

const out = path.join(__dirname, 'experiment.schema.json');
fs.writeFileSync(out, `${JSON.stringify(EXPERIMENT_SCHEMA, null, 2)}\n`);
console.log(`wrote ${path.relative(process.cwd(), out)}`);
