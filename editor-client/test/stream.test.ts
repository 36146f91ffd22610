import { describe, expect, it } from 'vitest';
import { StreamBuffer } from '../src/pure/stream';

describe('StreamBuffer', () => {
  it('one edit at a time; what arrives meanwhile goes in the next edit, in order', async () => {
    const edits: string[] = [];
    const gates: (() => void)[] = [];
    const b = new StreamBuffer((t) => {
      edits.push(t);
      return new Promise<void>((r) => gates.push(r));
    });
    b.push('a');
    b.push('b');
    b.push('c');
    expect(edits).toEqual(['a']);
    gates.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    expect(edits).toEqual(['a', 'bc']);
    gates.shift()!();
    await b.drain();
    expect(edits.join('')).toBe('abc');
    expect(b.applied).toBe(3);
  });

  it('says when the first piece is shown, once; drops pieces after close', async () => {
    let firsts = 0;
    const out: string[] = [];
    const b = new StreamBuffer(async (t) => void out.push(t), () => firsts++);
    b.push('x');
    await b.drain();
    b.push('y');
    await b.drain();
    expect(firsts).toBe(1);
    b.close();
    b.push('z');
    await b.drain();
    expect(out.join('')).toBe('xy');
  });

  it('an edit that fails does not wedge the stream', async () => {
    let fail = true;
    const out: string[] = [];
    const b = new StreamBuffer(async (t) => {
      if (fail) {
        fail = false;
        throw new Error('editor closed');
      }
      out.push(t);
    });
    b.push('lost');
    await b.drain();
    expect(String(b.lastError)).toContain('editor closed');
    b.push('next');
    await b.drain();
    expect(out).toEqual(['next']);
  });
});
