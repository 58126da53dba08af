import { Transform, pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { X12parser } from 'x12-parser';

/**
 * An X12 file as a stream of segments, through x12-parser (research §6: streaming, zero
 * dependencies, maintained). It reads its delimiters from fixed offsets of the first chunk it
 * gets, so the gate below hands it the whole 106-character ISA at once and refuses a file whose ISA
 * is not the fixed-width header X12 requires (delimiters at offsets 3, 104 and 105).
 */

/** One segment: its id, its elements by number (`'1'`, components `'1-2'`), its 1-based position in the file. */
export interface Segment {
  name: string;
  position: number;
  [element: string]: string | number;
}

/** A file we refuse: what is wrong, and where (the segment and its position). */
export class X12Error extends Error {
  readonly segment?: string;
  readonly position?: number;
  constructor(message: string, at?: { name: string; position: number }) {
    super(at ? `${at.name} segment ${at.position}: ${message}` : message);
    this.name = 'X12Error';
    this.segment = at?.name;
    this.position = at?.position;
  }
}

/** A transaction set whose payment does not balance (BPR02 against its claims and PLB). */
export class X12BalanceError extends X12Error {}

const ISA_LENGTH = 106;
const ISA_WIDTHS = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

/** Buffers until the ISA is whole, checks it, then passes everything through untouched. */
class IsaGate extends Transform {
  #head = '';
  #open = false;

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, cb: TransformCallback): void {
    if (this.#open) return cb(null, chunk);
    this.#head += chunk.toString('latin1');
    const start = this.#head.search(/\S/);
    if (start < 0 || this.#head.length - start < ISA_LENGTH) return cb();
    const isa = this.#head.slice(start);
    const problem = checkIsa(isa);
    if (problem) return cb(new X12Error(problem, { name: 'ISA', position: 1 }));
    this.#open = true;
    this.#head = '';
    cb(null, Buffer.from(isa, 'latin1'));
  }

  override _flush(cb: TransformCallback): void {
    if (this.#open) return cb();
    const text = this.#head.trim();
    cb(new X12Error(text === '' ? 'The file is empty; an 835 starts with an ISA segment' : 'The file ends inside its ISA segment (an ISA is 106 characters)', text === '' ? undefined : { name: 'ISA', position: 1 }));
  }
}

function checkIsa(isa: string): string | undefined {
  if (!isa.startsWith('ISA')) return `The file must start with an ISA segment, not ${JSON.stringify(isa.slice(0, 3))}`;
  const element = isa[3];
  const elements = isa.slice(0, ISA_LENGTH - 1).split(element);
  const widths = elements.slice(1).map((e) => e.length);
  if (/[\sA-Za-z0-9]/.test(element) || widths.length !== 16 || widths.some((w, i) => w !== ISA_WIDTHS[i])) {
    return `ISA must have 16 elements of fixed width ${ISA_WIDTHS.join(', ')} (delimiters at characters 4, 105 and 106)`;
  }
  const component = isa[104];
  const terminator = isa[105];
  if (component === element || terminator === element || terminator === component || /[A-Za-z0-9]/.test(component + terminator)) {
    return 'ISA16 (component separator) and the segment terminator must be distinct special characters';
  }
  return undefined;
}

/**
 * The segments of `source`, in order, numbered from 1. Errors of the stream, the gate or the
 * parser end the iteration by throwing.
 */
export async function* readSegments(source: Readable): AsyncGenerator<Segment> {
  const parser = new X12parser('latin1');
  pipeline(source, new IsaGate(), parser, () => {
    // Errors reach the iteration below: pipeline destroys `parser` with them.
  });
  let position = 0;
  for await (const raw of parser as AsyncIterable<Record<string, string>>) {
    // What follows the last terminator (a line break) comes out as a nameless segment.
    if (!raw.name) continue;
    position++;
    yield { ...raw, position } as Segment;
  }
}
