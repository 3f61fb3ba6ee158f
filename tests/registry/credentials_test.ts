import assert from "node:assert/strict";
import { ImageError } from "../../src/errors.ts";
import { join } from "node:path";
import {
  credentialKey,
  defaultDockerConfigPath,
  DockerConfig,
} from "../../src/registry/credentials.ts";

const IS_WINDOWS = Deno.build.os === "windows";

function b64(text: string): string {
  return btoa(text);
}

function envOf(
  vars: Record<string, string>,
): (name: string) => string | undefined {
  return (name) => vars[name];
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "credentials_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeConfig(dir: string, data: unknown): Promise<string> {
  const path = join(dir, "config.json");
  await Deno.writeTextFile(path, JSON.stringify(data));
  return path;
}

/**
 * Writes `docker-credential-<name>` into `binDir`: a shell script that logs
 * each call as `<action> <stdin>` to `log`, answers `get` from `answers`
 * (server URL → stdout JSON), says "credentials not found" for other servers,
 * and fails with a message on stderr for `broken.example`.
 */
async function writeHelper(
  binDir: string,
  name: string,
  log: string,
  answers: Record<string, string> = {},
): Promise<void> {
  const cases = Object.entries(answers)
    .map(([url, json]) => `    '${url}') printf '%s' '${json}' ;;`)
    .join("\n");
  const script = `#!/bin/sh
input=$(cat)
printf '%s %s\\n' "$1" "$input" >> '${log}'
case "$1" in
get)
  case "$input" in
${cases}
    broken.example) echo "keychain is locked: unlock it" >&2; exit 1 ;;
    *) echo "credentials not found in native keychain"; exit 1 ;;
  esac ;;
store)
  case "$input" in
    *broken.example*) echo "cannot store $input" >&2; exit 1 ;;
  esac ;;
erase)
  case "$input" in
    missing.example) echo "credentials not found in native keychain"; exit 1 ;;
  esac ;;
*) echo "unknown action $1" >&2; exit 2 ;;
esac
`;
  const path = join(binDir, `docker-credential-${name}`);
  await Deno.writeTextFile(path, script, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
}

async function readLog(log: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(log)).split("\n").filter((l) => l !== "");
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

/** An `env` whose PATH finds helpers in `binDir` first. */
function helperEnv(binDir: string): (name: string) => string | undefined {
  return envOf({ PATH: `${binDir}:${Deno.env.get("PATH") ?? ""}` });
}

Deno.test("credentialKey() maps Docker Hub aliases to Docker's key", () => {
  for (const host of ["docker.io", "index.docker.io", "registry-1.docker.io"]) {
    assert.equal(credentialKey(host), "https://index.docker.io/v1/");
  }
  assert.equal(
    credentialKey("https://index.docker.io/v1/"),
    "https://index.docker.io/v1/",
  );
  assert.equal(credentialKey("registry.example:5000"), "registry.example:5000");
  assert.equal(credentialKey("ghcr.io"), "ghcr.io");
  assert.equal(
    credentialKey("https://registry.example:5000/v1/"),
    "registry.example:5000",
  );
  assert.throws(() => credentialKey(""), TypeError);
});

Deno.test("defaultDockerConfigPath() prefers DOCKER_CONFIG, then HOME, then USERPROFILE", () => {
  assert.equal(
    defaultDockerConfigPath(envOf({ DOCKER_CONFIG: "/cfg", HOME: "/home/a" })),
    join("/cfg", "config.json"),
  );
  assert.equal(
    defaultDockerConfigPath(envOf({ HOME: "/home/a", USERPROFILE: "/u" })),
    join("/home/a", ".docker", "config.json"),
  );
  assert.equal(
    defaultDockerConfigPath(envOf({ USERPROFILE: "/u" })),
    join("/u", ".docker", "config.json"),
  );
  assert.throws(
    () => defaultDockerConfigPath(envOf({})),
    /Cannot locate the Docker config: set DOCKER_CONFIG or HOME/,
  );
});

Deno.test("get() decodes base64 auth, username/password fields and identity tokens", async () => {
  await withTempDir(async (dir) => {
    const path = await writeConfig(dir, {
      auths: {
        "basic.example": { auth: b64("ada:pa:ss") },
        "fields.example": { username: "bob", password: "hunter2" },
        "token.example": { auth: b64("carol:"), identitytoken: "refresh-1" },
        "empty.example": {},
      },
    });
    const config = await DockerConfig.load({ path });
    assert.equal(config.path, path);
    assert.deepEqual(await config.get("basic.example"), {
      username: "ada",
      password: "pa:ss",
    });
    assert.deepEqual(await config.get("fields.example"), {
      username: "bob",
      password: "hunter2",
    });
    assert.deepEqual(await config.get("token.example"), {
      username: "carol",
      password: "",
      identityToken: "refresh-1",
    });
    assert.equal(await config.get("empty.example"), undefined);
    assert.equal(await config.get("other.example"), undefined);
  });
});

Deno.test("get() matches the key forms Docker writes", async () => {
  await withTempDir(async (dir) => {
    const path = await writeConfig(dir, {
      auths: {
        "https://registry.example:5000/v1/": { auth: b64("a:1") },
        "https://plain.example": { auth: b64("b:2") },
        "http://insecure.example:8080": { auth: b64("c:3") },
        "https://index.docker.io/v1/": { auth: b64("hub:4") },
      },
    });
    const config = await DockerConfig.load({ path });
    assert.equal(
      (await config.get("registry.example:5000"))?.username,
      "a",
    );
    assert.equal((await config.get("plain.example"))?.username, "b");
    assert.equal((await config.get("insecure.example:8080"))?.username, "c");
    assert.equal(await config.get("registry.example"), undefined);
    for (
      const hub of ["docker.io", "index.docker.io", "registry-1.docker.io"]
    ) {
      assert.deepEqual(await config.get(hub), {
        username: "hub",
        password: "4",
      });
    }
  });
});

Deno.test("get() prefers the exact key over other forms of it", async () => {
  await withTempDir(async (dir) => {
    const path = await writeConfig(dir, {
      auths: {
        "https://ghcr.io": { auth: b64("old:1") },
        "ghcr.io": { auth: b64("new:2") },
      },
    });
    const config = await DockerConfig.load({ path });
    assert.equal((await config.get("ghcr.io"))?.username, "new");
  });
});

Deno.test("load() finds the config through DOCKER_CONFIG and HOME", async () => {
  await withTempDir(async (dir) => {
    const dockerConfig = join(dir, "custom");
    await Deno.mkdir(dockerConfig);
    await writeConfig(dockerConfig, {
      auths: { "a.example": { auth: b64("from-env:x") } },
    });
    const home = join(dir, "home");
    await Deno.mkdir(join(home, ".docker"), { recursive: true });
    await writeConfig(join(home, ".docker"), {
      auths: { "a.example": { auth: b64("from-home:x") } },
    });

    const viaEnv = await DockerConfig.load({
      env: envOf({ DOCKER_CONFIG: dockerConfig, HOME: home }),
    });
    assert.equal(viaEnv.path, join(dockerConfig, "config.json"));
    assert.equal((await viaEnv.get("a.example"))?.username, "from-env");

    const viaHome = await DockerConfig.load({ env: envOf({ HOME: home }) });
    assert.equal(viaHome.path, join(home, ".docker", "config.json"));
    assert.equal((await viaHome.get("a.example"))?.username, "from-home");

    const viaProfile = await DockerConfig.load({
      env: envOf({ USERPROFILE: home }),
    });
    assert.equal((await viaProfile.get("a.example"))?.username, "from-home");

    // An empty path is no path: the default file.
    const empty = await DockerConfig.load({
      path: "",
      env: envOf({ HOME: home }),
    });
    assert.equal(empty.path, join(home, ".docker", "config.json"));
    assert.equal((await empty.get("a.example"))?.username, "from-home");
  });
});

Deno.test("load() treats a missing or empty file as no credentials", async () => {
  await withTempDir(async (dir) => {
    const missing = await DockerConfig.load({
      path: join(dir, "nope", "config.json"),
    });
    assert.equal(await missing.get("ghcr.io"), undefined);
    assert.equal(await missing.erase("ghcr.io"), false);
    await assert.rejects(Deno.stat(join(dir, "nope")), Deno.errors.NotFound);

    const empty = join(dir, "config.json");
    await Deno.writeTextFile(empty, "");
    assert.equal(
      await (await DockerConfig.load({ path: empty })).get("x"),
      undefined,
    );
  });
});

Deno.test("load() refuses a directory, a device and a FIFO before opening them, in one line", async () => {
  await withTempDir(async (dir) => {
    const fifo = join(dir, "fifo");
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(made.code, 0);
    const cases: [string, RegExp][] = [
      [
        dir,
        new RegExp(
          `^Docker config ${dir} is a directory: give the path of the file, such as ${dir}/config\\.json$`,
        ),
      ],
      [
        "/dev/zero",
        /^Docker config \/dev\/zero is a character device: give the path of a Docker config\.json$/,
      ],
      [
        fifo,
        /^Docker config .*\/fifo is a FIFO \(named pipe\): give the path of a Docker config\.json$/,
      ],
    ];
    for (const [path, message] of cases) {
      await assert.rejects(DockerConfig.load({ path }), (e: unknown) => {
        assert.ok(e instanceof ImageError, String(e));
        assert.match(e.message, message);
        return true;
      });
    }
  });
});

Deno.test("load() rejects corrupt JSON without quoting the file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "config.json");
    await Deno.writeTextFile(
      path,
      `{"auths": {"a.example": {"auth": "c2VjcmV0LXBhc3N3b3Jk"}}`,
    );
    const err = await DockerConfig.load({ path }).then(
      () => assert.fail("expected an error"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof SyntaxError);
    assert.match(err.message, /^Docker config .* is not valid JSON: fix/);
    assert.ok(err.message.includes(path));
    assert.ok(!err.message.includes("c2VjcmV0"));
    assert.ok(!err.message.endsWith("."));
  });
});

Deno.test("load() rejects auths that is not an object", async () => {
  await withTempDir(async (dir) => {
    for (const auths of [[], "x", 1]) {
      const path = await writeConfig(dir, { auths });
      await assert.rejects(
        DockerConfig.load({ path }),
        (e: unknown) =>
          e instanceof SyntaxError && e.message.includes(path) &&
          e.message.includes(`"auths" must be an object`),
      );
    }
  });
});

Deno.test("get() rejects an auth that is not base64 of user:password without echoing it", async () => {
  await withTempDir(async (dir) => {
    const path = await writeConfig(dir, {
      auths: {
        "bad64.example": { auth: "%%%topsecret%%%" },
        "nocolon.example": { auth: b64("topsecret") },
      },
    });
    const config = await DockerConfig.load({ path });
    for (const host of ["bad64.example", "nocolon.example"]) {
      await assert.rejects(config.get(host), (e: unknown) => {
        assert.ok(e instanceof ImageError);
        assert.match(
          e.message,
          /has an invalid "auth" for .*: it must be base64/,
        );
        assert.ok(e.message.includes(path));
        assert.ok(!e.message.includes("topsecret"));
        assert.ok(!e.message.includes(b64("topsecret")));
        return true;
      });
    }
  });
});

Deno.test({
  name: "get() asks a credential helper for credentials and identity tokens",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      const log = join(dir, "helper.log");
      await writeHelper(dir, "testhelper", log, {
        "registry.example:5000":
          `{"ServerURL":"registry.example:5000","Username":"helper-user","Secret":"helper-pass"}`,
        "token.example":
          `{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-123"}`,
        "https://index.docker.io/v1/":
          `{"ServerURL":"https://index.docker.io/v1/","Username":"hub","Secret":"hubpass"}`,
      });
      const path = await writeConfig(dir, { credsStore: "testhelper" });
      const config = await DockerConfig.load({ path, env: helperEnv(dir) });
      assert.deepEqual(await config.get("registry.example:5000"), {
        username: "helper-user",
        password: "helper-pass",
      });
      assert.deepEqual(await config.get("token.example"), {
        identityToken: "refresh-123",
      });
      assert.deepEqual(await config.get("docker.io"), {
        username: "hub",
        password: "hubpass",
      });
      assert.equal(await config.get("unknown.example"), undefined);
      assert.deepEqual(await readLog(log), [
        "get registry.example:5000",
        "get token.example",
        "get https://index.docker.io/v1/",
        "get unknown.example",
      ]);
    });
  },
});

Deno.test({
  name: "get() falls back to auths when the helper has no entry",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      const log = join(dir, "helper.log");
      await writeHelper(dir, "testhelper", log);
      const path = await writeConfig(dir, {
        credsStore: "testhelper",
        auths: { "legacy.example": { auth: b64("old:pass") } },
      });
      const config = await DockerConfig.load({ path, env: helperEnv(dir) });
      assert.deepEqual(await config.get("legacy.example"), {
        username: "old",
        password: "pass",
      });
      assert.deepEqual(await readLog(log), ["get legacy.example"]);
    });
  },
});

Deno.test({
  name: "get() reports a failing helper with its stderr",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      await writeHelper(dir, "testhelper", join(dir, "helper.log"));
      const path = await writeConfig(dir, { credsStore: "testhelper" });
      const config = await DockerConfig.load({ path, env: helperEnv(dir) });
      await assert.rejects(
        config.get("broken.example"),
        (e: unknown) =>
          e instanceof ImageError &&
          e.message ===
            "Credential helper docker-credential-testhelper failed to get credentials for broken.example: keychain is locked: unlock it",
      );
    });
  },
});

Deno.test({
  name: "get() says which helper is not installed and where it is configured",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      const bin = join(dir, "bin");
      await Deno.mkdir(bin);
      const path = await writeConfig(dir, {
        credsStore: "nosuchhelper",
        auths: { "a.example": { auth: b64("u:p") } },
      });
      const config = await DockerConfig.load({
        path,
        env: envOf({ PATH: bin }),
      });
      await assert.rejects(
        config.get("a.example"),
        (e: unknown) =>
          e instanceof Error &&
          e.message ===
            `Credential helper docker-credential-nosuchhelper is not installed: install it or remove credsStore/credHelpers from ${path}`,
      );
    });
  },
});

Deno.test({
  name: "get() prefers credHelpers over credsStore over auths",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      const log = join(dir, "helper.log");
      const storeLog = join(dir, "store.log");
      await writeHelper(dir, "testhelper", log, {
        "both.example":
          `{"ServerURL":"both.example","Username":"from-credhelper","Secret":"1"}`,
        "https://index.docker.io/v1/":
          `{"ServerURL":"https://index.docker.io/v1/","Username":"hub-credhelper","Secret":"2"}`,
      });
      await writeHelper(dir, "storehelper", storeLog, {
        "both.example":
          `{"ServerURL":"both.example","Username":"from-store","Secret":"3"}`,
        "store-only.example":
          `{"ServerURL":"store-only.example","Username":"from-store","Secret":"4"}`,
      });
      const path = await writeConfig(dir, {
        credHelpers: {
          "both.example": "testhelper",
          "docker.io": "testhelper",
        },
        credsStore: "storehelper",
        auths: {
          "both.example": { auth: b64("from-auths:5") },
          "store-only.example": { auth: b64("from-auths:6") },
        },
      });
      const config = await DockerConfig.load({ path, env: helperEnv(dir) });
      assert.equal(
        (await config.get("both.example"))?.username,
        "from-credhelper",
      );
      assert.equal(
        (await config.get("store-only.example"))?.username,
        "from-store",
      );
      assert.equal(
        (await config.get("registry-1.docker.io"))?.username,
        "hub-credhelper",
      );
      assert.deepEqual(await readLog(log), [
        "get both.example",
        "get https://index.docker.io/v1/",
      ]);
      assert.deepEqual(await readLog(storeLog), ["get store-only.example"]);
    });
  },
});

Deno.test({
  name: "set() and erase() round-trip through auths, keeping other fields",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = await writeConfig(dir, {
        auths: {
          "keep.example": { auth: b64("k:v") },
          "https://registry.example:5000": { auth: b64("stale:old") },
        },
        HttpHeaders: { "User-Agent": "x" },
        psFormat: "table {{.ID}}",
        proxies: { default: { httpProxy: "http://proxy:3128" } },
      });
      await Deno.chmod(path, 0o644);
      const config = await DockerConfig.load({ path });
      await config.set("registry.example:5000", {
        username: "ada",
        password: "s3:cret",
      });
      await config.set("docker.io", { identityToken: "refresh-9" });

      const written = JSON.parse(await Deno.readTextFile(path));
      assert.deepEqual(written, {
        auths: {
          "keep.example": { auth: b64("k:v") },
          "registry.example:5000": { auth: b64("ada:s3:cret") },
          "https://index.docker.io/v1/": { identitytoken: "refresh-9" },
        },
        HttpHeaders: { "User-Agent": "x" },
        psFormat: "table {{.ID}}",
        proxies: { default: { httpProxy: "http://proxy:3128" } },
      });
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.deepEqual(
        await Array.fromAsync(Deno.readDir(dir), (e) => e.name),
        ["config.json"],
      );

      const reloaded = await DockerConfig.load({ path });
      assert.deepEqual(await reloaded.get("registry.example:5000"), {
        username: "ada",
        password: "s3:cret",
      });
      assert.deepEqual(await config.get("index.docker.io"), {
        identityToken: "refresh-9",
      });

      assert.equal(await config.erase("registry.example:5000"), true);
      assert.equal(await config.erase("registry.example:5000"), false);
      assert.equal(await config.erase("docker.io"), true);
      assert.equal(await config.get("registry.example:5000"), undefined);
      const after = JSON.parse(await Deno.readTextFile(path));
      assert.deepEqual(after.auths, { "keep.example": { auth: b64("k:v") } });
      assert.equal(after.psFormat, "table {{.ID}}");
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    });
  },
});

Deno.test({
  name: "set() creates the config directory with mode 0700",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, ".docker", "config.json");
      const config = await DockerConfig.load({ path });
      await config.set("ghcr.io", { username: "u", password: "p" });
      assert.equal(
        (await Deno.stat(join(dir, ".docker"))).mode! & 0o777,
        0o700,
      );
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
        auths: { "ghcr.io": { auth: b64("u:p") } },
      });
    });
  },
});

Deno.test("set() rejects a credential without a password or token", async () => {
  await withTempDir(async (dir) => {
    const config = await DockerConfig.load({ path: join(dir, "config.json") });
    await assert.rejects(
      config.set("ghcr.io", { username: "u" }),
      TypeError,
    );
    await assert.rejects(
      config.set("ghcr.io", { username: "a:b", password: "p" }),
      TypeError,
    );
  });
});

Deno.test({
  name: "set() and erase() go through the configured helper",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      const log = join(dir, "helper.log");
      await writeHelper(dir, "testhelper", log);
      const path = await writeConfig(dir, {
        credsStore: "testhelper",
        auths: { "ghcr.io": { auth: b64("plain:text"), email: "a@b.c" } },
        detachKeys: "ctrl-e,e",
      });
      const config = await DockerConfig.load({ path, env: helperEnv(dir) });
      await config.set("ghcr.io", { username: "ada", password: "pw" });
      await config.set("docker.io", { identityToken: "refresh-1" });

      // As Docker does: the secret goes to the helper, auths keeps an empty
      // entry (and its non-secret fields).
      assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
        credsStore: "testhelper",
        auths: {
          "ghcr.io": { email: "a@b.c" },
          "https://index.docker.io/v1/": {},
        },
        detachKeys: "ctrl-e,e",
      });

      assert.equal(await config.erase("ghcr.io"), true);
      assert.equal(await config.erase("missing.example"), false);
      assert.deepEqual(await readLog(log), [
        `store {"ServerURL":"ghcr.io","Username":"ada","Secret":"pw"}`,
        `store {"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"refresh-1"}`,
        "erase ghcr.io",
        "erase missing.example",
      ]);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(path)).auths, {
        "https://index.docker.io/v1/": {},
      });
    });
  },
});

Deno.test({
  name: "set() reports a failing helper without echoing the secret",
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      await writeHelper(dir, "testhelper", join(dir, "helper.log"));
      const path = await writeConfig(dir, { credsStore: "testhelper" });
      const config = await DockerConfig.load({ path, env: helperEnv(dir) });
      await assert.rejects(
        config.set("broken.example", {
          username: "ada",
          password: "topsecret",
        }),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.match(
            e.message,
            /^Credential helper docker-credential-testhelper failed to store credentials for broken\.example: cannot store /,
          );
          assert.ok(!e.message.includes("topsecret"));
          return true;
        },
      );
      assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
        credsStore: "testhelper",
      });
    });
  },
});

Deno.test({
  name:
    "load() without read access throws NotCapable, not a broken-config ImageError",
  permissions: { read: false, write: false, run: false, env: false },
  fn: async () => {
    // Whether the file exists cannot even be asked without read access.
    const reading = DockerConfig.load({ path: "/nonexistent/config.json" });
    await assert.rejects(reading, Deno.errors.NotCapable);
  },
});

Deno.test({
  name: "set() without write access throws NotCapable",
  permissions: { read: true, write: false },
  fn: async () => {
    const dir = await Deno.makeTempDir().catch((e) => e);
    assert.ok(dir instanceof Deno.errors.NotCapable, "no write access");
    const config = await DockerConfig.load({
      path: "/nonexistent/.docker/config.json",
    });
    await assert.rejects(
      config.set("ghcr.io", { username: "u", password: "p" }),
      Deno.errors.NotCapable,
    );
  },
});

Deno.test({
  name: "get() without run access to a credential helper throws NotCapable",
  permissions: { read: true, write: true, env: ["PATH"], run: false },
  ignore: IS_WINDOWS,
  fn: async () => {
    await withTempDir(async (dir) => {
      await writeHelper(dir, "testhelper", join(dir, "helper.log"), {});
      const path = await writeConfig(dir, { credsStore: "testhelper" });
      const config = await DockerConfig.load({ path, env: helperEnv(dir) });
      await assert.rejects(
        config.get("registry.example:5000"),
        Deno.errors.NotCapable,
      );
    });
  },
});
