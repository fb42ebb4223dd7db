// A kiosk's connection to the hub: its device secret buys short-lived broker
// credentials (POST /kiosks/credentials), renewed before they expire and used again
// on the same client id; check-ins are MQTT 5 request/response with correlation data.

import mqtt from "mqtt";
import type { IPublishPacket, MqttClient } from "mqtt";

import { renewalDelay } from "../../core";

export interface Device {
  tenant: string;
  kioskId: string;
  deviceSecret: string;
}

export interface KioskCredentials {
  clientId: string;
  username: string;
  password: string;
  expiresAt: string;
  websocketUrl: string;
  requestTopic: string;
  responseTopic: string;
  kioskName: string;
}

export type Answer =
  | { ok: true; appointment: { scheduledStart: string; providerName: string; patientDisplayName: string } }
  | { ok: false; reason: "no_match" | "outside_window" | "already_checked_in" | "ambiguous" | "rate_limited" | "invalid" };

export type LinkStatus = "connecting" | "online" | "offline";

const DEVICE_KEY = "hub-kiosk-device";
const REQUEST_EXPIRY_S = 30;

export function savedDevice(): Device | null {
  const raw = localStorage.getItem(DEVICE_KEY);
  return raw ? (JSON.parse(raw) as Device) : null;
}

export function forgetDevice(): void {
  localStorage.removeItem(DEVICE_KEY);
}

/** Exchange an enrollment code for the device secret (kept in localStorage). */
export async function enroll(code: string): Promise<Device> {
  const res = await fetch("/kiosks/enroll", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ enrollmentCode: code.trim() }),
  });
  const body = (await res.json()) as Partial<Device> & { message?: string };
  if (res.status !== 201 || !body.deviceSecret) throw new Error(body.message ?? `enrollment failed (${res.status})`);
  const device = { tenant: body.tenant!, kioskId: body.kioskId!, deviceSecret: body.deviceSecret };
  localStorage.setItem(DEVICE_KEY, JSON.stringify(device));
  return device;
}

export class DeviceRefused extends Error {}

async function fetchCredentials(device: Device): Promise<KioskCredentials> {
  const res = await fetch("/kiosks/credentials", {
    method: "POST",
    headers: { authorization: `Bearer ${device.deviceSecret}` },
  });
  if (res.status === 401) throw new DeviceRefused("this kiosk is no longer enrolled");
  if (!res.ok) throw new Error(`credentials failed (${res.status})`);
  return (await res.json()) as KioskCredentials;
}

const decoder = new TextDecoder();

export class KioskLink {
  private client: MqttClient | null = null;
  private creds: KioskCredentials | null = null;
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly waiting = new Map<string, (a: Answer) => void>();
  private closed = false;
  status: LinkStatus = "connecting";

  constructor(
    private readonly device: Device,
    private readonly onStatus: (s: LinkStatus) => void,
    private readonly onRefused: () => void,
  ) {}

  get name(): string {
    return this.creds?.kioskName ?? "";
  }

  start(): void {
    void this.connect();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.retryTimer);
    this.client?.end(true);
    this.client = null;
  }

  private setStatus(s: LinkStatus): void {
    if (this.status !== s) {
      this.status = s;
      this.onStatus(s);
    }
  }

  private async connect(): Promise<void> {
    try {
      this.creds = await fetchCredentials(this.device);
    } catch (err) {
      if (err instanceof DeviceRefused) {
        this.onRefused();
        return;
      }
      this.setStatus("offline");
      this.retryTimer = setTimeout(() => void this.connect(), 3000);
      return;
    }
    if (this.closed) return;
    const creds = this.creds;
    // A renewal replaces the connection: the old one's close is not "offline".
    this.client?.removeAllListeners();
    this.client?.end(true);
    const client = mqtt.connect(creds.websocketUrl, {
      clientId: creds.clientId,
      username: creds.username,
      password: creds.password,
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 2000,
      connectTimeout: 10_000,
    });
    this.client = client;
    client.on("connect", () => {
      client.subscribe(creds.responseTopic, { qos: 1 }, (err) => {
        if (!err) this.setStatus("online");
      });
    });
    client.on("error", (err) => {
      // Refused at CONNECT (expired or revoked token): ask the api again, which either
      // renews the credentials or says the kiosk was disabled.
      const code = (err as { code?: number }).code;
      if (code === 134 || code === 135) {
        client.end(true);
        this.setStatus("offline");
        this.retryTimer = setTimeout(() => void this.connect(), 1000);
      }
    });
    client.on("close", () => this.setStatus("offline"));
    client.on("offline", () => this.setStatus("offline"));
    client.on("message", (_topic: string, payload: Buffer, packet: IPublishPacket) => {
      const raw = packet.properties?.correlationData;
      const key = raw ? decoder.decode(raw) : "";
      const resolve = this.waiting.get(key);
      if (!resolve) return; // not ours (an old question): never shown
      this.waiting.delete(key);
      try {
        resolve(JSON.parse(decoder.decode(payload)) as Answer);
      } catch {
        resolve({ ok: false, reason: "invalid" });
      }
    });
    clearTimeout(this.renewTimer);
    // Renew ahead of the expiry, then reconnect with the new token on the same client id.
    this.renewTimer = setTimeout(() => void this.connect(), renewalDelay(creds.expiresAt, Date.now()));
  }

  /** Ask the hub; rejects after `timeoutMs` (the kiosk then says it is offline). */
  ask(lastName: string, dateOfBirth: string, timeoutMs = 10_000): Promise<Answer> {
    const client = this.client;
    const creds = this.creds;
    if (!client || !creds || this.status !== "online") return Promise.reject(new Error("offline"));
    const id = crypto.randomUUID();
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error("no answer"));
      }, timeoutMs);
      this.waiting.set(id, (a) => {
        clearTimeout(timer);
        resolve(a);
      });
      client.publish(
        creds.requestTopic,
        JSON.stringify({ type: "check_in", lastName, dateOfBirth }),
        {
          qos: 1,
          properties: {
            responseTopic: creds.responseTopic,
            correlationData: id as unknown as Buffer, // written as UTF-8; echoed back as bytes
            messageExpiryInterval: REQUEST_EXPIRY_S,
            contentType: "application/json",
          },
        },
        (err) => {
          if (err) {
            clearTimeout(timer);
            this.waiting.delete(id);
            reject(err);
          }
        },
      );
    });
  }
}
