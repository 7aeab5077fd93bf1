// The signed-in session: tokens in localStorage, refreshed silently before the access token
// expires (AuthService.Refresh rotates the refresh token), shared by every client via the
// transport's interceptor and by every tab of the editor.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { TokenPair, User } from "../gen/viarte/auth/v1/auth_pb";

export interface StoredSession {
  accessToken: string;
  accessExpiresAt: number; // epoch ms
  refreshToken: string;
  refreshExpiresAt: number;
  user: { id: string; email: string; displayName: string };
}

const KEY = "viarte.session";
type Listener = (session: StoredSession | null) => void;
const listeners = new Set<Listener>();
let current: StoredSession | null = load();

function load(): StoredSession | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as StoredSession;
    return parsed.refreshExpiresAt > Date.now() ? parsed : null;
  } catch {
    return null;
  }
}

export function getSession(): StoredSession | null {
  return current;
}

export function setSession(session: StoredSession | null): void {
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
  adopt(session);
}

function adopt(session: StoredSession | null): void {
  current = session;
  for (const listener of listeners) listener(session);
}

// The session as stored now: another tab may have rotated it (or signed out) since this one loaded.
export function storedSession(): StoredSession | null {
  return load();
}

// Every tab shares one token family: a tab that kept a token another tab has already rotated would
// present a spent token, which the server treats as theft. Tabs adopt what another tab stores.
if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    if (event.key !== KEY && event.key !== null) return;
    const stored = load();
    if (stored?.refreshToken !== current?.refreshToken) adopt(stored);
  });
}

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function sessionFromTokens(tokens: TokenPair, user: Pick<User, "id" | "email" | "displayName">): StoredSession {
  return {
    accessToken: tokens.accessToken,
    accessExpiresAt: tokens.accessTokenExpireTime ? timestampMs(tokens.accessTokenExpireTime) : Date.now() + 5 * 60_000,
    refreshToken: tokens.refreshToken,
    refreshExpiresAt: tokens.refreshTokenExpireTime ? timestampMs(tokens.refreshTokenExpireTime) : Date.now() + 86_400_000,
    user: { id: user.id, email: user.email, displayName: user.displayName },
  };
}
