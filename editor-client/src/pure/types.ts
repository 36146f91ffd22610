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

/** perfd.clearCache's answer (no schema yet). */
export interface ClearCacheResult {
  cleared: number;
}
