import assert from "node:assert/strict";
import { UnauthorizedError } from "../../src/errors.ts";
import { type Digest, digestOf } from "../../src/oci/digest.ts";
import { encodeJson, OCI_MANIFEST_MEDIA_TYPE } from "../../src/oci/manifest.ts";
import { basicAuth, parseChallenges } from "../../src/registry/_auth.ts";
import {
  RegistryClient,
  type RegistryClientOptions,
  type Repository,
} from "../../src/registry/client.ts";
import {
  type Credential,
  DockerConfig,
} from "../../src/registry/credentials.ts";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
} from "../../src/spec/media_types.ts";
import { startRegistry, TOKEN_SERVICE } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

/** A request the client sent, to the registry or to the token service. */
interface Sent {
  method: string;
  url: URL;
  headers: Headers;
  body: string;
  status: number;
}

function recordingClient(
  credential: Credential | undefined | (() => Promise<Credential | undefined>),
  options: RegistryClientOptions = {},
): { client: RegistryClient; sent: Sent[] } {
  const sent: Sent[] = [];
  const credentials = typeof credential === "function"
    ? credential
    : () => Promise.resolve(credential);
  const client = new RegistryClient({
    plainHttp: true,
    retryDelay: 1,
    credentials,
    ...options,
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      sent.push({
        method: init?.method ?? "GET",
        url: new URL(String(input)),
        headers: new Headers(init?.headers),
        body: init?.body instanceof URLSearchParams ? String(init.body) : "",
        status: res.status,
      });
      return res;
    },
  });
  return { client, sent };
}

function opener(bytes: Uint8Array) {
  return () =>
    Promise.resolve(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bytes.slice());
          c.close();
        },
      }),
    );
}

/** Uploads a config and a kernel and tags a manifest over them. */
async function pushImage(
  client: RegistryClient,
  repo: Repository,
  tag: string,
): Promise<{ digest: Digest; kernel: Digest }> {
  const config = encodeJson({ commandLine: tag });
  const kernel = crypto.getRandomValues(new Uint8Array(512));
  const kernelDigest = digestOf(kernel);
  await client.uploadBlob(repo, { ...config, open: opener(config.bytes) });
  await client.uploadBlob(repo, {
    ...{ digest: kernelDigest, size: kernel.byteLength },
    open: opener(kernel),
  });
  const manifest = encodeJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: {
      mediaType: CONFIG_MEDIA_TYPE,
      digest: config.digest,
      size: config.size,
    },
    layers: [{
      mediaType: LAYER_MEDIA_TYPES.kernel,
      digest: kernelDigest,
      size: kernel.byteLength,
    }],
  });
  await client.putManifest(repo, {
    tagOrDigest: tag,
    bytes: manifest.bytes,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
  });
  return { digest: manifest.digest, kernel: kernelDigest };
}

/** Writes `docker-credential-<name>` into `dir` as a shell script. */
async function writeHelper(
  dir: string,
  name: string,
  script: string,
): Promise<void> {
  const path = `${dir}/docker-credential-${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${script}\n`);
  await Deno.chmod(path, 0o755);
}

async function configWith(
  dir: string,
  data: unknown,
): Promise<DockerConfig> {
  const path = `${dir}/config.json`;
  await Deno.writeTextFile(path, JSON.stringify(data));
  const PATH = `${dir}:${Deno.env.get("PATH") ?? ""}`;
  return await DockerConfig.load({
    path,
    env: (name) => name === "PATH" ? PATH : undefined,
  });
}

Deno.test("parseChallenges() reads Bearer and Basic challenges with quoted parameters", () => {
  const [bearer, basic] = parseChallenges(
    'Bearer realm="https://auth.example/token",service="registry.example",' +
      'scope="repository:a/b:pull,push", Basic realm="say \\"hi\\""',
  );
  assert.deepEqual(bearer, {
    scheme: "bearer",
    params: {
      realm: "https://auth.example/token",
      service: "registry.example",
      scope: "repository:a/b:pull,push",
    },
  });
  assert.deepEqual(basic, { scheme: "basic", params: { realm: 'say "hi"' } });
  assert.deepEqual(parseChallenges(""), []);
});

Deno.test("basicAuth() encodes the user and password as UTF-8", () => {
  assert.equal(basicAuth("ada", "pä:ss"), `Basic ${btoa("ada:p\xc3\xa4:ss")}`);
});

Deno.test("Basic auth against a real registry", async (t) => {
  await using reg = await startRegistry({ auth: "basic" });
  const good = { username: reg.username, password: reg.password };

  await t.step(
    "credentials are sent after the first challenge, then up front",
    async () => {
      const { client, sent } = recordingClient(good);
      const repo = { registry: reg.host, repository: "basic/a" };
      const { digest } = await pushImage(client, repo, "1");
      assert.equal(
        (await client.getManifest(repo, "1")).descriptor.digest,
        digest,
      );
      assert.equal(
        sent.filter((s) => s.status === 401).length,
        1,
        "one challenge for the whole session",
      );
      const authorized = sent.filter((s) => s.headers.has("authorization"));
      assert.equal(authorized.length, sent.length - 1);
      assert.equal(
        authorized[0]!.headers.get("authorization"),
        basicAuth(reg.username, reg.password),
      );
    },
  );

  await t.step("without credentials the error says to log in", async () => {
    const { client, sent } = recordingClient(undefined);
    await assert.rejects(
      client.getManifest({ registry: reg.host, repository: "basic/a" }, "1"),
      (e: unknown) =>
        e instanceof UnauthorizedError && e.status === 401 &&
        e.message ===
          `Authentication failed for ${reg.host}: the registry requires credentials, log in first`,
    );
    assert.equal(sent.length, 1);
  });

  await t.step(
    "a wrong password fails after two requests and is never quoted",
    async () => {
      const password = "wrong-password-1234";
      const { client, sent } = recordingClient({
        username: reg.username,
        password,
      });
      await assert.rejects(
        client.getManifest({ registry: reg.host, repository: "basic/a" }, "1"),
        (e: unknown) => {
          assert.ok(e instanceof UnauthorizedError);
          assert.match(
            e.message,
            new RegExp(`^Authentication failed for ${reg.host}: `),
          );
          assert.ok(!e.message.includes(password));
          assert.ok(!e.message.includes(btoa(`${reg.username}:${password}`)));
          return true;
        },
      );
      assert.equal(sent.length, 2);
    },
  );

  await t.step(
    "credentials come from a credential helper on the config's PATH",
    async () => {
      await withTempDir(async (dir) => {
        await writeHelper(
          dir,
          "works",
          `read server\necho '{"ServerURL":"'"$server"'","Username":"${reg.username}","Secret":"${reg.password}"}'`,
        );
        const config = await configWith(dir, { credsStore: "works" });
        const { client } = recordingClient(() => config.get(reg.host));
        const m = await client.getManifest(
          { registry: reg.host, repository: "basic/a" },
          "1",
        );
        assert.equal(m.kind, "manifest");
      });
    },
  );

  await t.step(
    "a credsStore helper that is not installed is named in the error",
    async () => {
      await withTempDir(async (dir) => {
        const config = await configWith(dir, { credsStore: "not-there" });
        const { client } = recordingClient(() => config.get(reg.host));
        await assert.rejects(
          client.getManifest(
            { registry: reg.host, repository: "basic/a" },
            "1",
          ),
          /Credential helper docker-credential-not-there is not installed/,
        );
      });
    },
  );

  await t.step(
    "a credential helper that fails is named in the error",
    async () => {
      await withTempDir(async (dir) => {
        await writeHelper(dir, "broken", "echo 'keychain locked' >&2\nexit 3");
        const config = await configWith(dir, {
          credHelpers: { [reg.host]: "broken" },
        });
        const { client } = recordingClient(() => config.get(reg.host));
        await assert.rejects(
          client.getManifest(
            { registry: reg.host, repository: "basic/a" },
            "1",
          ),
          (e: unknown) =>
            e instanceof Error &&
            e.message ===
              `Credential helper docker-credential-broken failed to get credentials for ${reg.host}: keychain locked`,
        );
      });
    },
  );
});

Deno.test("Bearer token auth against a real registry", async (t) => {
  await using reg = await startRegistry({ auth: "token" });
  const good = { username: reg.username, password: reg.password };
  const repo = { registry: reg.host, repository: "token/a" };
  const { client, sent } = recordingClient(good);
  const tokenRequests = () =>
    sent.filter((s) => s.url.href.startsWith(reg.tokenRealm!));

  await t.step(
    "reads get a pull token and writes a pull,push token",
    async () => {
      await client.headManifest(repo, "1");
      await pushImage(client, repo, "1");
      const scopes = tokenRequests().map((s) =>
        s.url.searchParams.get("scope")
      );
      assert.deepEqual(scopes, [
        "repository:token/a:pull",
        "repository:token/a:pull,push",
      ]);
      for (const s of tokenRequests()) {
        assert.equal(s.method, "GET");
        assert.equal(s.url.searchParams.get("service"), TOKEN_SERVICE);
        assert.equal(
          s.headers.get("authorization"),
          basicAuth(reg.username, reg.password),
        );
      }
    },
  );

  await t.step(
    "cached tokens are reused: a second operation fetches none",
    async () => {
      const before = reg.tokenRequests;
      const { kernel } = await pushImage(client, repo, "2");
      await client.getManifest(repo, "2");
      const res = await client.getBlob(repo, kernel);
      await res.body?.cancel();
      assert.equal(reg.tokenRequests, before);
    },
  );

  await t.step(
    "a cross-repository mount asks for pull on the source too",
    async () => {
      const { client, sent } = recordingClient(good);
      const m = await client.getManifest(repo, "1");
      assert.equal(m.kind, "manifest");
      const kernel = m.kind === "manifest" ? m.manifest.layers[0]!.digest : "";
      const other = { registry: reg.host, repository: "token/b" };
      assert.equal(
        await client.mountBlob(other, {
          digest: kernel as Digest,
          from: repo.repository,
        }),
        true,
      );
      const last = sent.filter((s) => s.url.href.startsWith(reg.tokenRealm!))
        .at(-1)!;
      assert.deepEqual(last.url.searchParams.getAll("scope"), [
        "repository:token/b:pull,push",
        "repository:token/a:pull",
      ]);
      assert.equal(await client.hasBlob(other, kernel as Digest), true);
    },
  );

  await t.step(
    "an identity token from the Docker config is exchanged by a refresh_token POST",
    async () => {
      const url = new URL(reg.tokenRealm!);
      url.searchParams.set("service", TOKEN_SERVICE);
      url.searchParams.set("offline_token", "true");
      const res = await fetch(url, {
        headers: { authorization: basicAuth(reg.username, reg.password) },
      });
      const { refresh_token: refreshToken } = await res.json();
      assert.equal(typeof refreshToken, "string");
      await withTempDir(async (dir) => {
        const config = await configWith(dir, {
          auths: { [reg.host]: { identitytoken: refreshToken } },
        });
        const { client, sent } = recordingClient(() => config.get(reg.host));
        assert.equal((await client.getManifest(repo, "1")).kind, "manifest");
        const toRealm = sent.filter((s) =>
          s.url.href.startsWith(reg.tokenRealm!)
        );
        assert.equal(toRealm.length, 1);
        assert.equal(toRealm[0]!.method, "POST");
        assert.equal(toRealm[0]!.headers.get("authorization"), null);
        const form = new URLSearchParams(toRealm[0]!.body);
        assert.equal(form.get("grant_type"), "refresh_token");
        assert.equal(form.get("refresh_token"), refreshToken);
        assert.equal(form.get("service"), TOKEN_SERVICE);
        assert.equal(form.get("scope"), "repository:token/a:pull");
      });
    },
  );

  await t.step("an unknown identity token fails authentication", async () => {
    const { client } = recordingClient({ identityToken: "not-a-real-token" });
    await assert.rejects(
      client.getManifest(repo, "1"),
      (e: unknown) =>
        e instanceof UnauthorizedError &&
        e.message.startsWith(`Authentication failed for ${reg.host}: `) &&
        !e.message.includes("not-a-real-token"),
    );
  });

  await t.step(
    "a wrong password fails with one token request and is never quoted",
    async () => {
      const password = "wrong-password-5678";
      const { client, sent } = recordingClient({
        username: reg.username,
        password,
      });
      const before = reg.tokenRequests;
      await assert.rejects(client.getManifest(repo, "1"), (e: unknown) => {
        assert.ok(e instanceof UnauthorizedError);
        assert.equal(
          e.message,
          `Authentication failed for ${reg.host}: the registry refused the credentials, check them (login again)`,
        );
        return true;
      });
      assert.equal(reg.tokenRequests - before, 1);
      assert.equal(sent.length, 2, "one registry request, one token request");
    },
  );

  await t.step("anonymous access is told to log in", async () => {
    const { client } = recordingClient(undefined);
    await assert.rejects(
      client.getManifest(repo, "1"),
      (e: unknown) =>
        e instanceof UnauthorizedError &&
        e.message ===
          `Authentication failed for ${reg.host}: credentials are required, log in first`,
    );
  });
});
