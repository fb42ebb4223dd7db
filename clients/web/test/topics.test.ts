import { describe, expect, it } from "vitest";

import { typesOf } from "../src/core/catalog";
import { eventTopic, filtersFor, matches } from "../src/core/topics";
import { appointmentEvent } from "./fakes";

describe("filtersFor", () => {
  it("subscribes to every action of an entity with one event-level filter", () => {
    expect(filtersFor({ types: typesOf("appointment") })).toEqual(["patients/+/appointment/+/+"]);
  });

  it("narrows to one patient and to single actions", () => {
    expect(filtersFor({ types: ["claim:denied", "prior_auth:denied"], patientId: "p-42" })).toEqual([
      "patients/p-42/claim/+/denied",
      "patients/p-42/prior_auth/+/denied",
    ]);
  });

  it("refuses ids and filters that would change the topic's shape", () => {
    expect(() => filtersFor({ types: ["claim:paid"], patientId: "p/#" })).toThrow(TypeError);
    expect(() => filtersFor({ filters: ["patients/#/x"] })).toThrow(TypeError);
  });

  it("refuses an empty list of types with a clear error", () => {
    expect(() => filtersFor({ types: [] })).toThrow(/at least one event type/);
  });
});

describe("matches", () => {
  it("follows MQTT wildcards", () => {
    const topic = eventTopic(appointmentEvent(3));
    expect(topic).toBe("patients/p-1/appointment/a-3/created");
    expect(matches("patients/+/appointment/+/+", topic)).toBe(true);
    expect(matches("patients/p-1/#", topic)).toBe(true);
    expect(matches("patients/p-2/#", topic)).toBe(false);
    expect(matches("patients/+/appointment/+", topic)).toBe(false); // the snapshot level
  });
});
