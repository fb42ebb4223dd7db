import { describe, expect, it } from "vitest";

import { ApiError, HubApi } from "../src/core/api";

function answering(status: number, headers: Record<string, string> = {}): HubApi {
  const body = JSON.stringify({ error: status === 429 ? "rate_limited" : "error", message: "no" });
  const fetchImpl = (async () => new Response(body, { status, headers })) as unknown as typeof fetch;
  return new HubApi({ token: () => "jwt", fetch: fetchImpl });
}

async function failure(api: HubApi): Promise<ApiError> {
  try {
    await api.credentials();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected an ApiError");
}

describe("HubApi errors", () => {
  it("carries the Retry-After of a 429 and of a 503, in milliseconds", async () => {
    const limited = await failure(answering(429, { "retry-after": "7" }));
    expect(limited).toMatchObject({ status: 429, code: "rate_limited", retryAfterMs: 7_000 });
    expect((await failure(answering(503, { "retry-after": "2" }))).retryAfterMs).toBe(2_000);
  });

  it("has none without the header, or for other statuses", async () => {
    expect((await failure(answering(429))).retryAfterMs).toBeNull();
    expect((await failure(answering(409, { "retry-after": "7" }))).retryAfterMs).toBeNull();
  });
});
