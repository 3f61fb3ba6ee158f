import assert from "node:assert/strict";
import { verifyCredentials } from "../../src/registry/login.ts";

Deno.test({
  name:
    "verifyCredentials() without net access throws NotCapable, not a network error",
  permissions: { net: false },
  fn: async () => {
    await assert.rejects(
      verifyCredentials("registry.example.com", {
        username: "ada",
        password: "s3cret",
      }),
      Deno.errors.NotCapable,
    );
  },
});
