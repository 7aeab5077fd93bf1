import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { anonymousAuth, auth, refreshSession } from "../api/client";
import { getSession, onSessionChange, sessionFromTokens, setSession, type StoredSession } from "../api/session";

interface AuthState {
  session: StoredSession | null;
  login(email: string, password: string): Promise<void>;
  register(email: string, password: string, displayName: string): Promise<void>;
  logout(): Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setState] = useState(getSession());
  useEffect(() => onSessionChange(setState), []);

  // Silent refresh: rotate the tokens when 80% of the access token's remaining life has passed.
  useEffect(() => {
    if (!session) return;
    const delay = Math.max(1_000, (session.accessExpiresAt - Date.now()) * 0.8);
    const timer = window.setTimeout(() => void refreshSession(), delay);
    return () => window.clearTimeout(timer);
  }, [session]);

  const login = useCallback(async (email: string, password: string) => {
    const reply = await anonymousAuth.login({ email, password });
    if (reply.tokens && reply.user) setSession(sessionFromTokens(reply.tokens, reply.user));
  }, []);
  const register = useCallback(async (email: string, password: string, displayName: string) => {
    const reply = await anonymousAuth.register({ email, password, displayName });
    if (reply.tokens && reply.user) setSession(sessionFromTokens(reply.tokens, reply.user));
  }, []);
  const logout = useCallback(async () => {
    try {
      await auth.logout({});
    } catch {
      // The session is dropped locally either way.
    }
    setSession(null);
  }, []);

  const value = useMemo(() => ({ session, login, register, logout }), [session, login, register, logout]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}

export function RequireAuth({ children }: { children: ReactNode }) {
  const { session } = useAuth();
  const location = useLocation();
  if (!session) return <Navigate to="/login" replace state={{ from: location.pathname }} />;
  return <>{children}</>;
}
