// Shapes of perfd's workspace/executeCommand answers and of the perfd/stats notification.
// The wire types are generated from the daemon's schemas (./wire.ts, `npm run gen:types`);
// only the answers that have no schema yet are written here.

export type {
  AchievementStatus,
  CacheStats,
  GenerateResult,
  LatencyStats,
  MethodStats,
  PlanStatus,
  PlanSummary,
  Problem,
  StatsSnapshot,
  WorkspaceStatus,
} from './wire';

import type { CacheStats, LatencyStats, RunAnswer, StatsSnapshot } from './wire';

/** One method's latency in the stats payload's `latency` map (read defensively: any field may be missing). */
export type MethodLatency = Partial<LatencyStats>;

/**
 * The perfd/stats notification, the perfd.stats command's answer and `perfd stats --json`: one
 * StatsSnapshot (generated), from the daemon or a standalone server alike. Optional here only
 * because the extension reads whatever arrives defensively (an older server, a test double).
 */
export interface StatsPayload extends Partial<Omit<StatsSnapshot, 'cache' | 'latency'>> {
  cache?: Partial<CacheStats>;
  latency?: Record<string, MethodLatency>;
}

/** perfd/plansChanged: files of the workspace changed on disk (empty `paths`: anything may have). */
export interface PlansChangedParams {
  root: string;
  paths: string[];
}

/** perfd/runChunk: the next piece of a streamed perfd.run answer. */
export interface RunChunkParams {
  id: string;
  achievement: string;
  text: string;
}

/** perfd.run's answer (a RunAnswer) and where `run --write` would save it. */
export interface RunResult extends Partial<Omit<RunAnswer, 'achievement'>> {
  plan: string;
  achievement: string | null;
  state: string;
  text: string;
  write_path?: string | null;
  prompt?: string;
}

/** perfd.createSubplan / perfd.writeAnswer / perfd.openFile: the file written or opened. */
export interface FileResult {
  path: string;
  shown?: boolean;
}

/** perfd.clearCache's answer (no schema yet). */
export interface ClearCacheResult {
  cleared: number;
}

/** perfd.models' answer: the `[models.NAME]` names perfd.run takes, and those waiting for `perfd trust`. */
export interface ModelNames {
  models: string[];
  waiting: string[];
}
