import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` proxies the api (hub up on :8000) so the page stays same-origin.
const api = process.env.HUB_API_URL ?? "http://127.0.0.1:8000";
const routes = ["/dev", "/realtime", "/events", "/patients", "/appointments", "/staff", "/providers",
  "/locations", "/encounters", "/biopsies", "/claims", "/payments", "/prior-auths", "/notifications", "/kiosks"];

export default defineConfig({
  plugins: [react()],
  // MQTT.js is most of the bundle; one chunk is fine for a demo served from loopback.
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 800 },
  server: { proxy: Object.fromEntries(routes.map((r) => [r, api])) },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
