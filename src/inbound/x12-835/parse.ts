import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ZERO } from '../../billing/index.ts';
import type { Amount } from '../../billing/index.ts';
import { adjustments, date, money, newClaim, newService, providerAdjustments, remarkCodes, required } from './elements.ts';
import type { ClaimPayment, Party, ProviderAdjustment, RemittanceHeader, RemittancePart, ServiceLine } from './model.ts';
import { X12BalanceError, X12Error, readSegments } from './segments.ts';
import type { Segment } from './segments.ts';

/**
 * Reads an 835 as it streams: the envelope is checked as it goes (ISA/IEA, GS/GE, ST/SE: counts
 * and control numbers; nothing outside them), and each transaction set's header, claims and end
 * are yielded as soon as they are whole, so memory does not grow with the file. At SE the payment
 * must balance: BPR02 = Σ CLP04 − Σ PLB amounts. Any problem throws X12Error naming the segment
 * and its position; the caller writes in one transaction, so a refused file leaves nothing.
 */
export async function* readRemittance(source: Readable, seen?: { interchanges: string[]; groups: string[] }): AsyncGenerator<RemittancePart> {
  const env = new Envelope();
  let set: TransactionSet | undefined;
  for await (const s of readSegments(source)) {
    if (set && s.name !== 'SE') {
      yield* set.take(s);
      continue;
    }
    switch (s.name) {
      case 'ISA':
        env.openInterchange(s);
        if (seen && seen.interchanges.length < ENVELOPE_CAP) seen.interchanges.push(String(s['13'] ?? '').trim());
        break;
      case 'IEA': env.closeInterchange(s); break;
      case 'GS':
        env.openGroup(s);
        if (seen && seen.groups.length < ENVELOPE_CAP) seen.groups.push(String(s['6'] ?? '').trim());
        break;
      case 'GE': env.closeGroup(s); break;
      case 'ST':
        env.openSet(s);
        if (s['1'] !== '835') throw new X12Error(`ST01 is ${JSON.stringify(s['1'])}; only 835 (health care claim payment) is taken`, s);
        set = new TransactionSet(s);
        break;
      case 'SE':
        if (!set) throw new X12Error('SE without its ST', s);
        yield* set.finish(s);
        env.closeSet();
        set = undefined;
        break;
      default:
        throw new X12Error('segment outside a transaction set (ST ... SE)', s);
    }
  }
  env.end();
}

/** Control numbers noted per file (`seen`): a file of many interchanges keeps the first ones. */
export const ENVELOPE_CAP = 100;

/** The nesting of ISA, GS and ST with their counts and control numbers. */
class Envelope {
  #isa?: Segment;
  #gs?: Segment;
  #groups = 0;
  #sets = 0;
  #inSet = false;
  #done = false;

  openInterchange(s: Segment): void {
    if (this.#isa) throw new X12Error('ISA inside an interchange (its IEA is missing)', s);
    // Several interchanges one after the other (as clearinghouses concatenate them) are taken.
    this.#isa = s;
    this.#groups = 0;
  }

  closeInterchange(s: Segment): void {
    if (!this.#isa || this.#gs) throw new X12Error(this.#gs ? `IEA before the GE of group ${String(this.#gs['6'])}` : 'IEA without its ISA', s);
    expectCount(s, 'IEA01', s['1'], this.#groups, 'functional groups (GS)');
    if (String(s['2']).trim() !== String(this.#isa['13']).trim()) {
      throw new X12Error(`IEA02 control number ${String(s['2'])} does not match ISA13 ${String(this.#isa['13'])}`, s);
    }
    this.#isa = undefined;
    this.#done = true;
  }

  openGroup(s: Segment): void {
    if (!this.#isa) throw new X12Error('GS outside an interchange (ISA ... IEA)', s);
    if (this.#gs) throw new X12Error(`GS inside group ${String(this.#gs['6'])} (its GE is missing)`, s);
    if (s['1'] !== 'HP') throw new X12Error(`GS01 is ${JSON.stringify(s['1'])}; an 835 group is HP`, s);
    if (!String(s['8'] ?? '').startsWith('005010X221')) throw new X12Error(`GS08 is ${JSON.stringify(s['8'])}; 005010X221A1 is taken`, s);
    this.#gs = s;
    this.#sets = 0;
    this.#groups++;
  }

  closeGroup(s: Segment): void {
    if (!this.#gs) throw new X12Error('GE without its GS', s);
    if (this.#inSet) throw new X12Error('GE inside a transaction set (its SE is missing)', s);
    expectCount(s, 'GE01', s['1'], this.#sets, 'transaction sets (ST)');
    if (s['2'] !== this.#gs['6']) throw new X12Error(`GE02 control number ${String(s['2'])} does not match GS06 ${String(this.#gs['6'])}`, s);
    this.#gs = undefined;
  }

  openSet(s: Segment): void {
    if (!this.#gs) throw new X12Error('ST outside a functional group (GS ... GE)', s);
    this.#inSet = true;
    this.#sets++;
  }

  closeSet(): void {
    this.#inSet = false;
  }

  end(): void {
    if (this.#inSet) throw new X12Error('The file ends inside a transaction set: its SE is missing');
    if (this.#gs) throw new X12Error(`The file ends inside group ${String(this.#gs['6'])}: its GE is missing`);
    if (this.#isa) throw new X12Error('The file ends inside its interchange: its IEA is missing');
    if (!this.#done) throw new X12Error('The file has no interchange (ISA ... IEA)');
  }
}

function expectCount(s: Segment, element: string, value: unknown, actual: number, what: string): void {
  if (!/^\d+$/.test(String(value ?? '').trim()) || Number(value) !== actual) {
    throw new X12Error(`${element} says ${JSON.stringify(value)} ${what}; there are ${actual}`, s);
  }
}

/** One ST ... SE: header first, then claims (each yielded when the next begins), then the end. */
class TransactionSet {
  readonly #st: Segment;
  #count = 1;
  #hash: Hash = createHash('sha256');
  #header: Partial<RemittanceHeader> & { parties: Map<string, Party> };
  #headerSent = false;
  #party?: string;
  #claim?: ClaimPayment;
  #service?: ServiceLine;
  #claims = 0;
  #paid: Amount = ZERO;
  #adjustments: ProviderAdjustment[] = [];

  constructor(st: Segment) {
    this.#st = st;
    this.#hash.update(line(st));
    this.#header = { controlNumber: String(st['2']), position: st.position, parties: new Map() };
  }

  *take(s: Segment): Generator<RemittancePart> {
    this.#count++;
    this.#hash.update(line(s));
    switch (s.name) {
      case 'BPR': return this.#bpr(s);
      case 'TRN':
        if (this.#header.traceNumber) return; // a second TRN is not a new trace
        this.#header.traceNumber = required(s, '2', 'TRN02 (check or EFT trace number)');
        this.#header.payerId = required(s, '3', 'TRN03 (payer identifier)');
        return;
      case 'DTM': return this.#dtm(s);
      case 'CUR':
        // Only the payer's currency (CUR01 PR) is the remittance's; it is checked against the books.
        if (s['1'] === 'PR' && s['2']) this.#header.currency = String(s['2']).toUpperCase();
        return;
      case 'N1': {
        this.#party = String(s['1']);
        this.#header.parties.set(this.#party, { name: String(s['2'] ?? ''), ...(s['3'] && { idQualifier: String(s['3']) }), ...(s['4'] && { id: String(s['4']) }) });
        return;
      }
      case 'LX': yield* this.#flushClaim(); return;
      case 'CLP': yield* this.#flushClaim(); yield* this.#sendHeader(s); this.#claim = newClaim(s); this.#claims++; this.#paid = this.#paid.plus(this.#claim.paid); return;
      case 'CAS': { const list = this.#service?.adjustments ?? this.#claim?.adjustments; if (!list) throw new X12Error('CAS outside a claim', s); list.push(...adjustments(s)); return; }
      case 'NM1': if (this.#claim && s['1'] === 'QC') this.#claim.patientName = [s['4'], s['5'], s['3']].filter(Boolean).join(' '); return;
      case 'MOA': case 'MIA': if (this.#claim) this.#claim.remarks.push(...remarkCodes(s)); return;
      case 'SVC': if (!this.#claim) throw new X12Error('SVC outside a claim', s); this.#service = newService(s); this.#claim.services.push(this.#service); return;
      case 'LQ': if (this.#service && s['1'] === 'HE' && s['2']) this.#service.remarks.push(String(s['2'])); return;
      case 'REF': if (this.#service && s['1'] === '6R' && s['2']) this.#service.lineControl = String(s['2']); return;
      case 'PLB': yield* this.#flushClaim(); yield* this.#sendHeader(s); this.#adjustments.push(...providerAdjustments(s)); return;
      case 'ST': case 'GS': case 'GE': case 'ISA': case 'IEA': throw new X12Error(`${s.name} inside transaction set ${this.#header.controlNumber} (its SE is missing)`, s);
      default: return; // segments we do not map (PER, RDM, AMT, QTY, ...) are counted and hashed only
    }
  }

  *finish(se: Segment): Generator<RemittancePart> {
    this.#count++;
    this.#hash.update(line(se));
    yield* this.#flushClaim();
    yield* this.#sendHeader(se);
    expectCount(se, 'SE01', se['1'], this.#count, 'segments (ST through SE)');
    if (se['2'] !== this.#st['2']) throw new X12Error(`SE02 control number ${String(se['2'])} does not match ST02 ${String(this.#st['2'])}`, se);
    let plb = ZERO;
    for (const a of this.#adjustments) plb = plb.plus(a.amount);
    const expected = this.#paid.minus(plb);
    const h = this.#header as RemittanceHeader;
    // A debit (BPR03 D) takes money back: the claims and adjustments net to its negative.
    const paid = h.creditDebit === 'D' ? h.paymentAmount.negated() : h.paymentAmount;
    if (!paid.eq(expected)) {
      throw new X12BalanceError(
        `the payment does not balance: BPR02 ${paid.toFixed(2)} but the claims paid ${this.#paid.toFixed(2)} less provider adjustments ${plb.toFixed(2)} = ${expected.toFixed(2)} (difference ${paid.minus(expected).toFixed(2)})`,
        se,
      );
    }
    yield { type: 'end', end: { controlNumber: h.controlNumber, adjustments: this.#adjustments, claimCount: this.#claims, contentHash: this.#hash.digest('hex') } };
  }

  #bpr(s: Segment): void {
    if (this.#header.paymentAmount) throw new X12Error('a second BPR in one transaction set', s);
    this.#header.handling = String(s['1'] ?? '');
    this.#header.paymentAmount = money(s, '2', 'BPR02 (total payment)');
    this.#header.creditDebit = String(s['3'] ?? '');
    this.#header.method = String(s['4'] ?? '');
    this.#header.paymentDate = date(s, '16', 'BPR16 (payment date)');
  }

  #dtm(s: Segment): void {
    const when = s['2'] ? date(s, '2', 'DTM02') : undefined;
    if (this.#claim && !this.#service) {
      if (s['1'] === '232') this.#claim.statementFrom = when;
      if (s['1'] === '233') this.#claim.statementTo = when;
    } else if (this.#service && (s['1'] === '472' || s['1'] === '150')) {
      this.#service.serviceDate = when;
    } else if (!this.#claim && s['1'] === '405') {
      this.#header.productionDate = when;
    }
  }

  *#sendHeader(at: Segment): Generator<RemittancePart> {
    if (this.#headerSent) return;
    const h = this.#header;
    if (!h.paymentAmount) throw new X12Error('BPR (financial information) is missing before this segment', at);
    if (!h.traceNumber) throw new X12Error('TRN (reassociation trace number) is missing before this segment', at);
    const payer = h.parties.get('PR');
    const payee = h.parties.get('PE');
    if (!payer) throw new X12Error('N1*PR (payer identification) is missing before this segment', at);
    if (!payee) throw new X12Error('N1*PE (payee identification) is missing before this segment', at);
    this.#headerSent = true;
    const { parties: _parties, ...rest } = h;
    yield { type: 'header', header: { ...(rest as RemittanceHeader), payer, payee } };
  }

  *#flushClaim(): Generator<RemittancePart> {
    const claim = this.#claim;
    this.#claim = undefined;
    this.#service = undefined;
    if (claim) yield { type: 'claim', claim };
  }
}

function line(s: Segment): string {
  const { position: _p, ...rest } = s;
  return `${JSON.stringify(rest)}\n`;
}
