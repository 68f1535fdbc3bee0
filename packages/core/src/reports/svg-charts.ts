/**
 * The HTML report's charts as inline SVG strings, drawn from numbers alone (no script, no fonts, no
 * network): stacked columns over time, and horizontal stacked bars. Every label is HTML-escaped here.
 */

/** Text for HTML or SVG content and attribute values: every character that could end either is escaped. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

export interface Segment {
  label: string;
  value: number;
  color: string;
}

export interface LegendEntry {
  label: string;
  color: string;
}

const FONT = 'font-size="11" fill="#4b5563"';
const round = (n: number) => Math.round(n * 10) / 10;

/** A round step for about `ticks` gridlines up to `max`: 1, 2 or 5 times a power of ten. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return Math.max(1, step ?? 10 * power);
}

function rect(x: number, y: number, width: number, height: number, color: string, title: string) {
  return `<rect x="${round(x)}" y="${round(y)}" width="${round(width)}" height="${round(height)}" fill="${escapeHtml(color)}"><title>${escapeHtml(title)}</title></rect>`;
}

export function legend(entries: readonly LegendEntry[]): string {
  const items = entries.map(
    (e) =>
      `<li><span class="swatch" style="background:${escapeHtml(e.color)}"></span>${escapeHtml(e.label)}</li>`,
  );
  return `<ul class="legend">${items.join("")}</ul>`;
}

/**
 * Columns per category (a period), each stacked from its segments, on a y axis of round steps.
 * `format` writes an axis or tooltip value.
 */
export function stackedColumns(
  name: string,
  columns: readonly { category: string; segments: readonly Segment[] }[],
  format: (n: number) => string,
  label: (category: string) => string,
): string {
  const [width, height, left, bottom, top] = [760, 240, 56, 28, 8];
  const totals = columns.map((c) => c.segments.reduce((sum, s) => sum + s.value, 0));
  const step = niceStep(Math.max(...totals, 1), 4);
  const max = Math.ceil(Math.max(...totals, 1) / step) * step;
  const plotHeight = height - bottom - top;
  const y = (value: number) => top + plotHeight - (value / max) * plotHeight;
  const slot = (width - left) / Math.max(columns.length, 1);
  // A column is at most 48 units wide, so a short report does not draw slabs.
  const barWidth = Math.max(1, Math.min(slot * 0.7, 48));
  const marks: string[] = [];
  for (let v = 0; v <= max; v += step) {
    marks.push(
      `<line x1="${left}" x2="${width}" y1="${round(y(v))}" y2="${round(y(v))}" stroke="#e5e7eb"/>`,
      `<text x="${left - 6}" y="${round(y(v)) + 4}" text-anchor="end" ${FONT}>${escapeHtml(format(v))}</text>`,
    );
  }
  // About a dozen category labels at most, whatever the number of columns.
  const every = Math.ceil(columns.length / 12);
  columns.forEach((column, i) => {
    const x = left + i * slot + (slot - barWidth) / 2;
    let base = 0;
    for (const s of column.segments) {
      if (s.value <= 0) continue;
      const title = `${label(column.category)} ${s.label}: ${format(s.value)}`;
      marks.push(rect(x, y(base + s.value), barWidth, y(base) - y(base + s.value), s.color, title));
      base += s.value;
    }
    if (i % every === 0) {
      marks.push(
        `<text x="${round(x + barWidth / 2)}" y="${height - 8}" text-anchor="middle" ${FONT}>${escapeHtml(label(column.category))}</text>`,
      );
    }
  });
  return `<svg data-chart="${escapeHtml(name)}" viewBox="0 0 ${width} ${height}" width="100%" role="img">${marks.join("")}</svg>`;
}

/** One horizontal bar per entry, stacked from its segments, its total written after it. */
export function stackedBars(
  name: string,
  bars: readonly { label: string; segments: readonly Segment[] }[],
  format: (n: number) => string,
): string {
  const [width, row, labelWidth, valueWidth] = [560, 30, 190, 80];
  const totals = bars.map((b) => b.segments.reduce((sum, s) => sum + s.value, 0));
  const max = Math.max(...totals, Number.MIN_VALUE);
  const plot = width - labelWidth - valueWidth;
  const marks: string[] = [];
  bars.forEach((bar, i) => {
    const top = i * row + 4;
    marks.push(
      `<text x="${labelWidth - 8}" y="${top + 15}" text-anchor="end" ${FONT}>${escapeHtml(bar.label)}</text>`,
    );
    let x = labelWidth;
    for (const s of bar.segments) {
      if (s.value <= 0) continue;
      const w = Math.max(1, (s.value / max) * plot);
      marks.push(rect(x, top, w, row - 10, s.color, `${bar.label}, ${s.label}: ${format(s.value)}`));
      x += w;
    }
    marks.push(`<text x="${x + 6}" y="${top + 15}" ${FONT}>${escapeHtml(format(totals[i] ?? 0))}</text>`);
  });
  const height = bars.length * row + 4;
  return `<svg data-chart="${escapeHtml(name)}" viewBox="0 0 ${width} ${height}" width="100%" role="img">${marks.join("")}</svg>`;
}
