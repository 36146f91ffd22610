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

import type { CacheStats, LatencyStats, StatsSnapshot } from './wire';

/** One method's latency in the perfd/stats notification's `latency` map (a standalone session sends fewer fields). */
export type MethodLatency = Partial<LatencyStats>;

/**
 * The perfd/stats notification and the perfd.stats command's answer. In the daemon: a
 * StatsSnapshot plus `sessions` and `latency` (the snapshot's `methods` by name). A standalone
 * language server sends only part of `cache`, `latency` and `uptime_s`. Written by hand until
 * the server sends one schema'd shape for both.
 */
export interface StatsPayload extends Partial<Omit<StatsSnapshot, 'cache'>> {
  cache?: Partial<CacheStats>;
  latency?: Record<string, MethodLatency>;
  sessions?: number;
}

/** perfd.clearCache's answer (no schema yet). */
export interface ClearCacheResult {
  cleared: number;
}
