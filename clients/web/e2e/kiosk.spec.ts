// A lobby kiosk: an admin registers it, the device enrolls with the code, a patient
// checks in by last name and date of birth, and the front desk sees it live.
import { expect, test, type Page } from "@playwright/test";

import { api, env, openWindow, row, toast, token } from "./support";

test.describe.configure({ mode: "serial" });

let admin: Page;
let desk: Page;
let kiosk: Page;

test.afterAll(async () => {
  for (const page of [admin, desk, kiosk]) await page?.context().close();
});

async function answer(page: Page, lastName: string, dob: string): Promise<void> {
  await page.getByRole("button", { name: "Check in" }).click();
  await page.getByLabel("What is your last name?").fill(lastName);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("What is your date of birth?").fill(dob);
  await page.getByRole("button", { name: "Next" }).click();
}

test("enroll a kiosk, check a patient in on it, and the front desk sees it live", async ({ browser, request }) => {
  admin = await openWindow(browser, env.tenant(), "ad-patel", "#/kiosks");
  desk = await openWindow(browser, env.tenant(), "fd-garcia");
  const bearer = await token(request, env.tenant(), "fd-garcia");
  const patient = await api<{ id: string }>(request, bearer, "POST", "/patients", {
    firstName: "Émilie", lastName: "Du Châtelet", dateOfBirth: "1706-12-17",
  });
  const start = new Date(Date.now() + 10 * 60_000);
  const appt = await api<{ id: string }>(request, bearer, "POST", "/appointments", {
    patientId: patient.id, providerId: "dr-okafor", locationId: "loc-main",
    scheduledStart: start.toISOString(), scheduledEnd: new Date(start.getTime() + 30 * 60_000).toISOString(),
  });
  await expect(row(desk, "data-appointment", appt.id)).toBeVisible();

  const form = admin.getByRole("form", { name: "Register a kiosk" });
  await form.getByLabel("Kiosk id").fill("k-lobby");
  await form.getByLabel("Kiosk name").fill("Main lobby");
  await form.getByLabel("Location").selectOption("loc-main");
  await form.getByRole("button", { name: "Register" }).click();
  const code = (await admin.locator("[data-enrollment-code]").textContent())!.trim();
  expect(code).toMatch(/^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/);
  await expect(admin.getByRole("img", { name: /QR code/ })).toBeVisible();

  const context = await browser.newContext({
    baseURL: env.baseUrl(), viewport: { width: 800, height: 1000 }, timezoneId: "UTC", locale: "en-GB",
  });
  kiosk = await context.newPage();
  kiosk.on("pageerror", (err) => console.error("[kiosk] page error:", err.message));
  await kiosk.goto("/kiosk");
  await kiosk.getByLabel("Enrollment code").fill(code.toLowerCase());
  await kiosk.getByRole("button", { name: "Enroll" }).click();
  await expect(kiosk.getByRole("status")).toHaveText("Ready");
  await expect(kiosk.locator(".kiosk-head")).toContainText("Main lobby");

  // The stack issues 30-second kiosk credentials: the kiosk renews them and
  // reconnects on the same client id before asking.
  const renewal = await kiosk.waitForResponse((r) => r.url().endsWith("/kiosks/credentials"), { timeout: 60_000 });
  expect(renewal.status()).toBe(200);
  await expect(kiosk.getByRole("status")).toHaveText("Ready");

  // A wrong birth date: the kiosk only says to see the front desk.
  await answer(kiosk, "Du Châtelet", "1706-12-18");
  await expect(kiosk.getByRole("heading", { name: "Please see the front desk" })).toBeVisible();
  await expect(kiosk.locator("[data-outcome]")).toHaveAttribute("data-outcome", "no_match");
  await kiosk.getByRole("button", { name: "Done" }).click();

  await answer(kiosk, "du chatelet", "1706-12-17");
  await expect(kiosk.getByRole("heading", { name: "You are checked in, Émilie D." })).toBeVisible();
  await expect(kiosk.locator("[data-outcome]")).toContainText("with Dr. Ada Okafor");

  const seen = row(desk, "data-appointment", appt.id);
  await expect(seen.locator(".status")).toHaveText("checked in");
  await expect(seen).toHaveAttribute("data-changed", "true");
  await expect(toast(desk, "Checked in at the kiosk")).toContainText("Main lobby");
  await desk.screenshot({ path: `${env.artifacts()}/kiosk-desk.png`, fullPage: true });

  // The kiosk resets itself and shows nothing of the patient any more.
  await expect(kiosk.getByRole("button", { name: "Check in" })).toBeVisible({ timeout: 20_000 });
  await expect(kiosk.getByText("Émilie")).toHaveCount(0);
  // It stays enrolled across a reload.
  await kiosk.reload();
  await expect(kiosk.getByRole("status")).toHaveText("Ready");

  // The admin sees it, then disables it: the kiosk drops back to enrollment.
  const listed = admin.locator('[data-kiosk="k-lobby"]');
  await admin.reload();
  await expect(listed.locator(".status")).toHaveText("enrolled");
  await listed.getByRole("button", { name: "Disable" }).click();
  await expect(listed.locator(".status")).toHaveText("disabled");
  await expect(kiosk.getByLabel("Enrollment code")).toBeVisible({ timeout: 30_000 });
});
