// src/pure/wire.ts must be exactly what scripts/gen-types.mjs makes of ../schemas now: a schema
// change (from `perfd schema`) without `npm run gen:types`, or a hand edit, fails here.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OUTPUT, readSchemas, renderWireTypes, SCHEMAS_DIR } from '../scripts/gen-types.mjs';

describe('generated wire types', () => {
  it('src/pure/wire.ts is up to date with schemas/ (run `npm run gen:types`)', async () => {
    const want = await renderWireTypes();
    const got = fs.readFileSync(OUTPUT, 'utf8');
    // Compared line by line so a failure shows the diff rather than two long strings.
    expect(got.split('\n')).toEqual(want.split('\n'));
  });

  it('covers every schema file, with the results the extension reads', () => {
    const { tops } = readSchemas();
    const files = fs.readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.json'));
    expect(tops.length).toBe(files.length);
    expect(tops).toEqual(expect.arrayContaining(['GenerateResult', 'WorkspaceStatus', 'PlanSummary', 'PlanStatus', 'StatsSnapshot']));
  });
});
