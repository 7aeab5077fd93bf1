// Small SVG charts (no chart library: the Account and Training pages stay light). Each chart is
// one labelled image for assistive technology, with its numbers in a caption or data attributes.
import { lossPath, type LossPoint } from "../training/progress";
import type { DayUsage } from "../account/usage";

const KIND_COLOURS: Record<string, string> = {
  generation: "#6c8cff",
  "face swap": "#f0a35e",
  upscale: "#55c2a8",
  render: "#c77dff",
  training: "#e6d45a",
  other: "#8a93a0",
};

export function UsageChart({ days }: { days: DayUsage[] }) {
  const width = 640;
  const height = 160;
  const max = Math.max(1, ...days.map((d) => d.credits));
  const slot = width / Math.max(1, days.length);
  const total = days.reduce((sum, d) => sum + d.credits, 0);
  const kinds = [...new Set(days.flatMap((d) => Object.keys(d.byKind)))];
  return (
    <figure className="chart" data-testid="usage-chart" data-days={days.length} data-total={total}>
      <svg viewBox={`0 0 ${width} ${height + 18}`} role="img" aria-label={`Credits per day: ${total} credits over ${days.length} days`}>
        {days.map((d, i) => {
          let y = height;
          return (
            <g key={d.day} data-day={d.day} data-credits={d.credits}>
              <title>{`${d.day}: ${d.credits} credits, ${d.jobs} jobs`}</title>
              {Object.entries(d.byKind).map(([kind, credits]) => {
                const h = (credits / max) * height;
                y -= h;
                return <rect key={kind} x={i * slot + 1} y={y} width={Math.max(1, slot - 2)} height={h} fill={KIND_COLOURS[kind] ?? KIND_COLOURS.other} />;
              })}
              {(i === 0 || i === days.length - 1 || days.length <= 10) && (
                <text x={i * slot + slot / 2} y={height + 14} textAnchor="middle" className="chart-label">
                  {d.day.slice(5)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption className="small">
        Credits per day (UTC), at most {max} a day.{" "}
        {kinds.map((kind) => (
          <span key={kind} className="legend">
            <span className="swatch" style={{ background: KIND_COLOURS[kind] ?? KIND_COLOURS.other }} aria-hidden="true" /> {kind}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

export function LossChart({ points, totalSteps }: { points: LossPoint[]; totalSteps: number }) {
  const width = 480;
  const height = 160;
  const { d, min, max } = lossPath(points, width, height, totalSteps);
  const last = points.at(-1);
  return (
    <figure className="chart" data-testid="loss-chart" data-points={points.length} data-last-step={last?.step ?? 0}>
      <svg viewBox={`-4 -4 ${width + 8} ${height + 8}`} role="img" aria-label={last ? `Training loss over ${points.length} steps, last ${last.loss.toFixed(4)}` : "Training loss: no steps yet"}>
        <rect x={0} y={0} width={width} height={height} className="chart-frame" />
        {d && <path d={d} fill="none" stroke="#6c8cff" strokeWidth={2} data-testid="loss-path" />}
      </svg>
      <figcaption className="small">
        {last ? `Loss ${max.toFixed(4)} → ${min.toFixed(4)} (min); step ${last.step}${totalSteps ? ` of ${totalSteps}` : ""}: ${last.loss.toFixed(4)}` : "Waiting for the first step…"}
      </figcaption>
    </figure>
  );
}
