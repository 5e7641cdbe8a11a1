// One uPlot chart over time, updated in place as data arrives (uPlot redraws a canvas; the
// DOM holds only data-* attributes that say what was drawn, for the browser test and for
// anyone inspecting the page). Anomalies are drawn as red vertical bands, anomaly episodes as a
// lighter band from their start to their end.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { AlignedData } from '../series-store.js';

export const CHART_COLORS = ['#4ea1ff', '#3dd6a0', '#f6c344', '#c58cff', '#ff8f6b', '#5ad8e6', '#f77fbe', '#a3d977'] as const;
const AXIS = { stroke: '#8a94a6', grid: { stroke: 'rgba(138,148,166,0.12)', width: 1 }, ticks: { stroke: 'rgba(138,148,166,0.25)', width: 1 }, font: '11px system-ui, sans-serif' };
const ANOMALY_FILL = 'rgba(255, 77, 79, 0.22)';
const ANOMALY_LINE = 'rgba(255, 77, 79, 0.9)';
const EPISODE_FILL = 'rgba(255, 77, 79, 0.12)';
/** Half the width of an anomaly band, CSS px. */
const BAND_HALF_WIDTH_PX = 4;

export interface TimeChartProps {
  testId: string;
  title: string;
  /** Series after x; uPlot's own series options. */
  series: uPlot.Series[];
  data: AlignedData;
  /** Anomaly times, epoch ms, drawn as bands. */
  anomaliesMs: readonly number[];
  /** Anomaly episodes `[fromMs, toMs]`, drawn as bands over their whole span. */
  spansMs?: readonly (readonly [number, number])[] | undefined;
  /** The time span shown, epoch ms, the same for every chart of a view; default the data's. */
  rangeMs?: readonly [number, number] | undefined;
  heightPx?: number;
}

/** Draws a band per anomaly and per episode inside the x range and records how many on the chart's root. */
function anomalyBands(anomalies: { current: readonly number[] }, spans: { current: readonly (readonly [number, number])[] | undefined }): uPlot.Plugin {
  return {
    hooks: {
      draw: (u) => {
        const { ctx } = u;
        const { left, top, width, height } = u.bbox;
        const dpr = window.devicePixelRatio || 1;
        let drawn = 0;
        let drawnSpans = 0;
        ctx.save();
        ctx.fillStyle = EPISODE_FILL;
        for (const [fromMs, toMs] of spans.current ?? []) {
          const from = Math.max(left, u.valToPos(fromMs / 1000, 'x', true));
          const to = Math.min(left + width, u.valToPos(toMs / 1000, 'x', true));
          if (!(to >= from)) continue;
          ctx.fillRect(from, top, Math.max(to - from, dpr), height);
          drawnSpans++;
        }
        for (const ms of anomalies.current) {
          const x = u.valToPos(ms / 1000, 'x', true);
          if (!(x >= left - 1 && x <= left + width + 1)) continue;
          ctx.fillStyle = ANOMALY_FILL;
          ctx.fillRect(x - BAND_HALF_WIDTH_PX * dpr, top, 2 * BAND_HALF_WIDTH_PX * dpr, height);
          ctx.fillStyle = ANOMALY_LINE;
          ctx.fillRect(x - dpr / 2, top, dpr, height);
          drawn++;
        }
        ctx.restore();
        u.root.dataset['markers'] = String(drawn);
        u.root.dataset['spans'] = String(drawnSpans);
      },
    },
  };
}

/** A y range with some air around the data; a flat line sits in the middle instead of on 0. */
function paddedRange(_u: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax {
  if (min === null || max === null) return [0, 1];
  const span = max - min;
  const pad = span > 0 ? span * 0.1 : Math.max(Math.abs(max) * 0.05, 0.5);
  return [min - pad, max + pad];
}

/**
 * A uPlot chart whose series are fixed for its life; `data` changes go through setData, so a
 * redraw costs no DOM work. `heightPx` default 160.
 */
export function TimeChart({ testId, title, series, data, anomaliesMs, spansMs, rangeMs, heightPx = 160 }: TimeChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const anomalies = useRef(anomaliesMs);
  anomalies.current = anomaliesMs;
  const range = useRef(rangeMs);
  range.current = rangeMs;
  const spans = useRef(spansMs);
  spans.current = spansMs;

  useEffect(() => {
    const el = host.current;
    if (el === null) return;
    const u = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: heightPx,
        scales: {
          x: { time: true, range: (_u, min, max) => (range.current === undefined ? [min, max] : [range.current[0] / 1000, range.current[1] / 1000]) },
          y: { range: paddedRange },
        },
        cursor: { drag: { x: false, y: false, setScale: false } },
        legend: { show: true, live: true },
        axes: [AXIS, { ...AXIS, size: 56 }],
        series: [{}, ...series],
        plugins: [anomalyBands(anomalies, spans)],
      },
      data,
      el,
    );
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: heightPx }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = undefined;
    };
    // The series are fixed for the chart's life; data updates go through setData below.
  }, [heightPx]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  // Episodes change without new data (a closed episode fetched again): draw them now.
  useEffect(() => {
    plot.current?.redraw();
  }, [spansMs]);

  return (
    <figure class="chart" data-testid={testId} data-points={data[0].length}>
      <figcaption>{title}</figcaption>
      <div ref={host} class="chart-canvas" />
    </figure>
  );
}
