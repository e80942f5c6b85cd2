import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface BarGroup {
  readonly label: string;
  readonly bars: ReadonlyArray<{ readonly name: string; readonly value: number }>;
}

const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** Writes a grouped bar chart as SVG to bench/results/<file> and returns its path. */
export function writeBarChart(
  file: string,
  title: string,
  unit: string,
  groups: readonly BarGroup[],
  reference?: number,
): string {
  const names = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.name)))];
  const max = Math.max(reference ?? 0, ...groups.flatMap((g) => g.bars.map((b) => b.value))) * 1.15 || 1;
  const W = 900;
  const H = 420;
  const left = 70;
  const bottom = 80;
  const top = 50;
  const plotH = H - top - bottom;
  const groupW = (W - left - 20) / groups.length;
  const barW = Math.min(40, (groupW - 20) / names.length);
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16">${esc(title)}</text>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${W - 10}" y2="${top + plotH}" stroke="#333"/>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (max / 5) * i;
    parts.push(
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 100 ? v.toFixed(0) : v.toFixed(2)}</text>`,
    );
    parts.push(`<line x1="${left}" y1="${y(v)}" x2="${W - 10}" y2="${y(v)}" stroke="#eee"/>`);
  }
  parts.push(
    `<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">${esc(unit)}</text>`,
  );
  if (reference !== undefined) {
    parts.push(
      `<line x1="${left}" y1="${y(reference)}" x2="${W - 10}" y2="${y(reference)}" stroke="#c00" stroke-dasharray="6 4"/>`,
    );
    parts.push(`<text x="${W - 12}" y="${y(reference) - 4}" text-anchor="end" fill="#c00">target ${reference}</text>`);
  }
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + (groupW - barW * names.length) / 2;
    g.bars.forEach((b) => {
      const ni = names.indexOf(b.name);
      const x = x0 + ni * barW;
      parts.push(
        `<rect x="${x}" y="${y(b.value)}" width="${barW - 2}" height="${top + plotH - y(b.value)}" fill="${COLORS[ni % COLORS.length]}"/>`,
      );
      parts.push(
        `<text x="${x + barW / 2}" y="${y(b.value) - 3}" text-anchor="middle" font-size="10">${b.value >= 100 ? b.value.toFixed(0) : b.value.toFixed(2)}</text>`,
      );
    });
    // Labels may hold line breaks ("\n"): one line each, so long group names do not overlap.
    g.label.split("\n").forEach((line, li) => {
      parts.push(
        `<text x="${left + gi * groupW + groupW / 2}" y="${top + plotH + 16 + li * 13}" text-anchor="middle" font-size="11">${esc(line)}</text>`,
      );
    });
  });
  names.forEach((n, i) => {
    parts.push(
      `<rect x="${left + i * 170}" y="${H - 24}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`,
    );
    parts.push(`<text x="${left + i * 170 + 16}" y="${H - 14}">${esc(n)}</text>`);
  });
  parts.push("</svg>");
  return writeResult(file, parts);
}

/** Writes an SVG's parts to bench/results/<file> and returns its path. */
function writeResult(file: string, parts: readonly string[]): string {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../results");
  mkdirSync(dir, { recursive: true });
  const out = path.join(dir, file);
  writeFileSync(out, parts.join("\n"));
  return out;
}

/** Progress to stderr, so stdout's last line stays the JSON result. */
export function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

/** Writes a line chart (e.g. a latency CDF or lag over time) as SVG to bench/results/<file>. */
export function writeLineChart(
  file: string,
  title: string,
  axes: { readonly x: string; readonly y: string; readonly logX?: boolean },
  series: readonly Series[],
  markers: ReadonlyArray<{ readonly x: number; readonly label: string }> = [],
): string {
  const W = 900;
  const H = 460;
  const left = 70;
  const right = 20;
  const top = 50;
  const bottom = 80;
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const fx = (v: number) => (axes.logX ? Math.log10(Math.max(v, 0.01)) : v);
  const xMin = Math.min(...xs.map(fx), ...markers.map((m) => fx(m.x)));
  const xMax = Math.max(...xs.map(fx), ...markers.map((m) => fx(m.x))) || 1;
  const yMax = Math.max(...ys) * 1.05 || 1;
  const X = (v: number) => left + ((fx(v) - xMin) / (xMax - xMin || 1)) * (W - left - right);
  const Y = (v: number) => top + (H - top - bottom) - (v / yMax) * (H - top - bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16">${esc(title)}</text>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="#333"/>`,
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="#333"/>`,
    `<text x="${W / 2}" y="${H - bottom + 36}" text-anchor="middle">${esc(axes.x)}</text>`,
    `<text x="16" y="${top + (H - top - bottom) / 2}" transform="rotate(-90 16 ${top + (H - top - bottom) / 2})" text-anchor="middle">${esc(axes.y)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const yv = (yMax / 5) * i;
    parts.push(
      `<text x="${left - 6}" y="${Y(yv) + 4}" text-anchor="end">${yv >= 10 ? yv.toFixed(0) : yv.toFixed(2)}</text>`,
    );
    parts.push(`<line x1="${left}" y1="${Y(yv)}" x2="${W - right}" y2="${Y(yv)}" stroke="#eee"/>`);
    const xv = xMin + ((xMax - xMin) / 5) * i;
    const label = axes.logX ? 10 ** xv : xv;
    parts.push(
      `<text x="${left + ((W - left - right) / 5) * i}" y="${H - bottom + 16}" text-anchor="middle">${label >= 10 ? label.toFixed(0) : label.toFixed(2)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j === 0 ? "M" : "L"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2"/>`);
    parts.push(
      `<rect x="${left + i * 220}" y="${H - 28}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`,
    );
    parts.push(`<text x="${left + i * 220 + 16}" y="${H - 18}">${esc(s.name)}</text>`);
  });
  for (const m of markers) {
    parts.push(
      `<line x1="${X(m.x)}" y1="${top}" x2="${X(m.x)}" y2="${H - bottom}" stroke="#c00" stroke-dasharray="6 4"/>`,
    );
    // Near the right edge the label goes to the left of its line.
    const leftOfLine = X(m.x) > W - right - 160;
    parts.push(
      `<text x="${X(m.x) + (leftOfLine ? -4 : 4)}" y="${top + 12 + markers.indexOf(m) * 14}" fill="#c00" text-anchor="${leftOfLine ? "end" : "start"}">${esc(m.label)}</text>`,
    );
  }
  parts.push("</svg>");
  return writeResult(file, parts);
}

/** The q-quantile (0..1) of sorted numbers. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
