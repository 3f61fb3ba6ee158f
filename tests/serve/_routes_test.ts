import assert from "node:assert/strict";
import { formatReference } from "../../src/oci/reference.ts";
import { AllowList } from "../../src/serve/_allow_list.ts";
import { HttpError } from "../../src/serve/_reply.ts";
import {
  BOOT_LAYERS,
  type Route,
  routeOf,
  type RouteOptions,
} from "../../src/serve/_routes.ts";

function route(
  path: string,
  options: Partial<RouteOptions> = {},
  method = "GET",
): Route {
  const url = new URL(`http://boot.example${path}`);
  return routeOf(new Request(url, { method }), url, {
    basePath: "",
    allowList: undefined,
    ...options,
  });
}

function image(path: string, options: Partial<RouteOptions> = {}) {
  const r = route(path, options);
  assert.equal(r.kind, "image", path);
  return r as Extract<Route, { kind: "image" }>;
}

function refusal(path: string, status: number, options = {}, method = "GET") {
  assert.throws(
    () => route(path, options, method),
    (e: unknown) => e instanceof HttpError && e.status === status,
    path,
  );
}

Deno.test("routeOf() reads the reference and layer in either spelling", () => {
  for (
    const path of [
      "/v1/images/ghcr.io%2Forg%2Fos%3A1.0/kernel",
      "/v1/images/ghcr.io/org/os:1.0/kernel",
    ]
  ) {
    const r = image(path);
    assert.equal(formatReference(r.ref), "ghcr.io/org/os:1.0");
    assert.equal(r.layer, "kernel");
    assert.equal(r.platform, undefined);
  }
  for (
    const path of [
      "/v1/images/ghcr.io%2Forg%2Fos%3A1.0",
      "/v1/images/ghcr.io/org/os:1.0/",
    ]
  ) {
    assert.equal(image(path).layer, undefined, path);
  }
  for (const layer of BOOT_LAYERS) {
    assert.equal(image(`/v1/images/os/${layer}`).layer, layer);
  }
  const r = image("/v1/images/os/uki?platform=linux/arm64");
  assert.deepEqual(r.platform, { os: "linux", architecture: "arm64" });
});

Deno.test("routeOf() answers the health check and refuses other methods", async () => {
  const health = route("/healthz");
  assert.equal(health.kind, "reply");
  if (health.kind !== "reply") return;
  assert.equal(health.reply.response.status, 200);
  assert.equal(await health.reply.response.text(), "ok\n");
  for (const path of ["/healthz", "/v1/images/os/kernel"]) {
    const r = route(path, {}, "POST");
    assert.equal(r.kind, "reply");
    if (r.kind !== "reply") continue;
    assert.equal(r.reply.response.status, 405);
    assert.equal(r.reply.response.headers.get("allow"), "GET, HEAD");
    await r.reply.response.body?.cancel();
  }
});

Deno.test("routeOf() refuses malformed, unknown and disallowed requests", () => {
  refusal("/other", 404);
  refusal("/boot/v1/images/os/kernel", 404);
  refusal("/v1/images/%E0%A4%A/kernel", 400);
  refusal("/v1/images//kernel", 400);
  refusal("/v1/images/os/vmlinuz", 400);
  refusal("/v1/images/Bad:Ref/kernel", 400);
  refusal("/v1/images/os/kernel?platform=linux/", 400);
  const allowList = new AllowList(["ghcr.io/org"]);
  refusal("/v1/images/ghcr.io/other/os:1/kernel", 403, { allowList });
  assert.equal(
    formatReference(
      image("/v1/images/ghcr.io/org/os:1/kernel", { allowList }).ref,
    ),
    "ghcr.io/org/os:1",
  );
});

Deno.test("routeOf() serves under a base path only", () => {
  const options = { basePath: "/boot" };
  assert.equal(image("/boot/v1/images/os/kernel", options).layer, "kernel");
  assert.equal(route("/boot/healthz", options).kind, "reply");
  refusal("/v1/images/os/kernel", 404, options);
  refusal("/bootx/v1/images/os/kernel", 404, options);
});
