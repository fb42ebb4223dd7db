// Scenarios of the other domains: demographics, payments and balances, claims and their
// denial alert, and a concerning biopsy result that stays until acknowledged. They need
// the routes of CONTRACT.md section 6 beyond appointments (pytest marker `domains`).
import { expect, test, type Page } from "@playwright/test";

import { api, env, openWindow, token } from "./support";

// Not serial: each scenario reports on its own while some routes are still missing.

let desk: Page; // tenant A, front desk
let billing: Page; // tenant A, billing
let doctor: Page; // tenant A, provider
let other: Page; // tenant B, billing
let patientId = "";

const alert = (page: Page, title: string) => page.getByRole("alert").filter({ hasText: title });

test.beforeAll(async ({ browser, request }) => {
  const bearer = await token(request, env.tenant(), "fd-garcia");
  const [patient] = await api<{ id: string }[]>(request, bearer, "GET", "/patients?q=lovelace");
  patientId = patient!.id;
  desk = await openWindow(browser, env.tenant(), "fd-garcia", `#/patients/${patientId}`);
  billing = await openWindow(browser, env.tenant(), "bl-chen", "#/billing");
  doctor = await openWindow(browser, env.tenant(), "dr-okafor", "#/biopsies");
  other = await openWindow(browser, env.otherTenant(), "bl-chen", "#/billing");
});

test.afterAll(async () => {
  for (const page of [desk, billing, doctor, other]) await page?.context().close();
});

test("a demographics update shows in the other window's chart", async ({ browser }) => {
  const chart = await openWindow(browser, env.tenant(), "dr-okafor", `#/patients/${patientId}`);
  try {
    const form = desk.getByRole("form", { name: "Edit demographics" });
    await form.getByLabel("Last name").fill("Lovelace-King");
    await form.getByRole("button", { name: "Save demographics" }).click();
    const card = chart.getByLabel("Demographics", { exact: true });
    await expect(card.locator('[data-field="name"]')).toHaveText("Ada Lovelace-King");
    await expect(card).toHaveAttribute("data-changed", "true");
    await expect(chart.locator(".hub-toast").filter({ hasText: "Demographics updated" })).toBeVisible();
  } finally {
    await chart.context().close();
  }
});

test("a payment changes the balance shown in the chart", async ({ request }) => {
  const bearer = await token(request, env.tenant(), "bl-chen");
  const before = await api<{ balanceCents: number }>(request, bearer, "GET", `/patients/${patientId}`);
  const form = billing.getByRole("form", { name: "Post a payment" });
  await form.getByLabel("Patient").selectOption(patientId);
  await form.getByLabel("Payment amount").fill("25.00");
  await form.getByRole("button", { name: "Post payment" }).click();
  await expect(billing.getByLabel("Payments").locator("li").first()).toContainText("$25.00");
  await expect
    .poll(async () => (await api<{ balanceCents: number }>(request, bearer, "GET", `/patients/${patientId}`)).balanceCents)
    .not.toBe(before.balanceCents);
  const after = await api<{ balanceCents: number }>(request, bearer, "GET", `/patients/${patientId}`);
  const shown = (after.balanceCents / 100).toLocaleString("en-US", { style: "currency", currency: "USD" });
  await expect(desk.getByLabel("Balance").locator('[data-field="balance"]')).toHaveText(shown);
  await expect(desk.getByLabel("Balance")).toHaveAttribute("data-changed", "true");
});

test("a claim is submitted, then denied: every billing window updates and the denial is an alert", async ({ browser }) => {
  const second = await openWindow(browser, env.tenant(), "bl-chen", "#/billing");
  try {
    const form = billing.getByRole("form", { name: "New claim" });
    await form.getByLabel("Patient").selectOption(patientId);
    await form.getByLabel("Claim amount").fill("120.00");
    const [answer] = await Promise.all([
      billing.waitForResponse((r) => r.url().endsWith("/claims") && r.request().method() === "POST"),
      form.getByRole("button", { name: "Create claim" }).click(),
    ]);
    const claim = ((await answer.json()) as { id: string }).id;
    const row = (page: Page) => page.locator(`[data-claim="${claim}"]`);
    await expect(row(second).locator(".status")).toHaveText("draft");
    await row(billing).getByRole("button", { name: "Submit" }).click();
    await expect(row(second).locator(".status")).toHaveText("submitted");
    await billing.getByLabel("Denial reason").fill("Missing modifier");
    await row(billing).getByRole("button", { name: "Deny" }).click();
    await expect(row(second).locator(".status")).toHaveText("denied");
    await expect(row(second)).toContainText("Missing modifier");
    const denial = alert(second, "denied");
    await expect(denial).toBeVisible();
    await denial.getByRole("button", { name: "Acknowledge" }).click();
    await expect(alert(second, "denied")).toHaveCount(0);
    await expect(alert(billing, "denied")).toHaveCount(0);
  } finally {
    await second.context().close();
  }
});

test("a concerning biopsy result is a critical alert that stays until acknowledged", async ({ request }) => {
  const lab = await token(request, env.tenant(), "dr-lindqvist");
  const biopsy = await api<{ id: string }>(request, lab, "POST", "/biopsies", {
    patientId, orderingProviderId: "dr-okafor", site: "Shave biopsy, left forearm",
  });
  await expect(doctor.locator(`[data-biopsy="${biopsy.id}"]`)).toBeVisible();
  await api(request, lab, "POST", `/biopsies/${biopsy.id}/result`, { diagnosis: "Malignant melanoma", concerning: true });
  const critical = alert(doctor, "Critical biopsy result");
  await expect(critical).toBeVisible();
  await expect(critical).toContainText("Malignant melanoma");
  // Not a toast: it survives a reload (GET /notifications) until someone acknowledges it.
  await doctor.reload();
  await expect(alert(doctor, "Critical biopsy result")).toBeVisible();
  await alert(doctor, "Critical biopsy result").getByRole("button", { name: "Acknowledge" }).click();
  await expect(alert(doctor, "Critical biopsy result")).toHaveCount(0);
  const open = await api<{ notifications: { entityId: string; acknowledgedAt: string | null }[] }>(
    request, await token(request, env.tenant(), "dr-okafor"), "GET", "/notifications",
  );
  expect(open.notifications.filter((n) => n.entityId === biopsy.id && n.acknowledgedAt === null)).toEqual([]);
});

test("reviewing a biopsy acknowledges its alert", async ({ request }) => {
  const lab = await token(request, env.tenant(), "dr-lindqvist");
  const biopsy = await api<{ id: string }>(request, lab, "POST", "/biopsies", {
    patientId, orderingProviderId: "dr-okafor", site: "Punch biopsy, scalp",
  });
  await api(request, lab, "POST", `/biopsies/${biopsy.id}/result`, { diagnosis: "Squamous cell carcinoma", concerning: true });
  await expect(alert(doctor, "Critical biopsy result")).toContainText("Squamous cell carcinoma");
  await doctor.locator(`[data-biopsy="${biopsy.id}"]`).getByRole("button", { name: "Review" }).click();
  await expect(doctor.locator(`[data-biopsy="${biopsy.id}"] .status`)).toHaveText("reviewed");
  await expect(alert(doctor, "Critical biopsy result")).toHaveCount(0);
});

test("the other tenant's window shows none of it", async ({ request }) => {
  // Tenant B has its own seeded claims, and shows exactly those. Its payment feed shows
  // payments posted while it is open: none of tenant A's.
  const bearer = await token(request, env.otherTenant(), "bl-chen");
  const claims = await api<{ id: string }[]>(request, bearer, "GET", "/claims");
  await expect(other.locator("[data-claim]")).toHaveCount(claims.length);
  for (const claim of claims) await expect(other.locator(`[data-claim="${claim.id}"]`)).toHaveCount(1);
  await expect(other.getByLabel("Payments").locator("li")).toHaveCount(0);
  await expect(other.getByRole("alert")).toHaveCount(0);
  await expect(other.locator(".hub-toast")).toHaveCount(0);
});
