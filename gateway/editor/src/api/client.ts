// One gRPC-Web transport to Envoy for every service. Same origin when the editor is served by the
// gateway; VITE_GATEWAY_URL otherwise (npm run dev).
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { UsageService, WebhookService } from "../gen/viarte/account/v1/account_pb";
import { AuthService } from "../gen/viarte/auth/v1/auth_pb";
import { AssistantService } from "../gen/viarte/inference/v1/assistant_pb";
import { GenerationService } from "../gen/viarte/inference/v1/generation_pb";
import { ProjectService } from "../gen/viarte/render/v1/project_pb";
import { RenderService, UpscaleService } from "../gen/viarte/render/v1/render_pb";
import { StorageService } from "../gen/viarte/storage/v1/storage_pb";
import { LoraService, TrainingService } from "../gen/viarte/training/v1/training_pb";
import { getSession, sessionFromTokens, setSession, storedSession, type StoredSession } from "./session";
import { withTraceparent } from "./tracing";

const configured = import.meta.env.VITE_GATEWAY_URL as string | undefined;
export const gatewayUrl = configured || (import.meta.env.DEV ? "http://127.0.0.1:8800" : window.location.origin);

const plainTransport = createGrpcWebTransport({ baseUrl: gatewayUrl, interceptors: [withTraceparent] });
const authClient = createClient(AuthService, plainTransport);

let refreshing: Promise<boolean> | null = null;

// Rotate the refresh token once, however many calls (and tabs) ask at the same time.
export function refreshSession(): Promise<boolean> {
  const session = getSession();
  if (!session) return Promise.resolve(false);
  refreshing ??= acrossTabs(() => rotate(session)).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

// One tab at a time refreshes (a Web Lock, where the browser has them): the tabs share one token
// family, and a spent token presented twice is reuse.
function acrossTabs(task: () => Promise<boolean>): Promise<boolean> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  // request() resolves with what the callback's promise resolves to (its typings nest the promise).
  return locks ? locks.request("viarte.session.refresh", task).then((done) => done) : task();
}

async function rotate(asked: StoredSession): Promise<boolean> {
  const stored = storedSession();
  if (!stored) {
    setSession(null); // signed out in another tab
    return false;
  }
  if (stored.refreshToken !== asked.refreshToken && stored.accessExpiresAt - Date.now() > 30_000) {
    setSession(stored); // another tab rotated while this one waited for the lock
    return true;
  }
  try {
    const reply = await authClient.refresh({ refreshToken: stored.refreshToken });
    if (!reply.tokens) return false;
    setSession(sessionFromTokens(reply.tokens, stored.user));
    return true;
  } catch (error: unknown) {
    if (ConnectError.from(error).code === Code.Unauthenticated) setSession(null);
    return false;
  }
}

const withToken: Interceptor = (next) => async (req) => {
  let session = getSession();
  if (session && session.accessExpiresAt - Date.now() < 30_000) {
    await refreshSession();
    session = getSession();
  }
  if (session) req.header.set("authorization", `Bearer ${session.accessToken}`);
  try {
    return await next(req);
  } catch (error) {
    const err = ConnectError.from(error);
    // An access token that expired in flight: refresh and retry unary calls once.
    if (err.code === Code.Unauthenticated && session && !req.stream && (await refreshSession())) {
      req.header.set("authorization", `Bearer ${getSession()!.accessToken}`);
      return await next(req);
    }
    throw error;
  }
};

const transport = createGrpcWebTransport({ baseUrl: gatewayUrl, interceptors: [withTraceparent, withToken] });

export const auth = createClient(AuthService, transport);
export const storage = createClient(StorageService, transport);
export const generation = createClient(GenerationService, transport);
export const assistant = createClient(AssistantService, transport);
export const projects = createClient(ProjectService, transport);
export const render = createClient(RenderService, transport);
export const upscale = createClient(UpscaleService, transport);
export const usage = createClient(UsageService, transport);
export const webhooks = createClient(WebhookService, transport);
export const training = createClient(TrainingService, transport);
export const loras = createClient(LoraService, transport);
export { authClient as anonymousAuth };
