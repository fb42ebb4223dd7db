// Two windows of ONE user: a window never toasts its own change, and toasts the other
// window's (events carry the connection that made them, not only the user). Then the
// RealtimeWrapper of the live board: it highlights the changed child. (Its refetch after
// a gap beyond replay is covered by the client's unit tests: a browser scenario for it
// raced the relay's reconnect against the windows' and was removed.)
import { expect, test, type Page } from "@playwright/test";

import { broker, env, openWindow, row, toast } from "./support";

test.describe.configure({ mode: "serial" });

let first: Page; // fd-garcia, window A
let second: Page; // fd-garcia, window B
let gapped: Page; // fd-garcia, window C: may replay at most 2 events

const wrapper = (page: Page) => page.locator(".hub-realtime");
const boardItem = (page: Page, id: string) => page.locator(`[data-board="${id}"]`);

async function showBoard(page: Page): Promise<void> {
  await page.evaluate(() => (location.hash = "#/board"));
  await expect(wrapper(page)).toHaveAttribute("data-status", "live");
  await expect(wrapper(page).locator(".hub-indicator")).toHaveText("Live");
  await expect(page.locator("[data-board]").first()).toBeVisible();
}

test.beforeAll(async ({ browser }) => {
  first = await openWindow(browser, env.tenant(), "fd-garcia");
  second = await openWindow(browser, env.tenant(), "fd-garcia");
  gapped = await openWindow(browser, env.tenant(), "fd-garcia", "?maxReplay=2#/schedule");
  const ids = await Promise.all([first, second, gapped].map((p) => p.evaluate(() => window.hubDemo!.client.connectionId)));
  expect(new Set(ids).size).toBe(3); // one user, three connections
});

test.afterAll(async ({ request }) => {
  await broker(request, "start").catch(() => undefined);
  for (const page of [first, second, gapped]) await page?.context().close();
});

test("a change made in window A toasts in window B of the same user, and not in A", async () => {
  const form = first.getByRole("form", { name: "Book an appointment" });
  await form.getByLabel("Time").fill("21:15");
  const patient = (await form.getByLabel("Patient").locator("option:checked").textContent())!;
  const [answer] = await Promise.all([
    first.waitForResponse((r) => r.url().endsWith("/appointments") && r.request().method() === "POST"),
    form.getByRole("button", { name: "Book" }).click(),
  ]);
  expect(answer.status()).toBe(201);
  // The write named window A's connection.
  const named = answer.request().headers()["x-hub-connection"];
  expect(named).toBe(await first.evaluate(() => window.hubDemo!.client.connectionId));
  const id = ((await answer.json()) as { id: string }).id;

  await expect(row(second, "data-appointment", id)).toHaveAttribute("data-changed", "true");
  await expect(toast(second, "New appointment")).toContainText(patient);
  // A applied the same event (its row comes from it, and is highlighted) without a toast.
  await expect(row(first, "data-appointment", id)).toHaveAttribute("data-changed", "true");
  await expect(first.locator(".hub-toast")).toHaveCount(0);
});

test("the wrapper highlights the child that changed and toasts only the other window", async () => {
  for (const page of [first, second, gapped]) await showBoard(page);
  const item = second.locator("[data-board].status-scheduled").first();
  const id = (await item.getAttribute("data-board"))!;
  const answer = await first.evaluate(
    (appointment) => window.hubDemo!.client.api.post<{ status: string }>(`/appointments/${appointment}/status`, { status: "checked_in" }),
    id,
  );
  expect(answer.status).toBe("checked_in");
  for (const page of [first, second]) {
    await expect(boardItem(page, id)).toHaveAttribute("data-changed", "true");
    await expect(boardItem(page, id).locator(".status")).toHaveText("checked in");
  }
  await expect(toast(second, "Patient checked in")).toBeVisible();
  await expect(toast(first, "Patient checked in")).toHaveCount(0);
  // Another child did not change: no highlight.
  const ids = await second.locator("[data-board]").evaluateAll((els) => els.map((e) => e.getAttribute("data-board")));
  const other = ids.find((x) => x !== id)!;
  await expect(boardItem(second, other)).not.toHaveAttribute("data-changed", "true");
  // The highlight goes away again after a few seconds.
  await expect(boardItem(second, id)).not.toHaveAttribute("data-changed", "true");
});
