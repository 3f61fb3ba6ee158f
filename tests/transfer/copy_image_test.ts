import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { DigestMismatchError, NotFoundError } from "../../src/errors.ts";
import { digestOf } from "../../src/oci/digest.ts";
import type { ProgressEvent } from "../../src/progress.ts";
import {
  RegistryClient,
  type RegistryClientOptions,
} from "../../src/registry/client.ts";
import { Store } from "../../src/store/store.ts";
import { copyImage } from "../../src/transfer/copy_image.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry, type TestRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

interface Sent {
  method: string;
  url: URL;
  headers: Headers;
}

function recordingClient(
  options: RegistryClientOptions = {},
  wrap?: (req: Sent, res: Response) => Response,
): { client: RegistryClient; sent: Sent[] } {
  const sent: Sent[] = [];
  const client = new RegistryClient({
    plainHttp: true,
    retryDelay: 10,
    // The recording fetch hands each body to Deno's fetch as it is, which
    // takes every chunk over before it asks for the next.
    releaseSentChunks: true,
    ...options,
    fetch: async (input, init) => {
      const req = {
        method: init?.method ?? "GET",
        url: new URL(String(input)),
        headers: new Headers(init?.headers),
      };
      sent.push(req);
      const res = await fetch(input, init);
      return wrap ? wrap(req, res) : res;
    },
  });
  return { client, sent };
}

/** Blob bytes sent to a registry: upload PUTs with a digest, and PATCHes. */
function blobUploads(sent: Sent[], host: string): Sent[] {
  return sent.filter((s) =>
    s.url.host === host &&
    ((s.method === "PUT" && s.url.searchParams.has("digest")) ||
      s.method === "PATCH")
  );
}

/** Over two hash batches, and not a multiple of any chunk size. */
const KERNEL_SIZE = 5 * 1024 * 1024 + 123;

async function catalog(reg: TestRegistry): Promise<string[]> {
  const res = await fetch(`${reg.url}/v2/_catalog`);
  const body = await res.json();
  return body.repositories ?? [];
}

async function skopeoRaw(ref: string): Promise<Uint8Array> {
  const out = await new Deno.Command("skopeo", {
    args: ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

/** Builds a two-arch image (five distinct blobs) into a fresh store. */
async function twoArchImage(
  dir: string,
  tag: string,
  kernelSize = 4096,
): Promise<{ store: Store; image: BuildImageResult }> {
  const store = await Store.open(`${dir}/store`);
  const files = await writeFiles(dir, {
    vmlinuz: randomBytes(kernelSize),
    initrd: randomBytes(2048),
    squashfs: randomBytes(8192),
    cmdline: "console=ttyS0",
  });
  const image = await buildImage(store, [
    {
      arch: "amd64",
      layers: { kernel: files.vmlinuz, initramfs: files.initrd },
      cmdline: files.cmdline,
    },
    {
      arch: "arm64",
      layers: { kernel: files.vmlinuz, squashfs: files.squashfs },
    },
  ], { tag });
  return { store, image };
}

Deno.test("copyImage() between two registries", async (t) => {
  await using a = await startRegistry();
  await using b = await startRegistry();
  await withTempDir(async (dir) => {
    const srcRef = `${a.host}/os/demo:1.0`;
    const dstRef = `${b.host}/mirror/demo:1.0`;
    const { store, image } = await twoArchImage(dir, srcRef, KERNEL_SIZE);
    await pushImage(store, srcRef, {
      client: new RegistryClient({ plainHttp: true }),
    });
    const dstRepo = { registry: b.host, repository: "mirror/demo" };

    await t.step(
      "carries the index, its arch manifests and every blob with digests intact",
      async () => {
        const { client, sent } = recordingClient();
        const events: ProgressEvent[] = [];
        const result = await copyImage({ reference: srcRef }, {
          reference: dstRef,
        }, { client: client, onProgress: (e) => events.push(e) });
        assert.equal(result.source, srcRef);
        assert.equal(result.destination, dstRef);
        assert.equal(result.descriptor.digest, image.index.digest);
        // kernel (shared), initramfs, squashfs and two configs.
        assert.equal(result.copied, 5);
        assert.equal(result.mounted, 0);
        assert.equal(result.skipped, 0);
        assert.deepEqual(result.subTags, [
          `${dstRef}-amd64`,
          `${dstRef}-arm64`,
        ]);
        assert.equal(blobUploads(sent, b.host).length, 5);
        assert.equal(events.filter((e) => e.phase === "done").length, 5);

        const index = await client.getManifest(dstRepo, "1.0");
        assert.equal(index.descriptor.digest, image.index.digest);
        for (const m of image.manifests) {
          const sub = await client.getManifest(dstRepo, `1.0-${m.arch}`);
          assert.equal(sub.descriptor.digest, m.descriptor.digest);
        }
        const raw = await skopeoRaw(dstRef);
        assert.equal(digestOf(raw), image.index.digest);
        const armRaw = await skopeoRaw(`${dstRef}-arm64`);
        assert.equal(
          digestOf(armRaw),
          image.manifests.find((m) => m.arch === "arm64")!.descriptor.digest,
        );
      },
    );

    await t.step("a second copy skips everything", async () => {
      const { client, sent } = recordingClient();
      const result = await copyImage({ reference: srcRef }, {
        reference: dstRef,
      }, { client: client });
      assert.equal(result.copied, 0);
      assert.equal(result.mounted, 0);
      assert.equal(result.skipped, 5);
      assert.equal(
        sent.filter((s) =>
          s.url.host === b.host && ["PUT", "PATCH", "POST"].includes(s.method)
        ).length,
        0,
      );
    });

    await t.step(
      "blobs the destination has are skipped one by one",
      async () => {
        const { client, sent } = recordingClient();
        const result = await copyImage({ reference: srcRef }, {
          reference: `${b.host}/mirror/demo:2.0`,
          // Same repository, new tag: every blob is there already.
        }, { client: client });
        assert.equal(result.skipped, 5);
        assert.equal(blobUploads(sent, b.host).length, 0);
      },
    );

    await t.step(
      "chunked uploads read the source in ranges and still verify",
      async () => {
        const { client, sent } = recordingClient({
          forceChunked: true,
          chunkSize: 1024 * 1024,
        });
        const result = await copyImage({ reference: srcRef }, {
          reference: `${b.host}/chunked/demo:1.0`,
        }, { client: client, pushSubManifests: false });
        assert.equal(result.copied, 5);
        assert.deepEqual(result.subTags, []);
        const ranged = sent.filter((s) =>
          s.url.host === a.host && s.headers.get("range") !== null
        );
        // Six ranges of the kernel, one of each other blob.
        assert.equal(ranged.length, 10);
        const got = await client.getManifest(
          { registry: b.host, repository: "chunked/demo" },
          "1.0",
        );
        assert.equal(got.descriptor.digest, image.index.digest);
      },
    );

    await t.step(
      "a copy by digest keeps the digest and writes no sub-manifest tags",
      async () => {
        const { client } = recordingClient();
        const arm = image.manifests.find((m) => m.arch === "arm64")!;
        const result = await copyImage(
          { reference: `${a.host}/os/demo@${arm.descriptor.digest}` },
          { reference: `${b.host}/single/demo@${arm.descriptor.digest}` },
          { client: client },
        );
        assert.equal(result.descriptor.digest, arm.descriptor.digest);
        assert.deepEqual(result.subTags, []);
        assert.equal(result.copied, 3);
      },
    );

    await t.step(
      "a missing source is NotFoundError and the destination is unchanged",
      async () => {
        const before = await catalog(b);
        const { client, sent } = recordingClient();
        await assert.rejects(
          copyImage({ reference: `${a.host}/os/demo:nope` }, {
            reference: `${b.host}/other/demo:1.0`,
          }, { client: client }),
          NotFoundError,
        );
        assert.deepEqual(await catalog(b), before);
        assert.equal(sent.filter((s) => s.url.host === b.host).length, 0);
      },
    );

    for (const chunked of [false, true]) {
      await t.step(
        `a blob whose bytes do not match its digest is refused and not stored (${
          chunked ? "chunked" : "one request"
        })`,
        async () => {
          const corrupting = (req: Sent, res: Response): Response => {
            if (
              req.method !== "GET" || req.url.host !== a.host ||
              !req.url.pathname.includes("/blobs/") || !res.body
            ) return res;
            // Flip the first byte of every blob or range the source sends.
            let first = true;
            const body = res.body.pipeThrough(
              new TransformStream<Uint8Array, Uint8Array>({
                transform(chunk, c) {
                  if (first && chunk.byteLength > 0) {
                    chunk = chunk.slice();
                    chunk[0]! ^= 0xff;
                    first = false;
                  }
                  c.enqueue(chunk);
                },
              }),
            );
            return new Response(body, res);
          };
          const { client } = recordingClient(
            chunked ? { forceChunked: true, chunkSize: 1024 * 1024 } : {},
            corrupting,
          );
          const started = Date.now();
          await assert.rejects(
            copyImage({ reference: srcRef }, {
              reference: `${b.host}/corrupt/demo:1.0`,
            }, { client: client }),
            DigestMismatchError,
          );
          assert.ok(Date.now() - started < 5000, "no retry storm");
          const repo = { registry: b.host, repository: "corrupt/demo" };
          const plain = new RegistryClient({ plainHttp: true });
          for (const m of image.manifests) {
            assert.equal(
              await plain.headManifest(repo, m.descriptor.digest),
              undefined,
            );
          }
          assert.equal(await plain.headManifest(repo, "1.0"), undefined);
        },
      );
    }

    await t.step("an aborted signal stops the copy", async () => {
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(
        copyImage({ reference: srcRef }, {
          reference: `${b.host}/aborted/demo:1.0`,
        }, {
          client: new RegistryClient({ plainHttp: true }),
          signal: controller.signal,
        }),
        (e: unknown) => e instanceof DOMException && e.name === "AbortError",
      );
    });
  });
});

Deno.test("copyImage() within one registry mounts blobs instead of uploading them", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const srcRef = `${reg.host}/team-a/os:1.0`;
    const { store, image } = await twoArchImage(dir, srcRef);
    await pushImage(store, srcRef, {
      client: new RegistryClient({ plainHttp: true }),
    });
    const { client, sent } = recordingClient();
    const result = await copyImage({ reference: srcRef }, {
      reference: `${reg.host}/team-b/os:1.0`,
    }, { client: client });
    assert.equal(result.mounted, 5);
    assert.equal(result.copied, 0);
    assert.equal(blobUploads(sent, reg.host).length, 0, "no blob bytes sent");
    const mounts = sent.filter((s) =>
      s.method === "POST" && s.url.searchParams.get("from") === "team-a/os"
    );
    assert.equal(mounts.length, 5);
    const got = await client.getManifest(
      { registry: reg.host, repository: "team-b/os" },
      "1.0-amd64",
    );
    assert.equal(
      got.descriptor.digest,
      image.manifests.find((m) => m.arch === "amd64")!.descriptor.digest,
    );
  });
});

Deno.test("copyImage() authenticates with tokens on both sides", async () => {
  await using a = await startRegistry({ auth: "token" });
  await using b = await startRegistry({ auth: "token", username: "other" });
  await withTempDir(async (dir) => {
    const creds = new Map([
      [a.host, { username: a.username, password: a.password }],
      [b.host, { username: b.username, password: b.password }],
    ]);
    const client = new RegistryClient({
      plainHttp: true,
      credentials: (host) => Promise.resolve(creds.get(host)),
    });
    const srcRef = `${a.host}/os/demo:1.0`;
    const { store, image } = await twoArchImage(dir, srcRef);
    await pushImage(store, srcRef, { client: client });
    const result = await copyImage({ reference: srcRef }, {
      reference: `${b.host}/os/demo:1.0`,
    }, { client: client });
    assert.equal(result.copied, 5);
    assert.ok(b.tokenRequests > 0);
    const got = await client.getManifest(
      { registry: b.host, repository: "os/demo" },
      "1.0",
    );
    assert.equal(got.descriptor.digest, image.index.digest);
  });
});

Deno.test("copyImage() moves images between a store and a registry under new names", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const { store, image } = await twoArchImage(dir, "local/os:1.0");
    const client = new RegistryClient({ plainHttp: true });
    const up = await copyImage({ store, reference: "local/os:1.0" }, {
      reference: `${reg.host}/remote/os:2.0`,
    }, { client: client });
    assert.equal(up.source, "docker.io/local/os:1.0");
    assert.equal(up.copied, 5);
    assert.deepEqual(up.subTags, [
      `${reg.host}/remote/os:2.0-amd64`,
      `${reg.host}/remote/os:2.0-arm64`,
    ]);
    assert.equal(
      (await client.headManifest(
        { registry: reg.host, repository: "remote/os" },
        "2.0",
      ))?.digest,
      image.index.digest,
    );

    const other = await Store.open(`${dir}/other`);
    const down = await copyImage({ reference: `${reg.host}/remote/os:2.0` }, {
      store: other,
      reference: "copied:3.0",
    }, { client: client });
    assert.equal(down.destination, "docker.io/library/copied:3.0");
    assert.equal(down.copied, 5);
    assert.deepEqual(down.subTags, []);
    const resolved = await other.resolve("copied:3.0");
    assert.equal(resolved.descriptor.digest, image.index.digest);

    // Store to store: the blobs are there, only the tag is new.
    const local = await copyImage({ store: other, reference: "copied:3.0" }, {
      store: other,
      reference: "again:1",
    }, { client: client });
    assert.equal(local.skipped, 5);
    assert.equal(
      (await other.resolve("again:1")).descriptor.digest,
      image.index.digest,
    );
  });
});
