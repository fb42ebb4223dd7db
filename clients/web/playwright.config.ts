import { defineConfig } from "@playwright/test";

// Driven by tests/web/test_browser.py, which starts the real broker, database and api
// and passes their addresses. Debian's Chromium; Playwright never downloads a browser.
export default defineConfig({
  testDir: "e2e",
  workers: 1,
  fullyParallel: false,
  forbidOnly: true,
  retries: 0,
  timeout: 180_000,
  expect: { timeout: 30_000 },
  reporter: [["list"]],
  outputDir: process.env.HUB_E2E_ARTIFACTS ? `${process.env.HUB_E2E_ARTIFACTS}/results` : "test-results",
  use: {
    baseURL: process.env.HUB_E2E_BASE_URL,
    browserName: "chromium",
    headless: true,
    launchOptions: { executablePath: process.env.HUB_E2E_CHROMIUM ?? "/usr/bin/chromium" },
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
  },
});
