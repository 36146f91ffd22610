// The client-side request/response code (src/api.ts, the lens rewrite, the status bar
// formatting) against the real perfd language server over stdio, on a copy of the example
// workspace. The server is this checkout's (daemon/ first on PYTHONPATH). Skipped, with a
// message, when no Python with perfd's dependencies is found (PERFD_PYTHON, /tmp/venv/bin/python,
// python3 — the first that imports perfd.lsp).
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMessageConnection, MessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import { PerfdApi, STATS_NOTIFICATION } from '../src/api';
import { statusBarModel } from '../src/pure/format';
import { rewriteLensCommand } from '../src/pure/plans';
import type { StatsPayload } from '../src/pure/types';

const DAEMON = path.resolve(__dirname, '..', '..', 'daemon');
const EXAMPLE = path.join(DAEMON, 'perfd', 'example');
// The server of this checkout, whichever perfd the interpreter has installed (only its dependencies are used).
const ENV = { ...process.env, PYTHONPATH: [DAEMON, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) };

function findPython(): string | undefined {
  const candidates = [process.env.PERFD_PYTHON, '/tmp/venv/bin/python', 'python3', 'python'].filter(Boolean) as string[];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import perfd.lsp.server'], { encoding: 'utf8', timeout: 20000, env: ENV });
    if (r.status === 0) return py;
  }
  return undefined;
}

const python = fs.existsSync(EXAMPLE) ? findPython() : undefined;
if (!python) {
  console.warn(
    `SKIP server.integration: no Python that imports perfd (set PERFD_PYTHON, or pip install -e . in /tmp/venv), or no example at ${EXAMPLE}`,
  );
}

describe.skipIf(!python)('against the real perfd language server', () => {
  let proc: ChildProcess;
  let conn: MessageConnection;
  let api: PerfdApi;
  let root: string;
  let serverCommands: string[] = [];
  const stats: StatsPayload[] = [];
  const stderr: string[] = [];

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'perfd-client-it-'));
    fs.cpSync(EXAMPLE, root, { recursive: true });
    proc = spawn(python!, ['-m', 'perfd.lsp', '--root', root], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], env: ENV });
    proc.stderr!.on('data', (d) => stderr.push(String(d)));
    conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
    conn.onNotification(STATS_NOTIFICATION, (p: StatsPayload) => stats.push(p));
    conn.onRequest(() => null); // workspace/codeLens/refresh and the like
    conn.listen();
    const init = (await conn.sendRequest('initialize', {
      processId: process.pid,
      rootUri: `file://${root}`,
      capabilities: { workspace: { codeLens: { refreshSupport: true } } },
    })) as { capabilities: { executeCommandProvider?: { commands: string[] }; codeLensProvider?: unknown } };
    serverCommands = init.capabilities.executeCommandProvider?.commands ?? [];
    await conn.sendNotification('initialized', {});
    api = new PerfdApi({ sendRequest: (m, p) => conn.sendRequest(m, p) as Promise<unknown> }, serverCommands);
  });

  afterAll(async () => {
    try {
      if (conn) {
        await Promise.race([conn.sendRequest('shutdown'), new Promise((r) => setTimeout(r, 3000))]);
        await conn.sendNotification('exit');
        conn.dispose();
      }
    } finally {
      proc?.kill();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('offers the commands the extension relies on', () => {
    expect(serverCommands).toEqual(expect.arrayContaining(['perfd.generateNext', 'perfd.generate', 'perfd.status', 'perfd.stats', 'perfd.clearCache']));
  });

  it('perfd.generateNext returns a prompt for @API-CLIENT', async () => {
    const r = await api.generateNext('@API-CLIENT');
    expect(r.plan).toBe('API-CLIENT');
    expect(r.prompt.length).toBeGreaterThan(100);
    expect(fs.realpathSync(r.plan_path)).toBe(fs.realpathSync(path.join(root, 'work-space/plans/API-CLIENT/PLAN_API-CLIENT.md')));
    expect(Array.isArray(r.problems)).toBe(true);
  });

  it('status of all plans, then one plan, then a prompt for one of its achievements', async () => {
    const st = await api.status();
    expect(st.plans.map((p) => p.plan)).toEqual(expect.arrayContaining(['API-CLIENT', 'SEARCH-INDEX', 'RELEASE-0.1']));
    for (const p of st.plans) {
      // A summary counts its problems (omitted when 0); only PlanStatus lists them.
      expect(p).not.toHaveProperty('problems');
      if (p.problem_count !== undefined) expect(p.problem_count).toBeGreaterThan(0);
    }
    const api1 = st.plans.find((p) => p.plan === 'API-CLIENT')!;
    const plan = await api.planStatus(api1.path);
    expect(plan.achievements?.length).toBeGreaterThan(0);
    const open = plan.achievements!.find((a) => a.state !== 'complete')!;
    const r = await api.generate(`file://${api1.path}`, open.number);
    expect(r.achievement).toBe(open.number);
    expect(r.prompt).toContain(open.number);
  });

  it('a SUBPLAN file names its plan: the server decides whose it is', async () => {
    const dir = path.join(root, 'work-space/plans/API-CLIENT/subplans');
    const sub = path.join(dir, fs.readdirSync(dir).find((n) => n.startsWith('SUBPLAN_'))!);
    const plan = path.join(root, 'work-space/plans/API-CLIENT/PLAN_API-CLIENT.md');
    const st = await api.planStatus(`file://${sub}`);
    expect(fs.realpathSync(st.path)).toBe(fs.realpathSync(plan));
    expect((await api.generateNext(sub)).plan).toBe('API-CLIENT');
    await expect(api.generateNext(path.join(root, 'work-space/plans'))).rejects.toThrow(/not a plan of this workspace/);
  });

  it('an unknown plan is an error with a message', async () => {
    await expect(api.generateNext('@NO-SUCH-PLAN')).rejects.toThrow(/NO-SUCH-PLAN/);
  });

  it('code lenses use the commands the client rewrites', async () => {
    const file = path.join(root, 'work-space/plans/API-CLIENT/PLAN_API-CLIENT.md');
    const uri = `file://${file}`;
    await conn.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'markdown', version: 1, text: fs.readFileSync(file, 'utf8') },
    });
    const lenses = (await conn.sendRequest('textDocument/codeLens', { textDocument: { uri } })) as { command?: { command: string; title: string; arguments: unknown[] } }[];
    expect(lenses.length).toBeGreaterThan(1);
    const ids = new Set(lenses.map((l) => l.command!.command));
    for (const id of ids) expect(rewriteLensCommand(id)).toMatch(/^perfd\.lens\./);
    expect(lenses[0].command!.title).toMatch(/^Next: .+ — Generate$/);
    expect(lenses[0].command!.arguments).toEqual([expect.stringContaining('PLAN_API-CLIENT.md')]);
  });

  it('stats: the request and the perfd/stats notification format in the status bar', async () => {
    const s = await api.stats();
    expect(typeof s.cache?.hit_rate).toBe('number');
    expect(statusBarModel('running', s).text).toMatch(/^perfd (\d+|–)% · [\d.]+ ms$/);
    await expect.poll(() => stats.length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(statusBarModel('running', stats.at(-1)).text).toMatch(/^perfd (\d+|–)% · [\d.]+ ms$/);
  });

  it('clearCache answers how many entries it cleared', async () => {
    const r = await api.clearCache();
    expect(typeof r.cleared).toBe('number');
    expect(api.hasCommand('perfd.run')).toBe(serverCommands.includes('perfd.run'));
  });
});
