import assert from "node:assert/strict";
import { peerPath } from "./peers.ts";
import {
  REGISTRY_IMPLEMENTATION_ENV,
  REGISTRY_IMPLEMENTATIONS,
  startRegistry,
  type TestRegistry,
  TOKEN_SERVICE,
} from "./registry.ts";
import { withTempDir } from "./temp.ts";

const BLOB = new TextEncoder().encode("hello, ironcore\n");

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256:${
    Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

function basic(username: string, password: string): string {
  return `Basic ${btoa(`${username}:${password}`)}`;
}

/** Uploads `BLOB` monolithically to `repo` and checks it with HEAD. */
async function pushAndHeadBlob(
  registry: TestRegistry,
  repo: string,
  authorization?: string,
): Promise<void> {
  const headers: Record<string, string> = authorization === undefined
    ? {}
    : { authorization };
  const digest = await pushBlob(registry, repo, headers);
  const head = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, {
    method: "HEAD",
    headers,
  });
  await head.body?.cancel();
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(BLOB.length));
  assert.equal(head.headers.get("docker-content-digest"), digest);
}

/** Uploads `BLOB` monolithically to `repo`; returns its digest. */
async function pushBlob(
  registry: TestRegistry,
  repo: string,
  headers: Record<string, string>,
): Promise<string> {
  const digest = await sha256(BLOB);

  const start = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, {
    method: "POST",
    headers,
  });
  await start.body?.cancel();
  assert.equal(start.status, 202);
  const location = start.headers.get("location");
  assert.ok(location, "upload POST returns a Location");

  const upload = new URL(location, registry.url);
  upload.searchParams.set("digest", digest);
  const put = await fetch(upload, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/octet-stream" },
    body: BLOB,
  });
  await put.body?.cancel();
  assert.equal(put.status, 201);
  return digest;
}

async function getToken(
  registry: TestRegistry,
  scopes: string[],
  authorization: string | undefined,
): Promise<Response> {
  assert.ok(registry.tokenRealm);
  const url = new URL(registry.tokenRealm);
  url.searchParams.set("service", TOKEN_SERVICE);
  for (const scope of scopes) url.searchParams.append("scope", scope);
  return await fetch(url, {
    headers: authorization === undefined ? {} : { authorization },
  });
}

async function tokenFor(
  registry: TestRegistry,
  scopes: string[],
): Promise<string> {
  const res = await getToken(
    registry,
    scopes,
    basic(registry.username, registry.password),
  );
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(typeof body.token, "string");
  assert.equal(body.access_token, body.token);
  return body.token;
}

/** Stops the registry and checks that its directory and port are gone. */
async function assertStops(registry: TestRegistry): Promise<void> {
  const port = Number(new URL(registry.url).port);
  await registry.stop();
  await assert.rejects(Deno.stat(registry.dir), Deno.errors.NotFound);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
  // A second stop() is harmless, so `await using` may follow an explicit one.
  await registry.stop();
}

Deno.test("startRegistry() without auth serves /v2/ and stores blobs anonymously", async () => {
  await using registry = await startRegistry();
  assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
  assert.equal(registry.url, `http://${registry.host}`);
  assert.equal(registry.tokenRealm, undefined);

  const res = await fetch(`${registry.url}/v2/`);
  await res.body?.cancel();
  assert.equal(res.status, 200);
  assert.equal(
    res.headers.get("docker-distribution-api-version"),
    "registry/2.0",
  );

  await pushAndHeadBlob(registry, "ironcore/none");
  await assertStops(registry);
});

Deno.test("startRegistry() runs the implementation it is asked for, by default the one the environment names", async () => {
  const binaries = {
    distribution2: "/usr/bin/docker-registry",
    distribution3: peerPath("distribution-registry"),
  };
  for (const implementation of REGISTRY_IMPLEMENTATIONS) {
    await using registry = await startRegistry({ implementation });
    assert.equal(registry.implementation, implementation);
    assert.equal(
      await Deno.realPath(`/proc/${registry.pid}/exe`),
      await Deno.realPath(binaries[implementation]),
    );
    await pushAndHeadBlob(registry, "ironcore/which");
  }
  await using registry = await startRegistry();
  assert.equal(
    registry.implementation,
    Deno.env.get(REGISTRY_IMPLEMENTATION_ENV) || "distribution2",
  );
});

Deno.test("startRegistry() with blobRedirect sends blob downloads to a blob host that refuses credentials", async () => {
  for (const where of ["another-host", "another-port"] as const) {
    await using registry = await startRegistry({
      auth: "basic",
      blobRedirect: where,
    });
    const blobHost = registry.blobHost;
    assert.ok(blobHost);
    assert.equal(
      new URL(blobHost.url).hostname,
      where === "another-host" ? "localhost" : "127.0.0.1",
    );
    const authorization = basic(registry.username, registry.password);
    const digest = await pushBlob(registry, "ironcore/redirect", {
      authorization,
    });
    const res = await fetch(
      `${registry.url}/v2/ironcore/redirect/blobs/${digest}`,
      { headers: { authorization }, redirect: "manual" },
    );
    await res.body?.cancel();
    assert.equal(res.status, 307);
    const location = res.headers.get("location") ?? "";
    assert.ok(location.startsWith(`${blobHost.url}/`), location);

    const ranged = await fetch(location, { headers: { range: "bytes=7-" } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), "ironcore\n");
    const whole = await fetch(location);
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), BLOB);
    const withCredentials = await fetch(location, {
      headers: { authorization },
    });
    await withCredentials.body?.cancel();
    assert.equal(withCredentials.status, 400);
    assert.deepEqual(
      blobHost.requests.map((r) => [r.method, r.headers.has("authorization")]),
      [["GET", false], ["GET", false], ["GET", true]],
    );
  }
});

Deno.test("startRegistry() runs several registries side by side on different ports", async () => {
  await using a = await startRegistry();
  await using b = await startRegistry();
  assert.notEqual(a.host, b.host);
  assert.notEqual(a.dir, b.dir);
});

Deno.test("startRegistry() with basic auth rejects anonymous requests and accepts the credentials", async () => {
  await using registry = await startRegistry({ auth: "basic" });
  assert.equal(registry.username, "tester");
  assert.ok(registry.password.length >= 16);

  const anonymous = await fetch(`${registry.url}/v2/`);
  await anonymous.body?.cancel();
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Basic /);

  const wrong = await fetch(`${registry.url}/v2/`, {
    headers: { authorization: basic(registry.username, "wrong") },
  });
  await wrong.body?.cancel();
  assert.equal(wrong.status, 401);

  const authorization = basic(registry.username, registry.password);
  const ok = await fetch(`${registry.url}/v2/`, { headers: { authorization } });
  await ok.body?.cancel();
  assert.equal(ok.status, 200);

  await pushAndHeadBlob(registry, "ironcore/basic", authorization);
  await assertStops(registry);
});

Deno.test("startRegistry() with basic auth uses the given username and password", async () => {
  await using registry = await startRegistry({
    auth: "basic",
    username: "alice",
    password: "s3cret pass:word",
  });
  const res = await fetch(`${registry.url}/v2/`, {
    headers: { authorization: basic("alice", "s3cret pass:word") },
  });
  await res.body?.cancel();
  assert.equal(res.status, 200);
});

Deno.test("startRegistry() with token auth challenges with Bearer and accepts tokens from its realm", async () => {
  await using registry = await startRegistry({ auth: "token" });
  assert.ok(registry.tokenRealm);
  assert.equal(registry.tokenRequests, 0);

  const anonymous = await fetch(`${registry.url}/v2/`);
  await anonymous.body?.cancel();
  assert.equal(anonymous.status, 401);
  assert.equal(
    anonymous.headers.get("www-authenticate"),
    `Bearer realm="${registry.tokenRealm}",service="${TOKEN_SERVICE}"`,
  );

  const token = await tokenFor(registry, []);
  const ok = await fetch(`${registry.url}/v2/`, {
    headers: { authorization: `Bearer ${token}` },
  });
  await ok.body?.cancel();
  assert.equal(ok.status, 200);

  const forged = await fetch(`${registry.url}/v2/`, {
    headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` },
  });
  await forged.body?.cancel();
  assert.equal(forged.status, 401);

  const repo = "ironcore/token";
  const challenge = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, {
    method: "POST",
  });
  await challenge.body?.cancel();
  assert.equal(challenge.status, 401);
  // distribution lists the actions in Go map order: "pull,push" or "push,pull".
  const bearer = challenge.headers.get("www-authenticate") ?? "";
  const scope = bearer.match(/,scope="repository:([^"]+):([^":]+)"$/);
  assert.ok(
    bearer.startsWith(
      `Bearer realm="${registry.tokenRealm}",service="${TOKEN_SERVICE}",`,
    ),
    bearer,
  );
  assert.equal(scope?.[1], repo);
  assert.deepEqual(scope?.[2]?.split(",").sort(), ["pull", "push"]);

  const pushToken = await tokenFor(registry, [`repository:${repo}:pull,push`]);
  await pushAndHeadBlob(registry, repo, `Bearer ${pushToken}`);
  assert.equal(registry.tokenRequests, 2);

  await assertStops(registry);
  assert.ok(registry.tokenRealm);
  await assert.rejects(fetch(registry.tokenRealm));
});

Deno.test("startRegistry() with token auth refuses to push with a pull-only token", async () => {
  await using registry = await startRegistry({ auth: "token" });
  const repo = "ironcore/readonly";
  const token = await tokenFor(registry, [`repository:${repo}:pull`]);
  const res = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  await res.body?.cancel();
  assert.equal(res.status, 401);

  const other = await tokenFor(registry, [
    "repository:ironcore/other:pull,push",
  ]);
  const res2 = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, {
    method: "POST",
    headers: { authorization: `Bearer ${other}` },
  });
  await res2.body?.cancel();
  assert.equal(res2.status, 401);
});

Deno.test("the token endpoint rejects anonymous requests and wrong passwords", async () => {
  await using registry = await startRegistry({ auth: "token" });
  const scope = ["repository:ironcore/x:pull"];

  const anonymous = await getToken(registry, scope, undefined);
  await anonymous.body?.cancel();
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Basic /);

  const wrong = await getToken(
    registry,
    scope,
    basic(registry.username, "wrong"),
  );
  await wrong.body?.cancel();
  assert.equal(wrong.status, 401);

  const unknownUser = await getToken(
    registry,
    scope,
    basic("mallory", registry.password),
  );
  await unknownUser.body?.cancel();
  assert.equal(unknownUser.status, 401);

  assert.equal(registry.tokenRequests, 3);
});

Deno.test("the token endpoint answers with expiry, issue time and JWT claims for the requested scopes", async () => {
  await using registry = await startRegistry({
    auth: "token",
    tokenTtlSeconds: 42,
  });
  const res = await getToken(
    registry,
    ["repository:a/b:pull,push", "repository:c:pull"],
    basic(registry.username, registry.password),
  );
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.expires_in, 42);
  assert.ok(Math.abs(Date.parse(body.issued_at) - Date.now()) < 5_000);
  assert.equal(body.refresh_token, undefined);

  const [header, claims] = (body.token as string).split(".").slice(0, 2).map(
    (part) => JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/"))),
  );
  assert.equal(header.alg, "ES256");
  assert.equal(header.x5c.length, 1);
  assert.equal(claims.iss, "test-issuer");
  assert.equal(claims.sub, registry.username);
  assert.equal(claims.aud, TOKEN_SERVICE);
  assert.equal(claims.exp - claims.iat, 42);
  assert.deepEqual(claims.access, [
    { type: "repository", name: "a/b", actions: ["pull", "push"] },
    { type: "repository", name: "c", actions: ["pull"] },
  ]);
});

Deno.test("the token endpoint issues and honours refresh tokens through the OAuth2 form", async () => {
  await using registry = await startRegistry({ auth: "token" });
  assert.ok(registry.tokenRealm);
  const repo = "ironcore/oauth";
  const scope = `repository:${repo}:pull,push`;

  const post = (form: Record<string, string>) =>
    fetch(registry.tokenRealm!, {
      method: "POST",
      body: new URLSearchParams(form),
    });

  const wrong = await post({
    grant_type: "password",
    username: registry.username,
    password: "wrong",
    service: TOKEN_SERVICE,
    scope,
  });
  await wrong.body?.cancel();
  assert.equal(wrong.status, 401);

  const first = await post({
    grant_type: "password",
    username: registry.username,
    password: registry.password,
    service: TOKEN_SERVICE,
    client_id: "ironcore-image",
    access_type: "offline",
    scope,
  });
  assert.equal(first.status, 200);
  const firstBody = await first.json();
  assert.equal(typeof firstBody.access_token, "string");
  assert.equal(typeof firstBody.refresh_token, "string");
  assert.equal(firstBody.scope, scope);

  const refreshed = await post({
    grant_type: "refresh_token",
    refresh_token: firstBody.refresh_token,
    service: TOKEN_SERVICE,
    client_id: "ironcore-image",
    scope,
  });
  assert.equal(refreshed.status, 200);
  const refreshedBody = await refreshed.json();
  await pushAndHeadBlob(registry, repo, `Bearer ${refreshedBody.access_token}`);

  const bogus = await post({
    grant_type: "refresh_token",
    refresh_token: "bogus",
    service: TOKEN_SERVICE,
    scope,
  });
  await bogus.body?.cancel();
  assert.equal(bogus.status, 401);

  const unsupported = await post({ grant_type: "client_credentials" });
  await unsupported.body?.cancel();
  assert.equal(unsupported.status, 400);
});

Deno.test("the token endpoint returns a refresh token for offline_token=true", async () => {
  await using registry = await startRegistry({ auth: "token" });
  assert.ok(registry.tokenRealm);
  const url = new URL(registry.tokenRealm);
  url.searchParams.set("service", TOKEN_SERVICE);
  url.searchParams.set("offline_token", "true");
  url.searchParams.set("client_id", "ironcore-image");
  const res = await fetch(url, {
    headers: { authorization: basic(registry.username, registry.password) },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(typeof body.refresh_token, "string");
});

Deno.test("withTempDir() removes the directory after the callback, even when it throws", async () => {
  const dir = await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a.txt`, "a");
    return dir;
  });
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);

  let seen = "";
  await assert.rejects(
    withTempDir((dir) => {
      seen = dir;
      return Promise.reject(new Error("boom"));
    }),
    /boom/,
  );
  await assert.rejects(Deno.stat(seen), Deno.errors.NotFound);
});
