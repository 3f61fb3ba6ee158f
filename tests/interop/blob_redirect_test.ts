/**
 * Registries backed by object storage (GHCR, ECR, Docker Hub) answer a blob
 * download with a redirect to another host. Here the registry's `redirect`
 * storage middleware sends blob GETs to a blob host that records every
 * request and, like object storage with a signed URL, refuses credentials:
 * pull, url, extract --remote, copy and serve must get verified bytes while
 * the registry's Authorization header never reaches that host.
 */
import assert from "node:assert/strict";
import { type CliResult, runCliProcess } from "../_helpers/cli.ts";
import {
  fileDigest,
  writeDockerConfig,
  writeImageInputs,
} from "../_helpers/interop.ts";
import { peerOk } from "../_helpers/peers.ts";
import {
  type RegistryAuth,
  startRegistry,
  type TestRegistry,
} from "../_helpers/registry.ts";
import { collect, listeningAt, reap, spawnServe } from "../_helpers/serve.ts";
import { withTempDir } from "../_helpers/temp.ts";

/** Asserts the blob host served blobs and never saw an Authorization header. */
function assertNoCredentialsReached(reg: TestRegistry, since: number): void {
  const requests = reg.blobHost!.requests.slice(since);
  assert.ok(requests.length > 0, "no blob download was redirected");
  for (const r of requests) {
    assert.equal(
      r.headers.get("authorization"),
      null,
      `${r.method} ${r.path} carried credentials to the blob host`,
    );
  }
}

class Tool {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  run(args: string[]): Promise<CliResult> {
    return runCliProcess(["--plain-http", "-q", ...args], {
      env: { DOCKER_CONFIG: `${this.dir}/docker` },
    });
  }

  async ok(args: string[]): Promise<string> {
    const out = await this.run(args);
    assert.equal(
      out.code,
      0,
      `ironcore-image ${args.join(" ")}:\n${out.stderr}`,
    );
    return out.stdout;
  }
}

async function pushImage(
  tool: Tool,
  reg: TestRegistry,
  ref: string,
): Promise<Awaited<ReturnType<typeof writeImageInputs>>> {
  await writeDockerConfig(
    `${tool.dir}/docker`,
    reg.host,
    reg.username,
    reg.password,
  );
  const inputs = await writeImageInputs(tool.dir);
  const store = `${tool.dir}/source`;
  await tool.ok([
    "--store-path",
    store,
    "build",
    "--tag",
    ref,
    ...inputs.buildArgs,
  ]);
  await tool.ok(["--store-path", store, "push", ref]);
  return inputs;
}

/** Runs `serve` until `fn` is done; `fn` gets the server's base URL. */
async function withServe(
  tool: Tool,
  store: string,
  fn: (base: string) => Promise<void>,
): Promise<void> {
  const child = spawnServe(`${tool.dir}/docker`, [], { store });
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  try {
    await fn(await listeningAt(stderr));
  } finally {
    await reap(child, stdout, stderr);
  }
}

async function digestOfResponse(res: Response): Promise<string> {
  const body = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.status, 200, new TextDecoder().decode(body));
  const hash = await crypto.subtle.digest("SHA-256", body);
  return `sha256:${
    Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0"))
      .join("")
  }`;
}

for (
  const [auth, where] of [
    ["basic", "another-port"],
    ["token", "another-host"],
  ] as [RegistryAuth, "another-port" | "another-host"][]
) {
  Deno.test(`pull, url, extract --remote, copy and serve follow blob redirects to ${where} with ${auth} auth and keep the credentials`, async () => {
    await using reg = await startRegistry({ auth, blobRedirect: where });
    await using plain = await startRegistry();
    await withTempDir(async (dir) => {
      const tool = new Tool(dir);
      const ref = `${reg.host}/redirect/os:1.0`;
      const inputs = await pushImage(tool, reg, ref);
      const kernel = await fileDigest(inputs.files.amd64.kernel!);
      const rootfs = await fileDigest(inputs.files.arm64.rootfs!);
      let seen = reg.blobHost!.requests.length;

      // pull: every blob comes from the blob host, verified on the way in.
      const store = `${dir}/store`;
      await tool.ok(["--store-path", store, "pull", ref]);
      await tool.ok(["--store-path", store, "verify"]);
      assertNoCredentialsReached(reg, seen);
      seen = reg.blobHost!.requests.length;

      // url: the registry's URL and headers; curl follows the redirect and,
      // as a boot loader should, drops the header at the other host.
      const url = JSON.parse(
        await tool.ok([
          "url",
          ref,
          "--layer",
          "kernel",
          "--platform",
          "linux/amd64",
        ]),
      );
      assert.ok(url.url.startsWith(`${reg.url}/v2/`), url.url);
      const curl = await new Deno.Command("curl", {
        args: [
          "-fsSL",
          ...Object.entries(url.headers as Record<string, string[]>)
            .flatMap(([k, vs]) => vs.flatMap((v) => ["-H", `${k}: ${v}`])),
          "-o",
          `${dir}/curl.out`,
          url.url,
        ],
      }).output();
      assert.ok(curl.success, new TextDecoder().decode(curl.stderr));
      assert.equal(await fileDigest(`${dir}/curl.out`), kernel);
      assertNoCredentialsReached(reg, seen);
      seen = reg.blobHost!.requests.length;

      // extract --remote: straight from the registry into a file.
      await tool.ok([
        "--store-path",
        `${dir}/empty`,
        "extract",
        ref,
        "--remote",
        "--layer",
        "rootfs",
        "--platform",
        "linux/arm64",
        "-o",
        `${dir}/rootfs.out`,
      ]);
      assert.equal(await fileDigest(`${dir}/rootfs.out`), rootfs);
      assertNoCredentialsReached(reg, seen);
      seen = reg.blobHost!.requests.length;

      // copy: from the redirecting registry to another one.
      const copy = `${plain.host}/copied/os:1.0`;
      const copied = JSON.parse(
        await tool.ok([
          "--store-path",
          `${dir}/empty`,
          "copy",
          ref,
          copy,
          "--json",
        ]),
      );
      const pulled = JSON.parse(
        await tool.ok(["--store-path", `${dir}/copy`, "pull", copy, "--json"]),
      );
      assert.equal(pulled.descriptor.digest, copied.descriptor.digest);
      assertNoCredentialsReached(reg, seen);
      seen = reg.blobHost!.requests.length;

      // serve: a boot client gets the layer from the server, which fetched
      // it through the redirect.
      await withServe(tool, `${dir}/serve`, async (base) => {
        const res = await fetch(
          `${base}/v1/images/${
            encodeURIComponent(ref)
          }/kernel?platform=linux/amd64`,
        );
        assert.equal(await digestOfResponse(res), kernel);
      });
      assertNoCredentialsReached(reg, seen);
    });
  });
}

Deno.test("the Go tool, crane and oras also follow blob redirects to another host without credentials", async () => {
  await using reg = await startRegistry({
    auth: "basic",
    blobRedirect: "another-host",
  });
  await withTempDir(async (dir) => {
    const tool = new Tool(dir);
    const ref = `${reg.host}/redirect/os:1.0`;
    const inputs = await pushImage(tool, reg, ref);
    const env = { HOME: dir, DOCKER_CONFIG: `${dir}/docker` };
    await peerOk("ironcore-image", [
      "--store-path",
      `${dir}/go`,
      "pull",
      `${ref}-arm64`,
    ], { env });
    await peerOk("crane", [
      "pull",
      "--insecure",
      "--format",
      "oci",
      ref,
      `${dir}/crane`,
    ], { env });
    await peerOk("oras", [
      "pull",
      "--plain-http",
      `${ref}-arm64`,
      "-o",
      `${dir}/oras`,
    ], { env });
    for (const path of Object.values(inputs.files.arm64)) {
      const name = path.slice(path.lastIndexOf("/") + 1);
      assert.equal(
        await fileDigest(`${dir}/oras/${name}`),
        await fileDigest(path),
      );
    }
    assertNoCredentialsReached(reg, 0);
  });
});
