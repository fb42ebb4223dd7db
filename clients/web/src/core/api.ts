// The hub's HTTP api as the client needs it: credentials, replay, notifications.

import type { HubEvent } from "./catalog";
import type { HubNotification } from "./notifications";
import { parseRetryAfter } from "./timing";

export interface Credentials {
  clientId: string;
  username: string;
  password: string;
  expiresAt: string;
  websocketUrl: string;
  mqttUrl: string;
  topicPrefix: string;
  latestSeq: number;
}

export interface EventPage {
  events: HubEvent[];
  latestSeq: number;
}

/** An error answer of the api: `{"error", "message", "details"?}` with its status, and
 * for a 429 or 503 the server's `Retry-After` in milliseconds (null when it gave none). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown[] = [],
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** How long the server asked to wait before a retry of what failed with `err`. */
export function retryAfterOf(err: unknown): number | null {
  return err instanceof ApiError ? err.retryAfterMs : null;
}

export type TokenSource = () => string | Promise<string>;

export interface ApiOptions {
  /** Where the api is; the empty string means this page's origin. */
  baseUrl?: string;
  /** The bearer token (JWT); called for every request, so it may refresh it. */
  token: TokenSource;
  fetch?: typeof fetch;
}

/** The header a write names its broker connection with: the api puts it into the
 * events that write emits as their `origin`. */
export const CONNECTION_HEADER = "x-hub-connection";

const READS = new Set(["GET", "HEAD", "OPTIONS"]);

export class HubApi {
  private readonly baseUrl: string;
  private readonly token: TokenSource;
  private readonly fetchImpl: typeof fetch;
  /** The broker client id of the session this api writes for (HubClient sets it from
   * its credentials); every write then names it in `X-Hub-Connection`. */
  connectionId: string | null = null;

  constructor(options: ApiOptions) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/$/, "");
    this.token = options.token;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${await this.token()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.connectionId && !READS.has(method.toUpperCase())) headers[CONNECTION_HEADER] = this.connectionId;
    const res = await this.fetchImpl(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const parsed: unknown = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const err = (parsed ?? {}) as { error?: string; message?: string; details?: unknown[] };
      const retryAfter =
        res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get("retry-after"), Date.now()) : null;
      throw new ApiError(res.status, err.error ?? "error", err.message ?? res.statusText, err.details ?? [], retryAfter);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  /** New credentials, or with a client id a new password for that live session. */
  credentials(clientId?: string): Promise<Credentials> {
    return this.post<Credentials>("/realtime/credentials", clientId ? { clientId } : undefined);
  }

  events(after: number, options: { limit?: number; types?: readonly string[]; patientId?: string } = {}): Promise<EventPage> {
    const q = new URLSearchParams({ after: String(after), limit: String(options.limit ?? 500) });
    if (options.types?.length) q.set("types", options.types.join(","));
    if (options.patientId) q.set("patientId", options.patientId);
    return this.get<EventPage>(`/events?${q}`);
  }

  async notifications(): Promise<HubNotification[]> {
    return (await this.get<{ notifications: HubNotification[] }>("/notifications")).notifications;
  }

  acknowledge(id: string): Promise<HubNotification> {
    return this.post<HubNotification>(`/notifications/${encodeURIComponent(id)}/ack`);
  }
}
