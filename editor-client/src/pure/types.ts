// Shapes of perfd's workspace/executeCommand answers and of the perfd/stats notification.
// They mirror daemon/perfd/types.py (msgspec structs sent as plain JSON); optional where the
// server omits defaults.

export interface Problem {
  code: string;
  message: string;
  severity?: 'error' | 'warning' | 'info';
  path?: string | null;
  line?: number | null;
}

export interface GenerateResult {
  plan: string;
  plan_path: string;
  achievement: string | null;
  state: string;
  source: string;
  prompt: string;
  parallel_options: string[];
  problems: Problem[];
  write_path?: string | null;
}

export interface PlanSummary {
  plan: string;
  path: string;
  title: string;
  state: string;
  next: string | null;
  done: number;
  total: number;
  source?: string;
  pending_fixes?: string[];
  parallel_options?: string[];
  problems?: Problem[];
}

export interface WorkspaceStatus {
  root: string;
  plans: PlanSummary[];
}

export interface AchievementStatus {
  number: string;
  title: string;
  state: string;
  priority?: string | null;
  subplan?: string | null;
  executions?: string[];
  active_execution?: string | null;
  fix?: string | null;
  approved?: string | null;
  dependencies?: string[];
  ready?: boolean;
  index_line?: number | null;
  body_line?: number | null;
}

export interface PlanStatus extends PlanSummary {
  achievements?: AchievementStatus[];
  awaiting_review?: string[];
  handoff_next?: string | null;
}

export interface CacheStats {
  entries: number;
  hits: number;
  misses: number;
  hit_rate: number;
  evictions: number;
  expirations: number;
  lookup_p50_us: number;
  lookup_p99_us: number;
}

export interface MethodLatency {
  p50_ms?: number;
  p95_ms?: number;
  p99_ms?: number;
}

export interface StatsPayload {
  cache?: Partial<CacheStats>;
  uptime_s?: number;
  latency?: Record<string, MethodLatency>;
  [key: string]: unknown;
}

export interface ClearCacheResult {
  cleared: number;
}
