// The perfd view (activity bar → Plans): the TreeModel (src/pure/tree.ts) as VS Code tree
// items. Each folder's data comes from its session's perfd.status; a perfd/plansChanged
// notification re-reads that folder (and the achievements of its expanded plans), so the view
// is live without polling.
import * as vscode from 'vscode';
import type { PerfdApi } from './api';
import { errorMessage, notPlanText, planRef, stateLabel } from './pure/format';
import { achievementDescription, Filter, filterLabel, Node, planDescription, stateIcon, TreeModel } from './pure/tree';

export interface ViewHost {
  /** The API of a folder's session, when it runs. */
  apiFor(folderKey: string): PerfdApi | undefined;
  /** Why a folder has no running session, if it has none. */
  problemOf(folderKey: string): string | undefined;
  log(line: string): void;
  sinceActivation(what: string, note?: string): void;
}

export class PlansView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  readonly model = new TreeModel();
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly loadingDetail = new Set<string>();
  private populated = false;
  view: vscode.TreeView<Node> | undefined;

  constructor(private readonly host: ViewHost) {}

  attach(view: vscode.TreeView<Node>): vscode.Disposable[] {
    this.view = view;
    this.showFilter();
    return [
      view.onDidExpandElement((e) => this.model.setExpanded(e.element.id, true)),
      view.onDidCollapseElement((e) => this.model.setExpanded(e.element.id, false)),
    ];
  }

  setFolders(list: { key: string; name: string }[]): void {
    this.model.setFolders(list);
    this.emitter.fire(undefined);
  }

  setFilter(f: Filter): void {
    this.model.filter = f;
    this.showFilter();
    this.emitter.fire(undefined);
  }

  private showFilter(): void {
    if (this.view) this.view.description = this.model.filter === 'all' ? undefined : filterLabel(this.model.filter);
  }

  /**
   * Re-read one folder: its workspace status, then the achievements of its expanded plans; one
   * redraw at the end. A refresh asked for while one runs runs once more after it.
   */
  refresh(folderKey: string, reason?: { since: number; what: string }): Promise<void> {
    const running = this.inFlight.get(folderKey);
    if (running) {
      this.again.add(folderKey);
      return running;
    }
    const p = this.load(folderKey, reason).finally(() => {
      this.inFlight.delete(folderKey);
      if (this.again.delete(folderKey)) void this.refresh(folderKey, reason);
    });
    this.inFlight.set(folderKey, p);
    return p;
  }

  refreshAll(): Promise<void> {
    return Promise.all(this.model.folderKeys().map((k) => this.refresh(k))).then(() => undefined);
  }

  private async load(folderKey: string, reason?: { since: number; what: string }): Promise<void> {
    const api = this.host.apiFor(folderKey);
    if (!api) {
      const why = this.host.problemOf(folderKey);
      if (why) this.model.setError(folderKey, why);
      this.emitter.fire(undefined);
      return;
    }
    try {
      this.model.setStatus(folderKey, await api.status());
      // the expanded plans' achievements, all at once; a plan gone meanwhile just drops out
      await Promise.all(
        this.model.expandedPlans(folderKey).map(async (plan) => {
          try {
            this.model.setDetail(folderKey, await api.planStatus(plan));
          } catch {
            this.model.dropDetail(folderKey, plan);
          }
        }),
      );
    } catch (e) {
      this.model.setError(folderKey, `perfd: ${errorMessage(e).replace(/^perfd: /, '')}`);
    }
    this.emitter.fire(undefined);
    if (reason) this.host.log(`timing: ${reason.what}: ${Date.now() - reason.since} ms (view updated at epoch ${Date.now()})`);
    this.notePopulated();
  }

  private notePopulated(): void {
    if (this.populated) return;
    const keys = this.model.folderKeys();
    if (keys.length && keys.every((k) => this.model.folder(k)?.status || this.model.folder(k)?.error)) {
      this.populated = true;
      this.host.sinceActivation('activation to tree view populated');
    }
  }

  // -- TreeDataProvider ----------------------------------------------------------------------

  getChildren(node?: Node): Node[] {
    if (node?.kind === 'plan') this.ensureDetail(node.folder, node.plan.path);
    return this.model.children(node);
  }

  getParent(): undefined {
    return undefined;
  }

  private ensureDetail(folderKey: string, plan: string): void {
    const key = `${folderKey}\n${plan}`;
    if (this.model.folder(folderKey)?.details.has(plan) || this.loadingDetail.has(key)) return;
    const api = this.host.apiFor(folderKey);
    if (!api) return;
    this.loadingDetail.add(key);
    api
      .planStatus(plan)
      .then((st) => this.model.setDetail(folderKey, st))
      .catch((e) => this.host.log(`view: ${plan}: ${errorMessage(e)}`))
      .finally(() => {
        this.loadingDetail.delete(key);
        this.emitter.fire(undefined);
      });
  }

  getTreeItem(node: Node): vscode.TreeItem {
    const collapsible = (open: boolean) =>
      open ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed;
    let item: vscode.TreeItem;
    switch (node.kind) {
      case 'folder':
        item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.Expanded);
        item.description = node.description;
        item.iconPath = new vscode.ThemeIcon('root-folder');
        item.contextValue = 'folder';
        break;
      case 'group':
        item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.Expanded);
        item.iconPath = vscode.ThemeIcon.Folder;
        item.contextValue = 'group';
        break;
      case 'plan': {
        const p = node.plan;
        item = new vscode.TreeItem(planRef(p), collapsible(this.model.isExpanded(node.id)));
        item.description = planDescription(p);
        item.iconPath = new vscode.ThemeIcon(stateIcon(p.state));
        const tip = new vscode.MarkdownString(
          `**${p.title || p.plan}** (${planRef(p)})\n\n${p.done}/${p.total} approved · state \`${p.state}\` (${stateLabel(p.state)})` +
            (p.next ? ` · next **${p.next}**` : '') +
            ((p.pending_fixes ?? []).length ? `\n\npending fixes: ${(p.pending_fixes ?? []).join(', ')}` : '') +
            ((p.parallel_options ?? []).length ? `\n\nparallel options: ${(p.parallel_options ?? []).join(', ')}` : ''),
        );
        item.tooltip = tip;
        item.contextValue = p.state === 'plan_complete' ? 'plan.complete' : 'plan';
        item.resourceUri = vscode.Uri.file(p.path);
        break;
      }
      case 'notPlan':
        item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.description = notPlanText({ not_plan: node.reason });
        item.tooltip = `${node.path}\n\n${notPlanText({ not_plan: node.reason })} (perfd does not count it)`;
        item.iconPath = new vscode.ThemeIcon('circle-slash');
        item.contextValue = 'notPlan';
        item.resourceUri = vscode.Uri.file(node.path);
        item.command = { command: 'vscode.open', title: 'Open the document', arguments: [vscode.Uri.file(node.path)] };
        break;
      case 'achievement': {
        const a = node.achievement;
        item = new vscode.TreeItem(`${a.number} ${a.title}`, vscode.TreeItemCollapsibleState.None);
        item.description = achievementDescription(a) + (node.next ? ' · next' : '');
        item.iconPath = new vscode.ThemeIcon(stateIcon(a.state));
        item.tooltip = `${a.number} ${a.title}: ${a.state} (${stateLabel(a.state)})${a.ready === false ? ', waiting on ' + (a.dependencies ?? []).join(', ') : ''}`;
        item.contextValue = a.state === 'complete' ? 'achievement.complete' : 'achievement';
        item.command = { command: 'perfd.view.openPlan', title: 'Open the PLAN at the achievement', arguments: [node] };
        break;
      }
      case 'info':
        item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.description = node.description;
        item.iconPath = new vscode.ThemeIcon(node.icon);
        item.contextValue = 'info';
        break;
      case 'message':
        item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.description = node.description;
        item.contextValue = 'message';
        break;
    }
    item.id = node.id;
    return item;
  }

  dispose(): void {
    this.emitter.dispose();
  }
}
