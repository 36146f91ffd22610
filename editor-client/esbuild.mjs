// Bundles src/extension.ts (and vscode-languageclient) into dist/extension.js; `vscode` stays external.
// And the dashboard webview (src/webview, with uPlot) into dist/dashboard.js and dist/dashboard.css.
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

const options = {
  entryPoints: ['src/extension.ts'],
  bundle: true,
  outfile: 'dist/extension.js',
  external: ['vscode'],
  format: 'cjs',
  platform: 'node',
  target: 'node18',
  sourcemap: !production,
  minify: production,
  logLevel: 'info',
};

// The dashboard webview's script and styles (uPlot bundled in: the webview loads nothing from the network).
const webview = {
  entryPoints: { dashboard: 'src/webview/dashboard.ts' },
  bundle: true,
  outdir: 'dist',
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  sourcemap: !production,
  minify: production,
  logLevel: 'info',
};

if (watch) {
  for (const o of [options, webview]) await (await esbuild.context(o)).watch();
} else {
  await Promise.all([esbuild.build(options), esbuild.build(webview)]);
}
