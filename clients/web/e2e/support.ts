// Shared steps of the browser scenarios. The system under test is started by
// tests/web/test_browser.py, which passes its addresses in HUB_E2E_* variables.
import { expect, type APIRequestContext, type Browser, type Page } from "@playwright/test";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/web/test_browser.py`);
  return value;
}

export const env = {
  baseUrl: () => required("HUB_E2E_BASE_URL"),
  controlUrl: () => required("HUB_E2E_CONTROL_URL"),
  tenant: () => required("HUB_E2E_TENANT"),
  otherTenant: () => required("HUB_E2E_OTHER_TENANT"),
  artifacts: () => required("HUB_E2E_ARTIFACTS"),
};

export type StaffId = "fd-garcia" | "dr-okafor" | "dr-lindqvist" | "bl-chen" | "ad-patel";
const ROLE: Record<StaffId, string> = {
  "fd-garcia": "front_desk", "dr-okafor": "provider", "dr-lindqvist": "provider", "bl-chen": "billing", "ad-patel": "admin",
};

/** A window (its own browser context) signed in as a demo user, showing `hash`. */
export async function openWindow(browser: Browser, tenant: string, user: StaffId, hash = "#/schedule"): Promise<Page> {
  // UTC and en-GB: the clinic day of the api (UTC in the tests) and 24-hour times.
  const context = await browser.newContext({
    baseURL: env.baseUrl(), viewport: { width: 1280, height: 900 }, timezoneId: "UTC", locale: "en-GB",
  });
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error(`[${tenant}/${user}] page error:`, err.message));
  await page.goto(`/${hash}`);
  await page.getByLabel("Tenant").fill(tenant);
  await page.getByLabel("User").selectOption(`${user}|${ROLE[user]}`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expectLive(page);
  return page;
}

export const indicator = (page: Page) => page.locator(".hub-indicator");

export async function expectLive(page: Page): Promise<void> {
  await expect(indicator(page)).toHaveAttribute("data-status", "live");
  await expect(indicator(page)).toHaveText("Live");
}

/** A bearer token for calls the test makes as a user, beside the windows. */
export async function token(request: APIRequestContext, tenant: string, user: StaffId): Promise<string> {
  const res = await request.post(`${env.baseUrl()}/dev/token`, { data: { tenant, user, roles: [ROLE[user]] } });
  expect(res.ok()).toBe(true);
  return ((await res.json()) as { token: string }).token;
}

export async function api<T>(request: APIRequestContext, bearer: string, method: string, path: string, data?: unknown): Promise<T> {
  const res = await request.fetch(`${env.baseUrl()}${path}`, { method, headers: { authorization: `Bearer ${bearer}` }, data });
  expect(res.ok(), `${method} ${path}: ${res.status()} ${await res.text()}`).toBe(true);
  return (await res.json()) as T;
}

export async function broker(request: APIRequestContext, action: "stop" | "start"): Promise<void> {
  const res = await request.post(`${env.controlUrl()}/broker/${action}`);
  expect(res.status()).toBe(204);
}

/** A time of today (UTC, the clinic zone of the tests). */
export function todayAt(hours: number, minutes = 0): Date {
  const d = new Date();
  d.setUTCHours(hours, minutes, 0, 0);
  return d;
}

export const toast = (page: Page, title: string) => page.locator(".hub-toast").filter({ hasText: title });
export const row = (page: Page, attr: string, id: string) => page.locator(`[${attr}="${id}"]`);
