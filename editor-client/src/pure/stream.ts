// Streamed text into an editor: pieces arrive as notifications faster than edits apply. One
// edit is in flight at a time; what arrives meanwhile is joined and goes in the next edit, in
// order. Pure: the edit is passed in.

export class StreamBuffer {
  private pending = '';
  private busy: Promise<void> | undefined;
  private shownFirst = false;
  private closed = false;
  /** Characters applied so far. */
  applied = 0;
  /** The last edit that failed (its text is lost; the stream goes on). */
  lastError: unknown;

  constructor(
    private readonly append: (text: string) => Promise<void>,
    /** Called once, when the first piece is in the editor (for the first-token figure). */
    private readonly onFirstShown?: () => void,
  ) {}

  /** Whether any piece was pushed (the first one starts the clock of the first-token figure). */
  received = false;

  push(text: string): void {
    if (this.closed || !text) return;
    this.received = true;
    this.pending += text;
    if (!this.busy) this.busy = this.pump();
  }

  private async pump(): Promise<void> {
    try {
      while (this.pending) {
        const text = this.pending;
        this.pending = '';
        try {
          await this.append(text);
        } catch (e) {
          this.lastError = e;
          continue;
        }
        this.applied += text.length;
        if (!this.shownFirst) {
          this.shownFirst = true;
          this.onFirstShown?.();
        }
      }
    } finally {
      this.busy = undefined;
    }
  }

  /** Resolves once everything pushed so far is applied. */
  async drain(): Promise<void> {
    while (this.busy) await this.busy;
  }

  /** No more pieces are taken (a cancelled run: late notifications are dropped). */
  close(): void {
    this.closed = true;
  }
}
