import { h } from './vendor/preact.js';
import { useCallback, useEffect, useRef, useState } from './vendor/hooks.js';
import htm from './vendor/htm.js';
import uPlot from './vendor/uplot.js';

export const html = htm.bind(h);

/** The hash route: `#/inbound/12?status=failed` → { parts: ['inbound', '12'], query: {status: 'failed'} }. */
export function parseRoute(hash = location.hash) {
  const [path, q = ''] = hash.replace(/^#\/?/, '').split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: Object.fromEntries(new URLSearchParams(q)) };
}

export function href(path, query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();
  return `#/${path}${q ? `?${q}` : ''}`;
}

export function go(path, query) {
  location.hash = href(path, query);
}

/** Runs `load` when `deps` change; `reload` runs it again. */
export function useLoad(load, deps) {
  const [state, setState] = useState({ loading: true });
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (error) => mine === seq.current && setState({ error, loading: false }),
    );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

export function Loading({ state, children }) {
  if (state.error) return html`<p class="error" role="alert">${state.error.message}</p>`;
  if (state.data === undefined) return html`<p aria-busy="true">Loading…</p>`;
  return children(state.data);
}

/** A table with a caption and column headers a screen reader announces. */
export function Table({ caption, columns, rows, empty = 'Nothing here.', rowKey = (r) => r.id }) {
  return html`<table>
    <caption>${caption}</caption>
    <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.num ? 'num' : ''}>${c.label}</th>`)}</tr></thead>
    <tbody>
      ${rows.length === 0
        ? html`<tr><td colspan=${columns.length} class="empty">${empty}</td></tr>`
        : rows.map((r) => html`<tr key=${rowKey(r)}>${columns.map((c) => html`<td class=${c.num ? 'num' : ''}>${c.render ? c.render(r) : r[c.key]}</td>`)}</tr>`)}
    </tbody>
  </table>`;
}

export function Pager({ label, hasNext, onNext, onFirst, atFirst }) {
  return html`<nav class="pager" aria-label=${`${label} pages`}>
    <button type="button" onClick=${onFirst} disabled=${atFirst}>Newest</button>
    <button type="button" onClick=${onNext} disabled=${!hasNext}>Older</button>
  </nav>`;
}

/** What an action said: a polite status, or an alert when it failed. */
export function Outcome({ outcome }) {
  if (!outcome) return html`<p class="status" role="status"></p>`;
  return outcome.error
    ? html`<p class="error" role="alert">${outcome.error}</p>`
    : html`<p class="status ok" role="status">${outcome.message}</p>`;
}

/** Runs an action, keeping its outcome for <Outcome>. */
export function useAction() {
  const [outcome, setOutcome] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async (fn, message) => {
    setBusy(true);
    try {
      const result = await fn();
      setOutcome({ message: typeof message === 'function' ? message(result) : message });
      return result;
    } catch (err) {
      setOutcome({ error: err.message });
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { outcome, busy, run };
}

export function Badge({ value }) {
  return html`<span class=${`badge badge-${String(value).replace(/[^a-z-]/gi, '')}`}>${value}</span>`;
}

export const time = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) : '—');

export function age(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/** Money for display: decimal text as the server gives it, in cents as BigInt for sums (no floats). */
export function cents(value) {
  if (value === undefined || value === null || value === '') return 0n;
  const s = String(value);
  const neg = s.startsWith('-');
  const [whole, frac = ''] = s.replace(/^-/, '').split('.');
  const c = BigInt(whole || '0') * 100n + BigInt((frac + '00').slice(0, 2));
  return neg ? -c : c;
}

const formats = new Map();

/**
 * An amount with its currency, as the browser's locale writes it with the ISO code ("AUD 25.50", "JPY 1,200"; a symbol such as $ could be any of several dollars), by
 * Intl.NumberFormat given the decimal text itself (never a float: format() takes a string as an
 * exact decimal). `value`: the server's decimal text, a FHIR Money value, or cents as BigInt.
 * Without a currency (an API that states none) the figure is shown alone, to two decimals.
 */
export function money(value, currency) {
  const text = typeof value === 'bigint' ? centsText(value) : value === undefined || value === null || value === '' ? '0' : String(value);
  const key = currency ?? '';
  if (!formats.has(key)) {
    formats.set(key, currency
      ? new Intl.NumberFormat(undefined, { style: 'currency', currency, currencyDisplay: 'code' })
      : new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  }
  return formats.get(key).format(text);
}

/** A FHIR Money ({value, currency}) for display. */
export const fhirMoney = (m, fallbackCurrency) => money(m?.value ?? 0, m?.currency ?? fallbackCurrency);

function centsText(c) {
  const neg = c < 0n;
  const a = neg ? -c : c;
  return `${neg ? '-' : ''}${a / 100n}.${String(a % 100n).padStart(2, '0')}`;
}

/**
 * A uPlot line chart over hours, with a text summary for screen readers (the canvas says nothing).
 * series: [{ label, values, stroke, scale? }]
 */
export function Chart({ title, hours, series, summary, height = 180 }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current) return undefined;
    const xs = hours.map((iso) => Math.floor(new Date(iso).getTime() / 1000));
    const scales = { x: { time: true }, '%': { range: [0, 100] } };
    const axes = [{}, { scale: series[0].scale ?? 'y', label: series[0].scale }];
    for (const s of series) if (s.scale && s.scale !== series[0].scale) axes.push({ scale: s.scale, side: 1, grid: { show: false }, label: s.scale });
    const plot = new uPlot(
      {
        width: Math.max(320, box.current.clientWidth || 560),
        height,
        scales,
        axes,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, scale: s.scale ?? 'y', points: { show: true } }))],
      },
      [xs, ...series.map((s) => s.values)],
      box.current,
    );
    return () => plot.destroy();
  }, [JSON.stringify(hours), JSON.stringify(series.map((s) => s.values))]);
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}: ${summary}`}></div>
  </figure>`;
}

export function Json({ value, label }) {
  return html`<pre class="json" tabindex="0" aria-label=${label}>${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}</pre>`;
}

/** A FHIR reference as a link into the console where it has a page. */
export function RefLink({ reference, label = reference }) {
  if (!reference) return '—';
  const [type, id] = reference.split('/');
  if (type === 'Claim') return html`<a href=${href(`money/claim/${id}`)}>${label}</a>`;
  if (type === 'Patient') return html`<a href=${href(`money/patient/${id}`)}>${label}</a>`;
  return html`<a href=${href(`resource/${type}/${id}`)}>${label}</a>`;
}
