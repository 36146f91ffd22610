// Generated from schemas/*.json by scripts/gen-types.mjs: do not edit.
// Change the msgspec Structs, run `perfd schema`, then `npm run gen:types` in editor-client.

/**
 * Every type with a file in schemas/, by name: `WireSchemas["PlanSummary"]` is what schemas/PlanSummary.json describes.
 */
export interface WireSchemas {
  AchievementStatus: AchievementStatus;
  CliParams: CliParams;
  CliResult: CliResult;
  ErrorObject: ErrorObject;
  ErrorResponse: ErrorResponse;
  GenerateParams: GenerateParams;
  GenerateResult: GenerateResult;
  InitializeParams: InitializeParams;
  InitializeResult: InitializeResult;
  InvalidateParams: InvalidateParams;
  InvalidateResult: InvalidateResult;
  NamesParams: NamesParams;
  NamesResult: NamesResult;
  Notification: Notification;
  PingResult: PingResult;
  PlanChanged: PlanChanged;
  PlanStatus: PlanStatus;
  PlanSummary: PlanSummary;
  Problem: Problem;
  Request: Request;
  Response: Response;
  RunAnswer: RunAnswer;
  RunChunk: RunChunk;
  RunParams: RunParams;
  RunResult: RunResult;
  RunSummary: RunSummary;
  ShutdownResult: ShutdownResult;
  StatsSnapshot: StatsSnapshot;
  StatusParams: StatusParams;
  SubscribeResult: SubscribeResult;
  UserErrorData: UserErrorData;
  WorkspaceStatus: WorkspaceStatus;
}
export interface AchievementStatus {
  number: string;
  title: string;
  state:
    | 'active_execution'
    | 'complete'
    | 'create_next_execution'
    | 'fix_pending'
    | 'no_subplan'
    | 'subplan_all_executed'
    | 'subplan_complete'
    | 'subplan_no_execution';
  priority?: string | null;
  subplan?: string | null;
  executions?: string[];
  planned_executions?: number | null;
  active_execution?: string | null;
  fix?: string | null;
  approved?: string | null;
  dependencies?: string[];
  ready?: boolean;
  index_line?: number | null;
  body_line?: number | null;
  body_end?: number | null;
  decided_by?: string;
}
export interface CliParams {
  argv: string[];
  cwd: string;
  version?: string | null;
  raw?: boolean;
  root?: string | null;
  env?: {
    [k: string]: string;
  } | null;
}
export interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}
export interface ErrorObject {
  code: number;
  message: string;
  data?: unknown;
}
export interface ErrorResponse {
  id: number | string | null;
  error: ErrorObject;
  jsonrpc?: '2.0';
}
export interface GenerateParams {
  plan: string;
  achievement?: string | null;
  cwd?: string | null;
  trust_plan?: boolean;
  sync?: boolean;
}
export interface GenerateResult {
  plan: string;
  plan_path: string;
  achievement: string | null;
  state:
    | 'active_execution'
    | 'complete'
    | 'create_next_execution'
    | 'fix_pending'
    | 'no_subplan'
    | 'plan_complete'
    | 'subplan_all_executed'
    | 'subplan_complete'
    | 'subplan_no_execution';
  source: 'plan marks' | 'review files';
  prompt: string;
  parallel_options: string[];
  problems: Problem[];
  write_path?: string | null;
}
/**
 * Something wrong or odd in the input, reported instead of raised.
 */
export interface Problem {
  code: string;
  message: string;
  severity?: 'error' | 'info' | 'warning';
  path?: string | null;
  line?: number | null;
  end_line?: number | null;
  column?: number | null;
  end_column?: number | null;
}
export interface InitializeParams {
  version: string;
  client?: string;
}
export interface InitializeResult {
  version: string;
  compatible: boolean;
  pid: number;
  root: string;
}
export interface InvalidateParams {
  path?: string | null;
}
export interface InvalidateResult {
  invalidated: number;
}
/**
 * `names`: what a shell completes, without a whole status (about 376 KB at 1,500 plans).
 */
export interface NamesParams {
  plan?: string | null;
  cwd?: string | null;
  env?: {
    [k: string]: string;
  };
  sync?: boolean;
}
export interface NamesResult {
  plans?: string[];
  achievements?: string[];
}
export interface Notification {
  method: string;
  params?: unknown;
  jsonrpc?: '2.0';
}
export interface PingResult {
  pong: boolean;
  pid: number;
  version: string;
  root: string;
  uptime_s: number;
  model?: string;
  model_host?: string;
  plans_dir?: string;
  settings?: string;
  waiting_for_trust?: string[];
  settings_error?: string;
}
/**
 * Params of the `planChanged` notification sent to subscribers.
 */
export interface PlanChanged {
  plan: string;
  path: string;
  state: string;
  next: string | null;
  done: number;
  total: number;
  changed: string[];
}
export interface PlanStatus {
  plan: string;
  path: string;
  title: string;
  source: 'plan marks' | 'review files';
  state:
    | 'active_execution'
    | 'complete'
    | 'create_next_execution'
    | 'fix_pending'
    | 'no_subplan'
    | 'plan_complete'
    | 'subplan_all_executed'
    | 'subplan_complete'
    | 'subplan_no_execution';
  next: string | null;
  done: number;
  total: number;
  achievements?: AchievementStatus[];
  pending_fixes?: string[];
  parallel_options?: string[];
  awaiting_review?: string[];
  handoff_next?: string | null;
  problems?: Problem[];
  not_plan?: string;
}
export interface PlanSummary {
  plan: string;
  path: string;
  title: string;
  state:
    | 'active_execution'
    | 'complete'
    | 'create_next_execution'
    | 'fix_pending'
    | 'no_subplan'
    | 'plan_complete'
    | 'subplan_all_executed'
    | 'subplan_complete'
    | 'subplan_no_execution';
  next: string | null;
  done: number;
  total: number;
  source: 'plan marks' | 'review files';
  pending_fixes?: string[];
  parallel_options?: string[];
  problem_count?: number;
  group?: string;
  not_plan?: string;
  label?: string;
}
export interface Request {
  jsonrpc: '2.0';
  method: string;
  id?: number | string | null;
  params?:
    | {
        [k: string]: unknown;
      }
    | unknown[]
    | null;
}
export interface Response {
  id: number | string | null;
  result: unknown;
  jsonrpc?: '2.0';
}
/**
 * What one achievement's run gave: the answer and what it cost, or the error that stopped it.
 */
export interface RunAnswer {
  plan: string;
  achievement: string;
  state: string;
  ok: boolean;
  text?: string;
  cached?: boolean;
  prompt_tokens?: number;
  completion_tokens?: number;
  tokens?: number;
  cost?: number | null;
  cost_saved?: number | null;
  seconds?: number;
  written?: string | null;
  write_error?: string | null;
  write_error_kind?: string | null;
  kept?: number | null;
  error?: string | null;
  error_kind?: string | null;
  model?: string | null;
}
/**
 * Params of the `runChunk` notification: output of a `run` in progress, in order.
 */
export interface RunChunk {
  text: string;
  stream?: 'err' | 'out';
}
/**
 * `perfd run` through the daemon: the same argv as the command line (starting with "run").
 *
 * The daemon calls the model with ITS OWN environment (the one it was started
 * with), for the caller's settings: `env` carries its PERFD_* variables, never its API key.
 */
export interface RunParams {
  argv: string[];
  cwd: string;
  version?: string | null;
  tty?: boolean;
  env?: {
    [k: string]: string;
  } | null;
  root?: string | null;
}
/**
 * The answer to `run`: the exit code of `perfd run`, each achievement's answer, and the summary.
 */
export interface RunResult {
  code: number;
  answers?: RunAnswer[];
  summary?: RunSummary | null;
}
/**
 * The last JSON line of `perfd run --json`.
 */
export interface RunSummary {
  plan: string;
  achievements: number;
  failed: number;
  cached: number;
  tokens: number;
  cost: number | null;
  seconds: number;
  tokens_saved?: number;
  cost_saved?: number | null;
  written: string[];
  code: number;
}
export interface ShutdownResult {
  stopping: boolean;
  pid: number;
}
export interface StatsSnapshot {
  version: string;
  pid: number;
  root: string;
  uptime_s: number;
  rss_bytes: number;
  connections: number;
  subscribers: number;
  watcher_events: number;
  watcher_batches: number;
  cache: CacheStats;
  memo_hits: number;
  methods: MethodStats[];
  llm?: LLMStats | null;
  sessions?: number;
  latency?: {
    [k: string]: LatencyStats;
  };
  levels?: CacheLevel[];
  hit_rate?: number;
  memo_misses?: number;
  metrics_addr?: string | null;
  metrics_error?: string | null;
  watcher?: WatcherReport | null;
}
export interface CacheStats {
  entries: number;
  capacity: number;
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
  invalidations: number;
  hit_rate: number;
  lookup_p50_us: number;
  lookup_p99_us: number;
  trusted_hits?: number;
  stat_checks?: number;
  persisted_hits?: number;
  trusting?: boolean;
  answers_stat_checked?: number;
  trust_restarts?: number;
}
/**
 * One command's (`generate`, `status`, `run`, ...) or JSON-RPC method's requests.
 *
 * One rule for errors, whatever the command: a request that did not succeed
 * (a JSON-RPC error, or a command line that exited non-zero) is an error.
 */
export interface MethodStats {
  method: string;
  requests: number;
  errors: number;
  latency: LatencyStats;
  total_s?: number;
}
export interface LatencyStats {
  count: number;
  errors: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
}
/**
 * A point-in-time snapshot of one provider's client. Never holds secrets.
 */
export interface LLMStats {
  base_url: string;
  model: string;
  calls: number;
  requests: number;
  retries: number;
  errors: {
    [k: string]: number;
  };
  attempt_errors: {
    [k: string]: number;
  };
  rate_limited: number;
  rate_limit_wait_s: number;
  window_requests: number;
  window_tokens: number;
  breaker_state: string;
  breaker_opened: number;
  cache_hits: number;
  cache_misses: number;
  cache_rebuilt: number;
  tokens_saved: number;
  cost_saved: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number;
  connections_opened: number;
  in_flight: number;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  latency_p99_ms: number | null;
  cache_hits_by_level?: {
    [k: string]: number;
  };
  served_by_fallback?: {
    [k: string]: number;
  };
  priced?: boolean;
  budget_used_usd?: number | null;
  team?: TeamStats | null;
}
/**
 * The team's shared limits as this daemon sees them ([team] in perfd.toml). Never holds secrets.
 */
export interface TeamStats {
  redis: string;
  namespace: string;
  fail: string;
  state: string;
  down_since: number | null;
  last_error: string | null;
  peers: number;
  window_requests: number;
  window_tokens: number;
  rpm: number | null;
  tpm: number | null;
  window_s: number;
  seen_at: number | null;
  cache_hits: number;
  cache_misses: number;
  budget_usd_per_day: number | null;
  budget_used_usd: number;
  budget_left_usd: number | null;
  redis_ops: number;
  redis_errors: number;
  redis_rtt_p50_ms: number | null;
  redis_rtt_p95_ms: number | null;
  fallbacks: number;
  refused: number;
  waited_s: number;
  cache_rejected?: number;
}
/**
 * One level of perfd's caches: whole answers, file parses, or model responses.
 */
export interface CacheLevel {
  name: string;
  hits: number;
  misses: number;
  hit_rate: number;
}
/**
 * How answers are kept fresh: the watcher, what it covers, and what is checked by stat instead.
 */
export interface WatcherReport {
  backend: string;
  synced?: boolean;
  folders?: string[];
  watched?: number;
  unwatched?: UnwatchedFolder[];
  no_events?: string[];
  overflows?: number;
  max_user_watches?: number;
  watches_needed?: number;
  verify_interval_s?: number;
  verify_passes?: number;
  verify_found?: number;
  verify_cpu_share?: number;
}
/**
 * A folder the watcher could not watch (so neither what lies under it): answers check it by stat.
 */
export interface UnwatchedFolder {
  path: string;
  reason: string;
}
export interface StatusParams {
  plan?: string | null;
  cwd?: string | null;
  trust_plan?: boolean;
  sync?: boolean;
}
export interface SubscribeResult {
  subscribed: boolean;
  watching: boolean;
}
export interface UserErrorData {
  code: string;
  hint?: string;
  candidates?: string[];
}
export interface WorkspaceStatus {
  root: string;
  plans: PlanSummary[];
  problems: Problem[];
  plans_dir?: string;
}
