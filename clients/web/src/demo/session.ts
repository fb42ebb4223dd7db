// Development sign-in: POST /dev/token (the api mounts it only in development and
// answers only this machine). The session lives in sessionStorage, one per tab.

export type Role = "front_desk" | "provider" | "billing" | "admin";

export interface Session {
  token: string;
  tenant: string;
  user: string;
  roles: Role[];
}

const KEY = "hub-demo-session";

export const DEMO_STAFF: { id: string; label: string; role: Role }[] = [
  { id: "fd-garcia", label: "Front desk: fd-garcia", role: "front_desk" },
  { id: "dr-okafor", label: "Provider: dr-okafor", role: "provider" },
  { id: "dr-lindqvist", label: "Provider: dr-lindqvist", role: "provider" },
  { id: "bl-chen", label: "Billing: bl-chen", role: "billing" },
  { id: "ad-patel", label: "Admin: ad-patel", role: "admin" },
];

export function savedSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  return raw ? (JSON.parse(raw) as Session) : null;
}

export async function signIn(tenant: string, user: string, role: Role): Promise<Session> {
  const res = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ tenant, user, roles: [role] }),
  });
  const body = (await res.json()) as { token?: string; message?: string };
  if (!res.ok || !body.token) throw new Error(body.message ?? `sign-in failed (${res.status})`);
  const session: Session = { token: body.token, tenant, user, roles: [role] };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}
