// The editor's transport: Play/Pause, J/K/L shuttle and a loop range over DraftPlayer (MSE), the
// playhead following the media clock while playing. Any edit stops playback (the next play renders
// only the segments the edit touched).
import { useCallback, useEffect, useRef, useState } from "react";
import { render } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { DraftPlayer, isAbort, type LoopRange } from "../timeline/playback";
import { timelineDuration, toProto, type Timeline } from "../timeline/model";

// Seconds of the timeline rendered ahead of the playhead while the user edits (paused), so that
// Play starts from cached segments; only the segments an edit touched are rendered again.
const WARM_SECONDS = 12;

export interface WarmState {
  state: "idle" | "warming" | "ready";
  // The segments asked for, in order, and whether the service already had them.
  log: { start: number; cached: boolean }[];
}

export interface Playback {
  warm: WarmState;
  videoRef: React.RefObject<HTMLVideoElement | null>;
  playing: boolean;
  rate: number;
  loop: LoopRange | null;
  looping: boolean;
  error: UiError | null;
  toggle(): void;
  pause(): void;
  // Scrubbing: the still preview when paused; playing on from there when playing.
  seek(at: number): void;
  // L: play forward, faster on each press (1x, 2x, 4x); J: back one second; K: pause.
  shuttle(key: "j" | "k" | "l"): void;
  setLooping(on: boolean): void;
  setLoopIn(at: number): void;
  setLoopOut(at: number): void;
}

export function usePlayback(timeline: Timeline | null, playhead: number, setPlayhead: (t: number) => void): Playback {
  const videoRef = useRef<HTMLVideoElement | null>(null);
  const player = useRef<DraftPlayer | null>(null);
  const [playing, setPlaying] = useState(false);
  const [rate, setRate] = useState(1);
  const [loop, setLoop] = useState<LoopRange | null>(null);
  const [looping, setLooping] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const [warm, setWarm] = useState<WarmState>({ state: "idle", log: [] });
  const latest = useRef({ timeline, playhead });
  latest.current = { timeline, playhead };

  const pause = useCallback(() => {
    player.current?.stop();
    setPlaying(false);
    setRate(1);
  }, []);

  const start = useCallback((from: number, speed: number) => {
    const tl = latest.current.timeline;
    const video = videoRef.current;
    if (!tl || !video) return;
    const duration = timelineDuration(tl);
    if (duration <= 0) return;
    const range = looping && loop && loop.end > loop.start ? loop : null;
    let at = from >= duration - 0.05 ? 0 : from;
    if (range && (at < range.start || at >= range.end)) at = range.start;
    const proto = toProto(tl);
    player.current ??= new DraftPlayer(video, (t, signal) => render.renderPlaybackSegment({ timeline: proto, timeSeconds: t }, { signal }));
    const p = player.current;
    setError(null);
    setPlaying(true);
    setRate(speed);
    (window as unknown as { __playback?: DraftPlayer }).__playback = p; // read by the browser tests
    p.play(at, speed, range).then(
      () => {
        if (!p.active) setPlaying(false);
      },
      (err: unknown) => {
        if (!isAbort(err)) {
          setError(toUiError(err));
          setPlaying(false);
        }
      },
    );
  }, [loop, looping]);

  // Rebuild the player's fetcher for the new timeline: any edit stops playback.
  useEffect(() => {
    player.current?.stop();
    player.current = null;
    setPlaying(false);
  }, [timeline]);

  // Warm the service's segment cache from the playhead while paused (after edits settle).
  const warmFrom = Math.floor(playhead / 2) * 2;
  useEffect(() => {
    setWarm({ state: "idle", log: [] });
    if (!timeline || playing) return;
    const duration = timelineDuration(timeline);
    if (duration <= 0) return;
    const controller = new AbortController();
    const proto = toProto(timeline);
    const timer = window.setTimeout(async () => {
      const log: WarmState["log"] = [];
      setWarm({ state: "warming", log });
      let at = Math.min(warmFrom, duration - 0.01);
      const until = Math.min(duration, at + WARM_SECONDS);
      try {
        while (at < until - 1e-6) {
          const reply = await render.renderPlaybackSegment({ timeline: proto, timeSeconds: at, warmOnly: true }, { signal: controller.signal });
          log.push({ start: reply.startSeconds, cached: reply.cached });
          at = reply.startSeconds + reply.durationSeconds;
        }
        (window as unknown as { __warmLog?: WarmState["log"] }).__warmLog = log; // read by the browser tests
        setWarm({ state: "ready", log });
      } catch {
        // Aborted by an edit or by Play, or refused: Play asks again and shows the error then.
        if (!controller.signal.aborted) setWarm({ state: "idle", log });
      }
    }, 700);
    return () => {
      controller.abort();
      window.clearTimeout(timer);
    };
  }, [timeline, playing, warmFrom]);

  // The playhead follows the media clock.
  useEffect(() => {
    if (!playing) return;
    let frame = 0;
    const tick = () => {
      const video = videoRef.current;
      if (video && !video.paused && video.readyState >= 2) setPlayhead(video.currentTime);
      if (video?.ended) setPlaying(false);
      frame = requestAnimationFrame(tick);
    };
    frame = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(frame);
  }, [playing, setPlayhead]);

  useEffect(() => () => player.current?.stop(), []);

  const toggle = useCallback(() => {
    if (playing) pause();
    else start(latest.current.playhead, 1);
  }, [playing, pause, start]);

  const shuttle = useCallback((key: "j" | "k" | "l") => {
    if (key === "k") return pause();
    if (key === "l") {
      const video = videoRef.current;
      if (playing && video) {
        const faster = Math.min(rate * 2, 4);
        video.playbackRate = faster;
        setRate(faster);
      } else start(latest.current.playhead, 1);
      return;
    }
    const back = Math.max(0, (videoRef.current && playing ? videoRef.current.currentTime : latest.current.playhead) - 1);
    if (playing) start(back, rate);
    else setPlayhead(back);
  }, [playing, rate, pause, start, setPlayhead]);

  return {
    warm, videoRef, playing, rate, loop, looping, error, toggle, pause, shuttle, setLooping,
    seek: (at) => (playing ? start(at, rate) : setPlayhead(at)),
    setLoopIn: (at) => setLoop((l) => ({ start: at, end: l && l.end > at ? l.end : at + 2 })),
    setLoopOut: (at) => setLoop((l) => ({ start: l && l.start < at ? l.start : Math.max(0, at - 2), end: at })),
  };
}
