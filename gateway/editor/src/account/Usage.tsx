// Credits: the month's balance (when a budget is set), usage by kind and by day (chart), the job
// ledger (one usage record per ended job, newest first) and a CSV/JSONL export of the month.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useCallback, useEffect, useMemo, useState } from "react";
import { auth, usage } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { stateName } from "../api/jobs";
import { UsageChart } from "../components/Charts";
import { ErrorBanner } from "../components/common";
import { ExportFormat, type GetUsageResponse, type UsageRecord } from "../gen/viarte/account/v1/account_pb";
import type { Limits } from "../gen/viarte/type/v1/limits_pb";
import { formatTime, toDate } from "./format";
import { creditBalance, dailyUsage, describeLimits, kindLabel } from "./usage";

// Records fetched for the chart: the month's first pages (a partner with more jobs exports).
const CHART_RECORDS = 2000;

export function Usage() {
  const [totals, setTotals] = useState<GetUsageResponse | null>(null);
  const [limits, setLimits] = useState<Limits | undefined>();
  const [month, setMonth] = useState<UsageRecord[]>([]);
  const [ledger, setLedger] = useState<UsageRecord[]>([]);
  const [nextPage, setNextPage] = useState("");
  const [error, setError] = useState<UiError | null>(null);
  const [exporting, setExporting] = useState(false);

  const load = useCallback(async () => {
    try {
      const [reply, me] = await Promise.all([usage.getUsage({}), auth.getMe({})]);
      setTotals(reply);
      setLimits(me.user?.limits);
      const first = await usage.listUsageRecords({ pageSize: 20 });
      setLedger(first.records);
      setNextPage(first.nextPageToken);
      const records: UsageRecord[] = [];
      let pageToken = "";
      do {
        const page = await usage.listUsageRecords({ pageSize: 200, pageToken, startTime: reply.startTime, endTime: reply.endTime });
        records.push(...page.records);
        pageToken = page.nextPageToken;
      } while (pageToken && records.length < CHART_RECORDS);
      setMonth(records);
      setError(null);
    } catch (err) {
      setError(toUiError(err));
    }
  }, []);
  useEffect(() => void load(), [load]);

  const days = useMemo(() => {
    const start = toDate(totals?.startTime);
    const end = toDate(totals?.endTime) ?? new Date();
    return start ? dailyUsage(month, start, end) : [];
  }, [month, totals]);

  async function more() {
    try {
      const page = await usage.listUsageRecords({ pageSize: 20, pageToken: nextPage });
      setLedger((l) => [...l, ...page.records]);
      setNextPage(page.nextPageToken);
    } catch (err) {
      setError(toUiError(err));
    }
  }

  async function exportMonth(format: ExportFormat) {
    setExporting(true);
    try {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      for await (const part of usage.exportUsage({ format, startTime: totals?.startTime, endTime: totals?.endTime ?? timestampFromDate(new Date()) })) {
        chunks.push(part.data as Uint8Array<ArrayBuffer>);
      }
      const jsonl = format === ExportFormat.JSONL;
      const url = URL.createObjectURL(new Blob(chunks, { type: jsonl ? "application/jsonl" : "text/csv" }));
      const link = document.createElement("a");
      link.href = url;
      link.download = `usage-${(totals && formatTime(totals.startTime).slice(0, 7)) || "month"}.${jsonl ? "jsonl" : "csv"}`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(toUiError(err));
    } finally {
      setExporting(false);
    }
  }

  const balance = totals ? creditBalance(limits, totals.credits) : null;
  return (
    <section className="card" data-testid="usage" aria-labelledby="usage-title">
      <h2 id="usage-title">Usage and credits</h2>
      <ErrorBanner error={error} onClose={() => setError(null)} />
      {totals && (
        <div className="stats" data-testid="usage-totals" data-credits={totals.credits.toString()} data-jobs={totals.jobs.toString()}>
          <div>
            <span className="stat">{totals.credits.toString()}</span> credits used since {formatTime(totals.startTime).slice(0, 10)}
          </div>
          <div data-testid="credit-balance" data-balance={balance ?? ""}>
            {balance === null ? "No monthly budget" : <><span className="stat">{balance}</span> credits left this month</>}
            <span className="muted small"> ({describeLimits(limits)})</span>
          </div>
          <div>
            <span className="stat">{totals.jobs.toString()}</span> jobs · {totals.videoSeconds.toFixed(1)} s of video · {totals.frames.toString()} frames ·{" "}
            {totals.gpuSeconds.toFixed(1)} GPU-seconds
          </div>
          <ul className="by-kind" data-testid="usage-by-kind">
            {totals.byKind.map((k) => (
              <li key={k.kind} data-kind={kindLabel(k.kind)}>
                {kindLabel(k.kind)}: {k.jobs.toString()} jobs, {k.credits.toString()} credits
              </li>
            ))}
          </ul>
        </div>
      )}
      {days.length > 0 && <UsageChart days={days} />}
      <div className="row">
        <button onClick={() => void exportMonth(ExportFormat.CSV)} disabled={exporting || !totals} data-testid="export-csv">
          Export CSV
        </button>
        <button onClick={() => void exportMonth(ExportFormat.JSONL)} disabled={exporting || !totals}>
          Export JSONL
        </button>
        <button className="link" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      <h3>Job ledger</h3>
      <table className="table" data-testid="usage-ledger">
        <thead>
          <tr>
            <th scope="col">Ended</th>
            <th scope="col">Kind</th>
            <th scope="col">Model</th>
            <th scope="col">State</th>
            <th scope="col">Credits</th>
            <th scope="col">Job</th>
          </tr>
        </thead>
        <tbody>
          {ledger.map((r) => (
            <tr key={r.jobId} data-testid="usage-record" data-job-id={r.jobId} data-credits={r.credits.toString()}>
              <td className="small">{formatTime(r.endTime)}</td>
              <td>{kindLabel(r.kind)}</td>
              <td className="small">{r.model}</td>
              <td>{stateName(r.state)}</td>
              <td>{r.credits.toString()}</td>
              <td>
                <code className="small">{r.jobId.slice(0, 8)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {ledger.length === 0 && <p className="muted small">No jobs ended this month yet.</p>}
      {nextPage && (
        <button className="link" onClick={() => void more()}>
          Older jobs
        </button>
      )}
    </section>
  );
}
