/**
 * The HTML report's charts as inline SVG strings, drawn from numbers alone (no script, no fonts, no
 * network): stacked columns and lines over time, and horizontal stacked bars. Every label is HTML-escaped here.
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

export interface Line {
  label: string;
  color: string;
  /** One value per category; null leaves a gap. */
  values: readonly (number | null)[];
  /** Drawn dashed (a p99 beside its p50). */
  dashed?: boolean;
}

/** Lines over categories (periods), each point a dot with its value as a tooltip, on a y axis of round steps. */
export function lineChart(
  name: string,
  categories: readonly string[],
  lines: readonly Line[],
  format: (n: number) => string,
  label: (category: string) => string,
): string {
  const [width, height, left, bottom, top] = [760, 200, 56, 28, 8];
  const values = lines.flatMap((l) => l.values.filter((v): v is number => v !== null));
  const step = niceStep(Math.max(...values, 1), 4);
  const max = Math.ceil(Math.max(...values, 1) / step) * step;
  const plotHeight = height - bottom - top;
  const y = (value: number) => top + plotHeight - (value / max) * plotHeight;
  const slot = (width - left) / Math.max(categories.length, 1);
  const x = (i: number) => left + i * slot + slot / 2;
  const marks: string[] = [];
  for (let v = 0; v <= max; v += step) {
    marks.push(
      `<line x1="${left}" x2="${width}" y1="${round(y(v))}" y2="${round(y(v))}" stroke="#e5e7eb"/>`,
      `<text x="${left - 6}" y="${round(y(v)) + 4}" text-anchor="end" ${FONT}>${escapeHtml(format(v))}</text>`,
    );
  }
  for (const line of lines) {
    const color = escapeHtml(line.color);
    // A path segment per run of periods with data: a period without any is a gap, not a zero.
    let path = "";
    line.values.forEach((v, i) => {
      if (v === null) return;
      path += `${line.values[i - 1] === null || i === 0 ? "M" : "L"}${round(x(i))} ${round(y(v))}`;
      marks.push(
        `<circle cx="${round(x(i))}" cy="${round(y(v))}" r="2.5" fill="${color}"><title>${escapeHtml(`${label(categories[i] ?? "")} ${line.label}: ${format(v)}`)}</title></circle>`,
      );
    });
    if (path) {
      marks.push(
        `<path d="${path}" fill="none" stroke="${color}" stroke-width="1.5"${line.dashed ? ' stroke-dasharray="4 3"' : ""}/>`,
      );
    }
  }
  const every = Math.ceil(categories.length / 12);
  categories.forEach((category, i) => {
    if (i % every === 0) {
      marks.push(
        `<text x="${round(x(i))}" y="${height - 8}" text-anchor="middle" ${FONT}>${escapeHtml(label(category))}</text>`,
      );
    }
  });
  return `<svg data-chart="${escapeHtml(name)}" viewBox="0 0 ${width} ${height}" width="100%" role="img">${marks.join("")}</svg>`;
}
