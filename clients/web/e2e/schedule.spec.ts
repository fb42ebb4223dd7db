// Two windows of one tenant and one of another: the live schedule, a broker restart,
// and tenant isolation enforced by the broker.
import { expect, test, type Page } from "@playwright/test";

import { api, broker, env, expectLive, indicator, openWindow, row, toast, todayAt, token } from "./support";

test.describe.configure({ mode: "serial" });

interface Probe {
  granted: number[];
  received: string[];
}
type ProbeWindow = Window & { crossTenant?: Probe; statusLog?: string[] };

let desk: Page; // tenant A, front desk
let doctor: Page; // tenant A, provider
let other: Page; // tenant B, front desk
let booked = ""; // the appointment booked in the first scenario
let otherRows = 0;

const NOT_AUTHORIZED = 0x87;

test.beforeAll(async ({ browser }) => {
  desk = await openWindow(browser, env.tenant(), "fd-garcia");
  doctor = await openWindow(browser, env.tenant(), "dr-okafor");
  other = await openWindow(browser, env.otherTenant(), "fd-garcia");
  for (const page of [desk, doctor, other]) await expect(page.locator("[data-appointment]")).toHaveCount(8); // seeded
  otherRows = await other.locator("[data-appointment]").count();
  // Tenant B's window also tries the broker directly, with its own user's credentials:
  // tenant A's topics and everything must be refused, and nothing of A may arrive.
  const granted = await other.evaluate(async ([foreign, own]) => {
    const { mqtt } = window.hubDemo!;
    const { token } = JSON.parse(sessionStorage.getItem("hub-demo-session")!) as { token: string };
    const res = await fetch("/realtime/credentials", { method: "POST", headers: { authorization: `Bearer ${token}` } });
    const creds = (await res.json()) as { clientId: string; username: string; password: string; websocketUrl: string };
    const probe: Probe = { granted: [], received: [] };
    (window as ProbeWindow).crossTenant = probe;
    const client = mqtt.connect(creds.websocketUrl, {
      clientId: creds.clientId, username: creds.username, password: creds.password, protocolVersion: 5, reconnectPeriod: 1000,
    });
    client.on("message", (topic) => probe.received.push(topic));
    await new Promise((resolve) => client.once("connect", resolve));
    // One at a time: MQTT.js fails a whole subscribe when the broker refuses any filter.
    const filters = [`tenants/${foreign}/#`, `tenants/${foreign}/patients/+/appointment/+/+`, `tenants/${foreign}/meta/seq`, "#", `tenants/${own}/meta/seq`];
    for (const filter of filters) {
      try {
        const [granted] = await client.subscribeAsync(filter, { qos: 1 });
        probe.granted.push(granted!.qos);
      } catch (err) {
        probe.granted.push((err as { packet?: { granted?: number[] } }).packet?.granted?.[0] ?? -1);
      }
    }
    return probe.granted;
  }, [env.tenant(), env.otherTenant()]);
  expect(granted).toEqual([NOT_AUTHORIZED, NOT_AUTHORIZED, NOT_AUTHORIZED, NOT_AUTHORIZED, 1]);
});

test.afterAll(async () => {
  for (const page of [desk, doctor, other]) await page?.context().close();
});

test("an appointment booked in one window appears in the other with a highlight and a toast", async () => {
  const form = desk.getByRole("form", { name: "Book an appointment" });
  await form.getByLabel("Time").fill("20:00");
  const patient = (await form.getByLabel("Patient").locator("option:checked").textContent())!;
  const [answer] = await Promise.all([
    desk.waitForResponse((r) => r.url().endsWith("/appointments") && r.request().method() === "POST"),
    form.getByRole("button", { name: "Book" }).click(),
  ]);
  expect(answer.status()).toBe(201);
  booked = ((await answer.json()) as { id: string }).id;

  const seen = row(doctor, "data-appointment", booked);
  await expect(seen).toBeVisible();
  await expect(seen).toHaveAttribute("data-changed", "true");
  await expect(seen).toContainText(patient);
  await expect(seen).toContainText("20:00");
  await expect(toast(doctor, "New appointment")).toContainText(patient);
  await expect(row(desk, "data-appointment", booked)).toBeVisible();
  await doctor.screenshot({ path: `${env.artifacts()}/schedule.png`, fullPage: true });
  // The highlight goes away again after a few seconds.
  await expect(seen).not.toHaveAttribute("data-changed", "true");
});

test("reschedule, check-in and cancellation show in the other window", async () => {
  await row(doctor, "data-appointment", booked).getByRole("button", { name: "+30 min" }).click();
  const inDesk = row(desk, "data-appointment", booked);
  await expect(inDesk).toContainText("20:30");
  await expect(inDesk).toHaveAttribute("data-changed", "true");
  await expect(toast(desk, "Appointment changed")).toBeVisible();

  await inDesk.getByRole("button", { name: "Check in" }).click();
  await expect(row(doctor, "data-appointment", booked).locator(".status")).toHaveText("checked in");
  await expect(toast(doctor, "Patient checked in")).toBeVisible();

  const seeded = doctor.locator("[data-appointment].status-scheduled").first();
  const id = (await seeded.getAttribute("data-appointment"))!;
  await seeded.getByRole("button", { name: "Cancel" }).click();
  await expect(row(desk, "data-appointment", id).locator(".status")).toHaveText("cancelled");
  await expect(toast(desk, "Appointment cancelled")).toBeVisible();
});

test("while the broker is down the windows say Reconnecting; back Live, they show what changed meanwhile", async ({ request }) => {
  const bearer = await token(request, env.tenant(), "fd-garcia");
  const [patient] = await api<{ id: string }[]>(request, bearer, "GET", "/patients?limit=1");
  const scheduled = desk.locator("[data-appointment].status-scheduled").first();
  const waiting = (await scheduled.getAttribute("data-appointment"))!;

  await broker(request, "stop");
  await expect(indicator(desk)).toHaveText("Reconnecting");
  await expect(indicator(doctor)).toHaveText("Reconnecting");
  const made = await api<{ id: string }>(request, bearer, "POST", "/appointments", {
    patientId: patient!.id, providerId: "dr-lindqvist", locationId: "loc-north",
    scheduledStart: todayAt(19).toISOString(), scheduledEnd: todayAt(19, 30).toISOString(),
  });
  await api(request, bearer, "POST", `/appointments/${waiting}/status`, { status: "checked_in" });
  // Nothing can arrive while the broker is down.
  await expect(row(desk, "data-appointment", made.id)).toHaveCount(0);

  await broker(request, "start");
  for (const page of [desk, doctor]) {
    await expectLive(page);
    await expect(row(page, "data-appointment", made.id)).toContainText("19:00");
    await expect(row(page, "data-appointment", waiting).locator(".status")).toHaveText("checked in");
  }
});

test("the other tenant's window shows none of it", async () => {
  await expectLive(other);
  await expect(other.locator("[data-appointment]")).toHaveCount(otherRows);
  await expect(row(other, "data-appointment", booked)).toHaveCount(0);
  await expect(other.locator(".hub-toast")).toHaveCount(0);
  const probe = await other.evaluate(() => (window as ProbeWindow).crossTenant!);
  expect(probe.received.filter((t) => !t.startsWith(`tenants/${env.otherTenant()}/`))).toEqual([]);
  // The probe does receive what its own tenant allows: it was really listening.
  expect(probe.received).toContain(`tenants/${env.otherTenant()}/meta/seq`);
});

test("a window renews its broker credentials before they expire and stays live", async ({ request }) => {
  await desk.evaluate(() => {
    const w = window as ProbeWindow;
    w.statusLog = [];
    window.hubDemo!.client.onStatus((s) => w.statusLog!.push(s));
  });
  // The stack issues 30-second credentials: a renewal (same client id, new password)
  // comes within the lifetime, and the broker drops the connection once for it.
  const renewal = await desk.waitForResponse(
    (r) => r.url().endsWith("/realtime/credentials") && (r.request().postData() ?? "").includes("clientId"),
    { timeout: 90_000 },
  );
  expect(renewal.status()).toBe(200);
  const bearer = await token(request, env.tenant(), "fd-garcia");
  const [patient] = await api<{ id: string }[]>(request, bearer, "GET", "/patients?limit=1");
  const made = await api<{ id: string }>(request, bearer, "POST", "/appointments", {
    patientId: patient!.id, providerId: "dr-okafor", locationId: "loc-main",
    scheduledStart: todayAt(18).toISOString(), scheduledEnd: todayAt(18, 30).toISOString(),
  });
  await expect(row(desk, "data-appointment", made.id)).toContainText("18:00");
  await expectLive(desk);
  expect(await desk.evaluate(() => (window as ProbeWindow).statusLog)).not.toContain("reconnecting");
});
