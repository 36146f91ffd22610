// Generates src/pure/wire.ts, the TypeScript types of perfd's wire, from the JSON Schemas in
// ../schemas (which `perfd schema` writes from the daemon's msgspec Structs).
//
//   npm run gen:types            write src/pure/wire.ts
//   npm run gen:types -- --check exit 1 when src/pure/wire.ts differs from what would be written
//
// test/wire.test.ts fails when the committed file is out of date. The output depends only on
// the schema files and the locked json-schema-to-typescript (and its prettier).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compile } from 'json-schema-to-typescript';

const here = dirname(fileURLToPath(import.meta.url));
export const SCHEMAS_DIR = join(here, '..', '..', 'schemas');
export const OUTPUT = join(here, '..', 'src', 'pure', 'wire.ts');

const HEADER = `// Generated from schemas/*.json by scripts/gen-types.mjs: do not edit.
// Change the msgspec Structs, run \`perfd schema\`, then \`npm run gen:types\` in editor-client.
`;

/**
 * msgspec writes one file per type: {"$ref": "#/$defs/Name", "$defs": {Name: ..., referenced types...}}.
 * Returns the top-level names (one per file) and every definition, merged (a type referenced from
 * several files must be the same everywhere).
 */
export function readSchemas(dir = SCHEMAS_DIR) {
  const defs = new Map();
  const tops = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const schema = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const ref = schema.$ref;
    if (typeof ref !== 'string' || !ref.startsWith('#/$defs/') || !schema.$defs) {
      throw new Error(`${file}: expected msgspec's layout ({"$ref": "#/$defs/Name", "$defs": {...}})`);
    }
    tops.push(ref.slice('#/$defs/'.length));
    for (const [name, def] of Object.entries(schema.$defs)) {
      const seen = defs.get(name);
      if (seen !== undefined && JSON.stringify(seen) !== JSON.stringify(def)) {
        throw new Error(`${file}: ${name} differs from its definition in another schema file`);
      }
      defs.set(name, def);
    }
  }
  return { tops, defs: Object.fromEntries([...defs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
}

/**
 * What the wire means, said to the generator:
 * - a Struct (an object with `properties`) is sent with exactly those fields: no index signature;
 * - `default` says nothing about the type (whether a field may be missing is `required`), and a
 *   bare `{"default": null}` (msgspec's `Any = None`) would otherwise become an object type.
 * Maps (`dict[str, X]`) keep their open `additionalProperties`.
 */
function prepare(node) {
  if (Array.isArray(node)) return node.map(prepare);
  if (!node || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'default') continue;
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v).map(([p, s]) => [p, prepare(s)])) : prepare(v);
  }
  if (out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

/** The text of src/pure/wire.ts. */
export async function renderWireTypes(dir = SCHEMAS_DIR) {
  const { tops, defs } = readSchemas(dir);
  const root = {
    title: 'WireSchemas',
    description:
      'Every type with a file in schemas/, by name: `WireSchemas["PlanSummary"]` is what schemas/PlanSummary.json describes.',
    type: 'object',
    properties: Object.fromEntries(tops.map((name) => [name, { $ref: `#/$defs/${name}` }])),
    required: tops,
    additionalProperties: false,
    $defs: prepare(defs),
  };
  const body = await compile(root, 'WireSchemas', {
    bannerComment: '',
    cwd: dir,
    declareExternallyReferenced: true,
    enableConstEnums: false,
    format: true,
    style: { singleQuote: true, printWidth: 110 },
    strictIndexSignatures: false,
    unknownAny: true,
    unreachableDefinitions: false,
  });
  return HEADER + '\n' + body;
}

async function main(argv) {
  const text = await renderWireTypes();
  let current;
  try {
    current = readFileSync(OUTPUT, 'utf8');
  } catch {
    current = undefined;
  }
  if (argv.includes('--check')) {
    if (current !== text) {
      console.error('src/pure/wire.ts is out of date: run `npm run gen:types`');
      process.exitCode = 1;
    }
    return;
  }
  if (current === text) {
    console.log('src/pure/wire.ts is up to date');
    return;
  }
  writeFileSync(OUTPUT, text);
  console.log('wrote src/pure/wire.ts');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv.slice(2));
}
