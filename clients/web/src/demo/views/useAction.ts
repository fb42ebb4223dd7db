import { useCallback } from "react";

import { ApiError } from "../../core";
import { useToast } from "../../react";

/** Runs an api call from a button; a refusal (409, 422...) becomes an error toast. */
export function useAction() {
  const toast = useToast();
  return useCallback(
    async <T,>(call: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await call();
      } catch (err) {
        const message = err instanceof ApiError ? `${err.status}: ${err.message}` : String(err);
        toast({ title: "Not done", body: message, tone: "error" });
        return undefined;
      }
    },
    [toast],
  );
}
