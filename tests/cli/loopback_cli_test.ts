import assert from "node:assert/strict";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX_MEDIA_TYPE } from "../../src/oci/manifest.ts";
import { CLI_PATH, type CliResult, runCliProcess } from "../_helpers/cli.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

function assertOk(run: CliResult, what: string): void {
  assert.equal(run.code, 0, `${what} failed:\n${run.stderr}`);
}

/** Fetches a URL `url` printed with exactly the headers it printed. */
async function fetchPrinted(stdout: string): Promise<Uint8Array> {
  const printed = JSON.parse(stdout) as {
    url: string;
    headers: Record<string, string[]>;
  };
  const headers = new Headers();
  for (const [k, values] of Object.entries(printed.headers)) {
    for (const v of values) headers.append(k, v);
  }
  const res = await fetch(printed.url, { headers });
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.status, 200, new TextDecoder().decode(bytes));
  return bytes;
}

Deno.test("the CLI talks plain HTTP to a registry on 127.0.0.1 or localhost without --plain-http", async (t) => {
  await using reg = await startRegistry();
  const port = reg.host.split(":")[1];
  await withTempDir(async (dir) => {
    const files = await writeFiles(dir, {
      vmlinuz: randomBytes(5000),
      initrd: randomBytes(3000),
    });
    const global = (store: string) => [
      "--store-path",
      `${dir}/${store}`,
      "--docker-config-path",
      `${dir}/no-config.json`,
    ];

    for (const host of [reg.host, `localhost:${port}`]) {
      await t.step(`push, pull and url against ${host}`, async () => {
        const ref = `${host}/loop/os:1.0`;
        const store = `store-${host.replace(/\W/g, "-")}`;
        assertOk(
          await runCliProcess([
            ...global(store),
            "build",
            "--tag",
            ref,
            "--config",
            `arch=amd64,kernel=${files.vmlinuz},initramfs=${files.initrd}`,
          ]),
          "build",
        );
        const pushed = await runCliProcess([...global(store), "push", ref]);
        assertOk(pushed, "push");
        const digest = /: (sha256:[0-9a-f]{64})\n$/.exec(pushed.stdout)?.[1];
        assert.ok(digest, pushed.stdout);

        const pulled = await runCliProcess([
          ...global(`pulled-${store}`),
          "pull",
          ref,
        ]);
        assertOk(pulled, "pull");
        assert.equal(pulled.stdout, `Pulled ${ref}: ${digest}\n`);

        // The manifest URL as printed, with the printed headers only.
        const url = await runCliProcess([...global(store), "url", ref]);
        assertOk(url, "url");
        assert.equal(
          JSON.parse(url.stdout).url,
          `http://${host}/v2/loop/os/manifests/${digest}`,
        );
        assert.deepEqual(JSON.parse(url.stdout).headers, {
          Accept: [OCI_INDEX_MEDIA_TYPE],
        });
        assert.equal(digestOf(await fetchPrinted(url.stdout)), digest);

        const layer = await runCliProcess([
          ...global(store),
          "url",
          ref,
          "--layer",
          "kernel",
        ]);
        assertOk(layer, "url --layer");
        assert.deepEqual(
          await fetchPrinted(layer.stdout),
          await Deno.readFile(files.vmlinuz),
        );
      });
    }

    await t.step("copy between loopback names", async () => {
      const copied = await runCliProcess([
        ...global("copy"),
        "copy",
        `${reg.host}/loop/os:1.0`,
        `localhost:${port}/loop/copy:1`,
      ]);
      assertOk(copied, "copy");
      const url = await runCliProcess([
        ...global("copy"),
        "url",
        `${reg.host}/loop/copy:1`,
      ]);
      assertOk(url, "url");
    });

    await t.step(
      "--plain-http=false forces HTTPS and the error names the flag",
      async () => {
        const run = await runCliProcess([
          ...global("store-force"),
          "--plain-http=false",
          "--retries",
          "0",
          "pull",
          `${reg.host}/loop/os:1.0`,
        ]);
        assert.equal(run.code, 1, run.stderr);
        assert.equal(
          run.stderr,
          `Error: Cannot connect to registry ${reg.host} over HTTPS (it does not answer TLS): use --plain-http for a registry without TLS, or DENO_CERT for a private CA\n`,
        );
      },
    );

    await t.step("serve fetches from a loopback registry", async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--quiet",
          CLI_PATH,
          "serve",
          "--listen",
          "127.0.0.1:0",
          ...global("serve"),
          "--platform",
          "linux/amd64",
        ],
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const reader = child.stderr.pipeThrough(new TextDecoderStream())
        .getReader();
      try {
        let log = "";
        let base: string | undefined;
        while (base === undefined) {
          const { done, value } = await reader.read();
          if (done) throw new Error(`serve exited: ${log}`);
          log += value;
          base = /Listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(log)?.[1];
        }
        const ref = encodeURIComponent(`localhost:${port}/loop/os:1.0`);
        const res = await fetch(`${base}/v1/images/${ref}/kernel`);
        const bytes = new Uint8Array(await res.arrayBuffer());
        assert.equal(res.status, 200, new TextDecoder().decode(bytes));
        assert.deepEqual(bytes, await Deno.readFile(files.vmlinuz));
      } finally {
        child.kill("SIGTERM");
        await reader.cancel();
        await child.status;
      }
    });
  });
});

Deno.test("login checks credentials against a loopback registry without --plain-http", async () => {
  await using reg = await startRegistry({ auth: "basic" });
  const port = reg.host.split(":")[1];
  await withTempDir(async (dir) => {
    const run = await runCliProcess([
      "--docker-config-path",
      `${dir}/config.json`,
      "login",
      `localhost:${port}`,
      "-u",
      reg.username,
      "--password-stdin",
    ], { stdin: reg.password });
    assertOk(run, "login");
    assert.equal(run.stdout, `Login succeeded for localhost:${port}\n`);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.ok(config.auths[`localhost:${port}`]);
  });
});
