/**
 * The two charts of the report, hand-written SVG with no dependencies:
 * µs/op against the number of keys, both axes logarithmic, one line per
 * subject of the original library's tables, its published figures dashed.
 */
import { type BenchRun, findCell } from "../BenchRun.ts"
import { runsSubject } from "../cli.ts"
import { seedFigureAt } from "../seedFigures.ts"
import { count, micros, resultOf } from "./format.ts"

interface Series {
  readonly label: string
  readonly points: ReadonlyArray<{ readonly x: number; readonly y: number }>
  readonly dashed: boolean
  /** kvlog's own lines are drawn thicker. */
  readonly emphasised: boolean
}

const palette = ["#d62728", "#ff7f0e", "#8c564b", "#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#e377c2", "#7f7f7f"]

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** 1, 2, 5 × powers of ten covering [low, high]. */
const niceLogTicks = (low: number, high: number): Array<number> => {
  const ticks: Array<number> = []
  for (let exponent = Math.floor(Math.log10(low)); exponent <= Math.ceil(Math.log10(high)); exponent++) {
    for (const mantissa of [1, 2, 5]) {
      const tick = mantissa * 10 ** exponent
      if (tick >= low * 0.999 && tick <= high * 1.001) ticks.push(tick)
    }
  }
  return ticks
}

const lineChart = (title: string, yLabel: string, series: ReadonlyArray<Series>, xs: ReadonlyArray<number>): string => {
  const width = 920
  const height = 460
  const plot = { left: 70, top: 40, right: 560, bottom: 400 }
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y > 0)
  const yLow = 10 ** Math.floor(Math.log10(Math.min(...ys, 1)))
  const yHigh = 10 ** Math.ceil(Math.log10(Math.max(...ys, 1)))
  const xLow = Math.min(...xs)
  const xHigh = Math.max(...xs)
  const xSpan = Math.log10(xHigh) - Math.log10(xLow) || 1
  const px = (x: number) => plot.left + ((Math.log10(x) - Math.log10(xLow)) / xSpan) * (plot.right - plot.left)
  const py = (y: number) =>
    plot.bottom - ((Math.log10(y) - Math.log10(yLow)) / (Math.log10(yHigh) - Math.log10(yLow))) * (plot.bottom - plot.top)
  const out: Array<string> = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${plot.left}" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`
  )
  for (const tick of niceLogTicks(yLow, yHigh)) {
    const y = py(tick).toFixed(1)
    out.push(
      `<line x1="${plot.left}" y1="${y}" x2="${plot.right}" y2="${y}" stroke="#e0e0e0"/>`,
      `<text x="${plot.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${micros(tick)}</text>`
    )
  }
  for (const x of xs) {
    const left = px(x).toFixed(1)
    out.push(
      `<line x1="${left}" y1="${plot.top}" x2="${left}" y2="${plot.bottom}" stroke="#e0e0e0"/>`,
      `<text x="${left}" y="${plot.bottom + 18}" text-anchor="middle">${count(x)}</text>`
    )
  }
  out.push(
    `<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#444"/>`,
    `<text x="${(plot.left + plot.right) / 2}" y="${plot.bottom + 38}" text-anchor="middle">keys in the store (log scale)</text>`,
    `<text transform="translate(18 ${(plot.top + plot.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`
  )
  series.forEach((s, index) => {
    const color = palette[index % palette.length]!
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : ""
    const stroke = s.emphasised ? 3 : 1.5
    const points = s.points.filter((p) => p.y > 0)
    if (points.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="${stroke}"${dash} points="${
          points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ")
        }"/>`
      )
    }
    for (const p of points) {
      out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="${s.emphasised ? 4 : 3}" fill="${color}"/>`)
    }
    const legendY = plot.top + 8 + index * 22
    out.push(
      `<line x1="${plot.right + 20}" y1="${legendY}" x2="${plot.right + 48}" y2="${legendY}" stroke="${color}" stroke-width="${stroke}"${dash}/>`,
      `<text x="${plot.right + 54}" y="${legendY}" dominant-baseline="middle">${escapeXml(s.label)}</text>`
    )
  })
  out.push(`</svg>`)
  return `${out.join("\n")}\n`
}

/** The write or read chart of the original library's tables (`key${i}` → `value${i}`). */
export const renderChart = (run: BenchRun, which: "write" | "read"): string => {
  const sizes = run.options.sizes
  const series: Array<Series> = run.catalog.tables
    .filter((subject) => runsSubject(run.options, "tables", subject.id))
    .map((subject) => ({
      label: subject.label,
      dashed: false,
      emphasised: subject.role === "kvlog",
      points: sizes.flatMap((keys) => {
        const result = resultOf(findCell(run, "tables", subject.id, keys), "tables")
        return result === undefined ? [] : [{ x: keys, y: which === "write" ? result.writeMicros : result.readMicros }]
      })
    }))
  series.push({
    label: "original (published, other machine)",
    dashed: true,
    emphasised: false,
    points: sizes.flatMap((keys) => {
      const figure = seedFigureAt(keys)
      return figure === undefined ? [] : [{ x: keys, y: which === "write" ? figure.writeMicros : figure.readMicros }]
    })
  })
  const title = which === "write" ? "Writes: µs per put (median), lower is better" : "Reads: µs per get, random order (median), lower is better"
  return lineChart(title, `µs per ${which === "write" ? "put" : "get"} (log scale)`, series, sizes)
}
