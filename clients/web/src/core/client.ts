// HubClient: one persistent MQTT session over WebSocket per signed-in user, kept
// correct across disconnects (contract section 7) and independent of any UI framework.

// The browser build of MQTT.js has only a default export.
import mqtt from "mqtt";
import type { IClientOptions, IConnackPacket, IPublishPacket, MqttClient } from "mqtt";

import { ApiError, retryAfterOf, type Credentials, type HubApi } from "./api";
import { parseEnvelope, type EventType, type HubEvent } from "./catalog";
import { EventLedger } from "./ledger";
import { isNotification, NotificationStore, type HubNotification } from "./notifications";
import { backoffDelay, DEFAULT_BACKOFF, renewalDelay, retryDelay, type Backoff } from "./timing";
import { checkId, eventTopic, filtersFor, matches, type Selector } from "./topics";

export type ConnectionStatus = "connecting" | "live" | "reconnecting" | "offline";

export type ConnectFn = (url: string, options: IClientOptions) => MqttClient;

export interface HubClientOptions {
  api: HubApi;
  /** Whose notifications to receive (the token's `sub`). */
  userId: string;
  /** How long the broker keeps the session (and queues events) while away. */
  sessionExpirySeconds?: number;
  backoff?: Backoff;
  /** Past this many missing events the view is told to refetch instead of replaying. */
  maxReplayEvents?: number;
  /** MQTT.js `connect`; tests inject a fake. */
  connect?: ConnectFn;
  logger?: Pick<Console, "warn" | "error">;
}

export interface SubscribeOptions {
  /** The gap was too large to replay: reload the view from the api. */
  onRefetch?: () => void;
}

interface Subscription {
  filters: string[];
  types: readonly EventType[] | null; // null: raw filters, replay everything
  patientId: string | undefined;
  handler: (event: HubEvent) => void;
  onRefetch: (() => void) | undefined;
}

// CONNACK reason codes that mean "these credentials will not do" (MQTT 5): bad user
// name or password, not authorized, bad authentication method, banned.
const AUTH_REFUSALS = new Set([0x86, 0x87, 0x8c, 0x8a]);
const REPLAY_PAGE = 500;
const MAX_REPLAY_PAGES = 200;

export class HubClient {
  readonly api: HubApi;
  readonly notifications = new NotificationStore();
  private readonly options: Required<Omit<HubClientOptions, "api" | "userId" | "logger">>;
  private readonly log: Pick<Console, "warn" | "error">;
  private readonly userId: string;
  private readonly subs = new Set<Subscription>();
  private readonly statusListeners = new Set<(s: ConnectionStatus) => void>();
  private readonly authListeners = new Set<(err: ApiError) => void>();
  private current: ConnectionStatus = "offline";
  private creds: Credentials | null = null;
  private ledger: EventLedger | null = null;
  private mqtt: MqttClient | null = null;
  private brokerFilters = new Set<string>(); // what the broker's session holds
  private readonly connections = new Set<string>(); // every client id this client wrote as
  private readonly isReady: Promise<void>;
  private markReady: () => void = () => undefined;
  private booting: Promise<void> | null = null;
  private stopped = true;
  private attempt = 0;
  private refusals = 0;
  private authRefused = false;
  private renewing: Promise<boolean> | null = null;
  private renewRetryAfter: number | null = null; // the server's Retry-After of the last failed renewal
  private expectClose = false;
  private target = 0;
  private catchUp: Promise<void> | null = null;
  private owed = false; // this connection's catch-up has not succeeded yet
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private sleepers = new Set<() => void>(); // wake pending sleeps: stop() must not strand a loop
  private renewTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: HubClientOptions) {
    this.isReady = new Promise((resolve) => (this.markReady = resolve));
    this.api = options.api;
    this.userId = checkId(options.userId, "userId");
    this.log = options.logger ?? console;
    this.options = {
      sessionExpirySeconds: options.sessionExpirySeconds ?? 3600,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      maxReplayEvents: options.maxReplayEvents ?? 5000,
      connect: options.connect ?? ((url, opts) => mqtt.connect(url, opts)),
    };
  }

  get status(): ConnectionStatus {
    return this.current;
  }

  /** The broker client id of the current credentials (what writes name as their
   * connection), or null before the first credentials. */
  get connectionId(): string | null {
    return this.creds?.clientId ?? null;
  }

  /** True when `event` was made by a write of this client (this window), whichever
   * user made it: its `origin` is one of the connection ids this client has used. Another
   * window of the same user has another connection id, so its changes are not "own". */
  isOwn(event: Pick<HubEvent, "origin">): boolean {
    return event.origin !== undefined && this.connections.has(event.origin);
  }

  /** The seq up to which the client has handed every subscribed event to its handlers. */
  get seq(): number {
    return this.ledger?.seq ?? 0;
  }

  onStatus(listener: (s: ConnectionStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** The sign-in itself was refused (401): the app must sign in again. */
  onAuthLost(listener: (err: ApiError) => void): () => void {
    this.authListeners.add(listener);
    return () => this.authListeners.delete(listener);
  }

  /** Resolves once the first credentials are in: load views after this, so that an
   * event committed between the load and the connection is replayed, not lost. */
  ready(): Promise<void> {
    return this.isReady;
  }

  /** Connects (again, after `stop`); resolves like `ready`. */
  start(): Promise<void> {
    if (!this.stopped) return this.isReady;
    this.stopped = false;
    this.setStatus("connecting");
    globalThis.addEventListener?.("online", this.onOnline);
    globalThis.addEventListener?.("offline", this.onOffline);
    if (this.creds) {
      this.useCredentials(this.creds); // stop() cancelled the renewal
      this.open();
    } else this.booting ??= this.boot().finally(() => (this.booting = null));
    return this.isReady;
  }

  private async boot(): Promise<void> {
    let creds = await this.fetchCredentials();
    // Null when stopped or signed out; a start() right after a stop() reuses this boot.
    while (!creds && !this.stopped) creds = await this.fetchCredentials();
    if (!creds) return;
    // latestSeq is read before any view loads: the baseline of the ledger.
    this.ledger = new EventLedger(creds.latestSeq);
    this.target = creds.latestSeq;
    this.useCredentials(creds);
    this.markReady();
    void this.loadNotifications();
    this.open();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const wake of [...this.sleepers]) wake(); // the loops then see `stopped` and end
    clearTimeout(this.renewTimer);
    globalThis.removeEventListener?.("online", this.onOnline);
    globalThis.removeEventListener?.("offline", this.onOffline);
    const client = this.mqtt;
    this.mqtt = null; // first: the `mine` guard then ignores this client's last events
    client?.end(true);
    this.setStatus("offline");
  }

  subscribe(selector: Selector, handler: (event: HubEvent) => void, options: SubscribeOptions = {}): () => void {
    const sub: Subscription = {
      filters: filtersFor(selector),
      types: "types" in selector ? selector.types : null,
      patientId: "types" in selector ? selector.patientId : undefined,
      handler,
      onRefetch: options.onRefetch,
    };
    this.subs.add(sub);
    this.syncSubscriptions();
    return () => {
      this.subs.delete(sub);
      this.syncSubscriptions();
    };
  }

  async acknowledge(id: string): Promise<HubNotification> {
    const n = await this.api.acknowledge(id);
    this.notifications.put(n);
    return n;
  }

  // --- connection -------------------------------------------------------------------

  private open(): void {
    if (this.stopped || this.mqtt || !this.creds) return;
    const creds = this.creds;
    const client = this.options.connect(creds.websocketUrl, {
      clientId: creds.clientId,
      username: creds.username,
      password: creds.password,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: this.options.sessionExpirySeconds },
      reconnectPeriod: 0, // reconnecting is ours: backoff with jitter, new passwords
      connectTimeout: 10_000,
      resubscribe: false,
    });
    this.mqtt = client;
    this.authRefused = false;
    this.expectClose = false; // it was about the previous connection
    const mine = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
      if (client === this.mqtt) fn(...args);
    };
    client.on("connect", mine((connack: IConnackPacket) => this.onConnect(client, connack)));
    client.on("message", mine((topic: string, payload: Uint8Array, packet: IPublishPacket) => this.onMessage(topic, payload, packet)));
    client.on("error", mine((err: Error & { code?: unknown }) => {
      if (typeof err.code === "number" && AUTH_REFUSALS.has(err.code)) this.authRefused = true;
      else this.log.warn("hub: mqtt error", err.message);
    }));
    client.on("close", mine(() => this.onClose(client)));
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    this.attempt = 0;
    this.refusals = 0;
    if (!connack.sessionPresent) {
      // A new session, or the broker lost ours: it holds no subscriptions, and
      // notifications sent meanwhile were not queued for us.
      this.brokerFilters = new Set();
      void this.loadNotifications();
    }
    this.setStatus("live");
    // Until this connection's catch-up is done, live events are held: one that came before
    // the retained meta/seq (the broker lost the session, or its queue overflowed) must not
    // move `seq` over events that were never queued.
    this.ledger?.startReplay();
    this.owed = true;
    // Every connect reads the retained meta/seq (first: it is then no newer than what
    // the event filters deliver), and replays GET /events?after=seq once the broker has the
    // event filters; meta/seq only raises the target of that catch-up.
    client.subscribe(this.creds!.topicPrefix + "meta/seq", { qos: 1, rh: 0 });
    this.syncSubscriptions(() => this.fill(0));
  }

  private onClose(client: MqttClient): void {
    this.mqtt = null;
    client.end(true); // its listeners stay (an EventEmitter throws on an unheard "error")
    if (this.stopped) return;
    if (this.authRefused) {
      void this.afterRefusal();
      return;
    }
    if (this.expectClose || this.renewing) {
      // Our own renewal changed the password: the broker drops the connection once.
      this.expectClose = false;
      void (this.renewing ?? Promise.resolve(true)).then((renewed) => {
        if (this.stopped) return;
        if (!renewed) this.setStatus("reconnecting"); // no new password: an outage after all
        this.open();
      });
      return;
    }
    if (this.current !== "offline") this.setStatus(this.current === "connecting" ? "connecting" : "reconnecting");
    this.later(backoffDelay(this.attempt++, this.options.backoff), () => this.open());
  }

  /** The broker refused the login: never try that password again. Renew it (same
   * session), or take new credentials when the session is gone; until one of those
   * works, wait with backoff instead of connecting. */
  private async afterRefusal(): Promise<void> {
    this.setStatus(this.current === "connecting" ? "connecting" : "reconnecting");
    for (let attempt = this.refusals++; !this.stopped; attempt++) {
      if (attempt > 0) await this.sleep(retryDelay(attempt, this.renewRetryAfter, this.options.backoff));
      if (this.stopped) return;
      if (await this.renew()) {
        this.open();
        return;
      }
    }
  }

  private readonly onOnline = (): void => {
    if (!this.stopped && !this.mqtt) {
      this.setStatus("reconnecting");
      this.open();
    }
  };

  private readonly onOffline = (): void => {
    if (!this.stopped) this.setStatus("offline");
  };

  // --- credentials ------------------------------------------------------------------

  /** Fresh credentials (a new client id); retried with backoff unless the sign-in is dead. */
  private async fetchCredentials(): Promise<Credentials | null> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        return await this.api.credentials();
      } catch (err) {
        if (this.signedOut(err)) return null;
        this.log.warn("hub: credentials failed; retrying", String(err));
        // A 429 or 503 says when: not before its Retry-After (with jitter).
        await this.sleep(retryDelay(attempt, retryAfterOf(err), this.options.backoff));
      }
    }
    return null;
  }

  private useCredentials(creds: Credentials): void {
    if (this.creds && this.creds.clientId !== creds.clientId) this.brokerFilters = new Set();
    this.creds = creds;
    // Kept across new credentials: a write made under the previous id may still arrive.
    this.connections.add(creds.clientId);
    this.api.connectionId = creds.clientId;
    clearTimeout(this.renewTimer);
    // A boot or renewal that ends after stop() must not start renewing again.
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => void this.renewBeforeExpiry(), renewalDelay(creds.expiresAt, Date.now()));
  }

  private async renewBeforeExpiry(): Promise<void> {
    if (this.stopped) return;
    // A connection that closes while the renewal runs is no outage: it reopens with the
    // renewed token once that is in.
    const before = this.mqtt;
    this.expectClose = before !== null;
    if (await this.renew()) {
      this.expectClose = false;
      // The broker checks a token only at CONNECT and closes the connection at its exp:
      // reconnect with the renewed one on the same client id. The persistent session
      // keeps what arrives meanwhile. Only the connection made with the old token is
      // cycled (a refusal may already have reopened with the new one).
      if (before && this.mqtt === before && !this.stopped) {
        this.mqtt = null; // first: the `mine` guard ignores the old client's close
        before.end(false);
        this.open();
      }
      return;
    }
    this.expectClose = false;
    // Once the credentials have expired the broker refuses them, and afterRefusal takes over.
    if (!this.stopped) {
      const wait = Math.max(10_000, retryDelay(0, this.renewRetryAfter, this.options.backoff));
      this.renewTimer = setTimeout(() => void this.renewBeforeExpiry(), wait);
    }
  }

  /** A new password for the same session (keeps its subscriptions and queued events),
   * or new credentials when the api no longer knows the session. True when it got one. */
  private renew(): Promise<boolean> {
    this.renewing ??= (async () => {
      this.renewRetryAfter = null;
      try {
        this.useCredentials(await this.api.credentials(this.creds!.clientId));
        return true;
      } catch (err) {
        this.renewRetryAfter = retryAfterOf(err);
        if (this.signedOut(err)) return false;
        if (err instanceof ApiError && err.status === 404) {
          const fresh = await this.fetchCredentials();
          if (fresh) this.useCredentials(fresh);
          return fresh !== null;
        }
        this.log.warn("hub: renewal failed", String(err));
        return false;
      }
    })().finally(() => {
      this.renewing = null;
    });
    return this.renewing;
  }

  private signedOut(err: unknown): boolean {
    if (!(err instanceof ApiError) || err.status !== 401) return false;
    this.stop();
    for (const listener of this.authListeners) listener(err);
    return true;
  }

  // --- subscriptions and messages ---------------------------------------------------

  private wanted(): Set<string> {
    const out = new Set<string>();
    for (const sub of this.subs) for (const f of sub.filters) out.add(f);
    out.add(`users/${this.userId}/notifications/+`);
    return out;
  }

  /** `subscribed` runs once the broker has every wanted filter (at once if it had them). */
  private syncSubscriptions(subscribed?: () => void): void {
    const client = this.mqtt;
    if (!client?.connected || !this.creds) return;
    const prefix = this.creds.topicPrefix;
    const wanted = this.wanted();
    const add = [...wanted].filter((f) => !this.brokerFilters.has(f));
    const drop = [...this.brokerFilters].filter((f) => !wanted.has(f));
    this.brokerFilters = wanted;
    if (add.length) {
      client.subscribe(add.map((f) => prefix + f), { qos: 1 }, (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos >= 0x80);
        if (err || refused.length) this.log.error("hub: subscription refused", err?.message ?? refused.map((g) => g.topic));
        subscribed?.();
      });
    } else subscribed?.();
    if (drop.length) client.unsubscribe(drop.map((f) => prefix + f));
  }

  private onMessage(topic: string, payload: Uint8Array, packet: IPublishPacket): void {
    const prefix = this.creds!.topicPrefix;
    if (!topic.startsWith(prefix) || payload.length === 0) return; // empty: a cleared snapshot
    const rel = topic.slice(prefix.length);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      this.log.warn("hub: ignoring a message that is not JSON", rel);
      return;
    }
    if (rel === "meta/seq") {
      // Only the retained value sent on subscribe (each connect) matters: a live one comes
      // with every relay batch, mostly of types this view does not want.
      const seq = (body as { seq?: unknown }).seq;
      if (packet.retain && typeof seq === "number") this.fill(seq);
    } else if (rel.startsWith("users/")) {
      if (isNotification(body)) this.notifications.put(body);
    } else if (!packet.retain) {
      const event = parseEnvelope(body);
      if (event) this.deliver(this.ledger!.receive(event));
    }
  }

  private deliver(events: readonly HubEvent[]): void {
    for (const event of events) {
      const topic = eventTopic(event);
      for (const sub of [...this.subs]) {
        if (!sub.filters.some((f) => matches(f, topic))) continue;
        try {
          sub.handler(event);
        } catch (err) {
          this.log.error("hub: event handler failed", err);
        }
      }
    }
  }

  // --- catch-up ---------------------------------------------------------------------

  /** Make the view complete up to `latest` (and, once per connect, up to the tenant's
   * latestSeq): replay, or refetch if the gap is too large. One catch-up at a time; a
   * newer meta/seq only raises its target. The live events held meanwhile are handed over
   * only after a catch-up succeeded: a failed one is retried from the same seq. */
  private fill(latest: number): void {
    this.target = Math.max(this.target, latest);
    const ledger = this.ledger;
    if (!ledger || this.catchUp || (!this.owed && !ledger.behind(this.target))) return;
    this.owed = false;
    ledger.startReplay();
    const from = ledger.seq;
    this.catchUp = this.replay(ledger).then(
      () => {
        this.catchUp = null;
        // A connect meanwhile owes its own catch-up; a newer meta/seq may still be ahead.
        if (this.owed || (ledger.behind(this.target) && ledger.seq > from)) this.fill(0);
        else this.deliver(ledger.finishReplay());
      },
      (err: unknown) => {
        this.catchUp = null;
        this.owed = true; // held events stay held: `seq` has not moved past the gap
        if (this.signedOut(err)) return;
        this.log.warn("hub: catch-up failed; retrying", String(err));
        this.later(retryDelay(2, retryAfterOf(err), this.options.backoff), () => this.fill(0));
      },
    );
  }

  private async replay(ledger: EventLedger): Promise<void> {
    if (this.subs.size === 0) {
      ledger.advance(this.target); // nothing to hand over: no view needs these events
      return;
    }
    const { types, patientId } = this.replayScope();
    for (let page = 0; page < MAX_REPLAY_PAGES; page++) {
      if (this.target - ledger.seq > this.options.maxReplayEvents) {
        this.refetch(ledger, this.target);
        return;
      }
      let result;
      try {
        result = await this.api.events(ledger.seq, { limit: REPLAY_PAGE, types, patientId });
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 410) throw err;
        // Pruned beyond replay: the view reloads, and we resume from the answer's latestSeq.
        const latest = (err.details[0] as { latestSeq?: number } | undefined)?.latestSeq ?? this.target;
        this.refetch(ledger, latest);
        return;
      }
      this.target = Math.max(this.target, result.latestSeq);
      if (this.target - ledger.seq > this.options.maxReplayEvents) {
        this.refetch(ledger, this.target);
        return;
      }
      this.deliver(ledger.replayed(result.events));
      // The server may answer fewer than `limit`: only an empty page (or one that reaches
      // latestSeq) says there is nothing more up to latestSeq.
      if (result.events.length === 0) {
        ledger.advance(result.latestSeq);
        return;
      }
      const last = Math.max(...result.events.map((e) => e.seq));
      if (last <= ledger.seq) return; // never spin on an answer that does not advance
      ledger.advance(last);
      if (last >= result.latestSeq) return;
    }
  }

  private replayScope(): { types: EventType[] | undefined; patientId: string | undefined } {
    const subs = [...this.subs];
    if (subs.some((s) => s.types === null)) return { types: undefined, patientId: undefined };
    const types = [...new Set(subs.flatMap((s) => s.types!))];
    const patients = new Set(subs.map((s) => s.patientId));
    const [only] = patients;
    return { types, patientId: patients.size === 1 ? only : undefined };
  }

  private refetch(ledger: EventLedger, latest: number): void {
    ledger.advance(latest);
    for (const sub of [...this.subs]) sub.onRefetch?.();
  }

  // --- helpers ----------------------------------------------------------------------

  private async loadNotifications(): Promise<void> {
    try {
      for (const n of await this.api.notifications()) this.notifications.put(n);
    } catch (err) {
      if (!this.signedOut(err)) this.log.warn("hub: could not load notifications", String(err));
    }
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.current) return;
    this.current = status;
    for (const listener of this.statusListeners) listener(status);
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  /** Resolves after `ms`, or at once on stop(): callers re-check `stopped`. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.timers.delete(t);
        this.sleepers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.timers.add(t);
      this.sleepers.add(wake);
    });
  }
}
