// What the demo views load from the api, and small shared hooks.

import { type HubApi } from "../core";
import { useHub, useHubQuery } from "../react";

export interface Patient {
  id: string;
  firstName: string;
  lastName: string;
  dateOfBirth: string;
  sex: string | null;
  phone: string | null;
  email: string | null;
  balanceCents: number;
  version: number;
}

export interface Staff {
  id: string;
  name: string;
  isProvider: boolean;
}

export interface Location {
  id: string;
  name: string;
}

/** A list route of a domain: a bare array, or `{"<key>": [...]}`. */
export async function loadList<T>(api: HubApi, path: string, key: string): Promise<T[]> {
  const body = await api.get<unknown>(path);
  if (Array.isArray(body)) return body as T[];
  return ((body as Record<string, unknown>)[key] as T[] | undefined) ?? [];
}

export function useDirectory() {
  const hub = useHub();
  const { data } = useHubQuery(
    async () => {
      const [patients, providers, locations] = await Promise.all([
        hub.api.get<Patient[]>("/patients?limit=200"),
        hub.api.get<Staff[]>("/providers"),
        hub.api.get<Location[]>("/locations"),
      ]);
      return { patients, providers, locations };
    },
    [],
  );
  return data ?? { patients: [], providers: [], locations: [] };
}

export const fullName = (p: { firstName: string; lastName: string }) => `${p.firstName} ${p.lastName}`;
