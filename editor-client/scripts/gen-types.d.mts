// Types of scripts/gen-types.mjs, for test/wire.test.ts.
export const SCHEMAS_DIR: string;
export const OUTPUT: string;
export function readSchemas(dir?: string): { tops: string[]; defs: Record<string, unknown> };
export function renderWireTypes(dir?: string): Promise<string>;
