// Timeline playback through Media Source Extensions (issue 19).
//
// The render service cuts the timeline into draft segments (a few seconds, 360p, H.264 + AAC,
// each a complete fragmented MP4 whose timestamps start at 0) rendered with the export's own
// filter graph and cached by content. The player appends each one at its place on the timeline
// (SourceBuffer "segments" mode, timestampOffset = the segment's start) and keeps a few seconds
// ahead of the playhead; an edit makes the editor stop and start again, and the service then
// renders only the segments the edit touched.

export interface DraftSegment {
  media: Uint8Array;
  mimeType: string;
  startSeconds: number;
  durationSeconds: number;
  timelineDurationSeconds: number;
  cached: boolean;
  key: string;
}

export type FetchSegment = (atSeconds: number, signal: AbortSignal) => Promise<DraftSegment>;

export interface LoopRange {
  start: number;
  end: number;
}

export interface PlaybackLog {
  // Milliseconds from play() to the first segment appended, and each segment as it came.
  firstSegmentMs: number | null;
  segments: { start: number; duration: number; cached: boolean; ms: number }[];
}

// Seconds of media kept ready ahead of the playhead, and kept behind it (older is removed).
const AHEAD_SECONDS = 4;
const BEHIND_SECONDS = 20;

function once(target: EventTarget, name: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      target.removeEventListener(name, done);
      signal.removeEventListener("abort", stop);
      resolve();
    };
    const stop = () => {
      target.removeEventListener(name, done);
      reject(new DOMException("stopped", "AbortError"));
    };
    target.addEventListener(name, done);
    signal.addEventListener("abort", stop, { once: true });
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      window.clearTimeout(timer);
      reject(new DOMException("stopped", "AbortError"));
    }, { once: true });
  });
}

export function isAbort(err: unknown): boolean {
  return (err instanceof DOMException && err.name === "AbortError") || (err instanceof Error && /abort|cancel/i.test(err.message));
}

export class DraftPlayer {
  private controller: AbortController | null = null;
  private objectUrl: string | null = null;
  log: PlaybackLog = { firstSegmentMs: null, segments: [] };

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly fetchSegment: FetchSegment,
  ) {}

  get active(): boolean {
    return this.controller !== null;
  }

  stop(): void {
    this.controller?.abort();
    this.controller = null;
    this.video.pause();
    if (this.objectUrl) {
      this.video.removeAttribute("src");
      this.video.load();
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
    }
  }

  // Plays from `from` (seconds) at `rate`; resolves when playback ends (end of the timeline, or
  // stop()). Rejects with the service's error when a segment cannot be rendered.
  async play(from: number, rate = 1, loop: LoopRange | null = null): Promise<void> {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    const signal = controller.signal;
    const started = performance.now();
    this.log = { firstSegmentMs: null, segments: [] };
    const source = new MediaSource();
    this.objectUrl = URL.createObjectURL(source);
    this.video.src = this.objectUrl;
    await once(source, "sourceopen", signal);

    let buffer: SourceBuffer | null = null;
    const append = async (segment: DraftSegment) => {
      if (!buffer) {
        buffer = source.addSourceBuffer(segment.mimeType);
        buffer.mode = "segments";
      }
      const sb = buffer;
      const behind = this.video.currentTime - BEHIND_SECONDS;
      if (behind > 1 && sb.buffered.length && sb.buffered.start(0) < behind) {
        sb.remove(0, behind);
        await once(sb, "updateend", signal);
      }
      sb.timestampOffset = segment.startSeconds;
      sb.appendBuffer(segment.media as Uint8Array<ArrayBuffer>);
      await once(sb, "updateend", signal);
      this.log.segments.push({ start: segment.startSeconds, duration: segment.durationSeconds, cached: segment.cached, ms: performance.now() - started });
    };

    const first = await this.fetchSegment(from, signal);
    const total = first.timelineDurationSeconds;
    await append(first);
    this.log.firstSegmentMs = performance.now() - started;
    source.duration = total;
    this.video.currentTime = Math.max(from, first.startSeconds);
    this.video.playbackRate = rate;
    const ended = new Promise<void>((resolve) => {
      const finish = () => resolve();
      this.video.addEventListener("ended", finish, { once: true });
      signal.addEventListener("abort", finish, { once: true });
    });
    await this.video.play();

    const limit = loop ? Math.min(loop.end, total) : total;
    let next = first.startSeconds + first.durationSeconds;
    // Without a loop, playback ends at the media's end (or stop()): a promise that never settles.
    const watchLoop = loop ? this.keepLooping(loop, signal) : new Promise<void>(() => {});
    try {
      while (next < limit - 1e-6) {
        while (next - this.video.currentTime > AHEAD_SECONDS * Math.max(1, this.video.playbackRate)) await sleep(100, signal);
        const segment = await this.fetchSegment(next, signal);
        await append(segment);
        next = segment.startSeconds + segment.durationSeconds;
      }
      // Started inside the loop but after its start: the loop's beginning is still missing.
      let head = loop ? loop.start : first.startSeconds;
      while (head < first.startSeconds - 1e-6) {
        const segment = await this.fetchSegment(head, signal);
        await append(segment);
        head = segment.startSeconds + segment.durationSeconds;
      }
      if (!loop && source.readyState === "open") source.endOfStream();
      await Promise.race([ended, watchLoop]);
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }

  // Back to the loop's start whenever the playhead passes its end (the media is buffered already
  // when playback started inside the loop; otherwise the segments are fetched as usual).
  private async keepLooping(loop: LoopRange, signal: AbortSignal): Promise<void> {
    for (;;) {
      await sleep(30, signal);
      if (this.video.currentTime >= loop.end - 0.02) this.video.currentTime = loop.start;
    }
  }
}
