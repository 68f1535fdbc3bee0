/** Human output: aligned tables and short renderings of values. Scripts use --json instead. */

/** Columns padded to their widest cell; an empty list says so instead of printing a bare header. */
export function table(headers: string[], rows: string[][], empty = "(none)"): string {
  if (rows.length === 0) return empty;
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** A value in a table cell: lists joined, absent as a dash, objects as compact JSON. */
export function cell(value: unknown): string {
  if (value === undefined || value === null) return "-";
  if (Array.isArray(value)) return value.length === 0 ? "-" : value.map(cell).join(",");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** `2026-11-28T04:29:05.423Z` → `2026-11-28 04:29:05Z`. */
export function time(iso: string | null | undefined): string {
  if (!iso) return "-";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** `24h`, `90m`, `45s`, `7d` or plain seconds → seconds; undefined when it is none of those. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) return undefined;
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as "" | "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}

/** Seconds as the largest whole unit: 86400 → `24h`, 90 → `90s`. */
export function duration(seconds: number): string {
  if (seconds === 0) return "0s";
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
