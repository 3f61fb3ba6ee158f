import assert from "node:assert/strict";
import {
  buildImage,
  type BuildImageResult,
} from "../../src/build/build_image.ts";
import { InvalidReferenceError, NotFoundError } from "../../src/errors.ts";
import {
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from "../../src/oci/manifest.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import type { ProgressEvent } from "../../src/progress.ts";
import { Store } from "../../src/store/store.ts";
import { pushImage } from "../../src/transfer/push_image.ts";
import { copyImage } from "../../src/transfer/copy_image.ts";
import { randomBytes, writeFiles } from "../_helpers/fixtures.ts";
import { startRegistry } from "../_helpers/registry.ts";
import { withTempDir } from "../_helpers/temp.ts";

interface Sent {
  method: string;
  url: URL;
}

function recordingClient(): { client: RegistryClient; sent: Sent[] } {
  const sent: Sent[] = [];
  const client = new RegistryClient({
    plainHttp: true,
    // Deno's fetch gets each body as it is, and takes every chunk over
    // before it asks for the next.
    releaseSentChunks: true,
    fetch: (input, init) => {
      sent.push({ method: init?.method ?? "GET", url: new URL(String(input)) });
      return fetch(input, init);
    },
  });
  return { client, sent };
}

/** Blob uploads started (the POSTs that open an upload session). */
function uploadsStarted(sent: Sent[]): number {
  return sent.filter((s) =>
    s.method === "POST" && s.url.pathname.endsWith("/blobs/uploads/")
  ).length;
}

Deno.test("pushImage() against a real registry", async (t) => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const files = await writeFiles(dir, {
      vmlinuz: randomBytes(4096),
      initrd: randomBytes(2048),
      initrd2: randomBytes(2048),
      squashfs: randomBytes(8192),
      cmdline: "console=ttyS0",
    });
    const ref = `${reg.host}/push/os:1.0`;
    const image: BuildImageResult = await buildImage(store, [
      {
        arch: "amd64",
        layers: { kernel: files.vmlinuz, initramfs: files.initrd },
        cmdline: files.cmdline,
      },
      {
        arch: "arm64",
        layers: { kernel: files.vmlinuz, squashfs: files.squashfs },
      },
    ], { tag: ref });
    const repo = { registry: reg.host, repository: "push/os" };

    await t.step(
      "an index goes up with every blob, and each arch manifest is tagged REF-<arch>",
      async () => {
        const { client } = recordingClient();
        const events: ProgressEvent[] = [];
        const result = await pushImage(store, ref, {
          client: client,
          onProgress: (e) => events.push(e),
        });
        // kernel (shared), initramfs, squashfs and two different configs.
        assert.equal(result.uploaded, 5);
        assert.equal(result.skipped, 0);
        assert.equal(result.reference, ref);
        assert.equal(result.descriptor.digest, image.index.digest);
        assert.equal(result.descriptor.mediaType, OCI_INDEX_MEDIA_TYPE);
        assert.deepEqual(result.subTags, [`${ref}-amd64`, `${ref}-arm64`]);
        assert.equal(events.filter((e) => e.phase === "done").length, 5);

        assert.deepEqual((await client.listTags(repo)).toSorted(), [
          "1.0",
          "1.0-amd64",
          "1.0-arm64",
        ]);
        const index = await client.getManifest(repo, "1.0");
        assert.equal(index.descriptor.digest, image.index.digest);
        for (const m of image.manifests) {
          const got = await client.getManifest(repo, `1.0-${m.arch}`);
          assert.equal(got.descriptor.digest, m.descriptor.digest);
          assert.equal(got.descriptor.mediaType, OCI_MANIFEST_MEDIA_TYPE);
        }
      },
    );

    await t.step(
      "blobs the registry already has are not uploaded again",
      async () => {
        const ref2 = `${reg.host}/push/os:2.0`;
        await buildImage(store, [{
          arch: "amd64",
          layers: { kernel: files.vmlinuz, initramfs: files.initrd2 },
          cmdline: files.cmdline,
        }], { tag: ref2 });
        const { client, sent } = recordingClient();
        const events: ProgressEvent[] = [];
        const result = await pushImage(store, ref2, {
          client: client,
          onProgress: (e) => events.push(e),
        });
        assert.equal(result.uploaded, 1, "only the new initramfs");
        assert.equal(result.skipped, 2, "the kernel and the config");
        assert.equal(uploadsStarted(sent), 1);
        assert.equal(events.filter((e) => e.phase === "skip").length, 2);
        const heads = sent.filter((s) =>
          s.method === "HEAD" && s.url.pathname.includes("/blobs/")
        );
        assert.equal(heads.length, 3, "every blob is checked first");
      },
    );

    await t.step(
      "an image the registry already has uploads nothing",
      async () => {
        const { client, sent } = recordingClient();
        const events: ProgressEvent[] = [];
        const result = await pushImage(store, ref, {
          client: client,
          onProgress: (e) => events.push(e),
        });
        assert.equal(result.uploaded, 0);
        // Every blob of the image is one the registry already had.
        assert.equal(result.skipped, 5);
        assert.equal(events.filter((e) => e.phase === "skip").length, 5);
        assert.equal(uploadsStarted(sent), 0);
        assert.equal(
          sent.filter((s) => s.method === "PUT" || s.method === "PATCH").length,
          0,
        );
        assert.deepEqual(result.subTags, [`${ref}-amd64`, `${ref}-arm64`]);
      },
    );

    await t.step(
      "pushSubManifests false leaves out the REF-<arch> tags",
      async () => {
        const other = `${reg.host}/push/other:1`;
        await buildImage(store, [
          {
            arch: "amd64",
            layers: { kernel: files.vmlinuz, initramfs: files.initrd },
            cmdline: files.cmdline,
          },
          {
            arch: "arm64",
            layers: { kernel: files.vmlinuz, squashfs: files.squashfs },
          },
        ], { tag: other });
        const { client } = recordingClient();
        const result = await pushImage(store, other, {
          client: client,
          pushSubManifests: false,
        });
        assert.deepEqual(result.subTags, []);
        assert.deepEqual(
          await client.listTags({
            registry: reg.host,
            repository: "push/other",
          }),
          ["1"],
        );
      },
    );

    await t.step("a single-arch manifest is pushed as itself", async () => {
      const { client } = recordingClient();
      const single = `${reg.host}/push/single:1`;
      const arm = image.manifests.find((m) => m.arch === "arm64")!;
      await store.tag(arm.descriptor.digest, single);
      const result = await pushImage(store, single, { client: client });
      assert.equal(result.descriptor.digest, arm.descriptor.digest);
      assert.equal(result.descriptor.mediaType, OCI_MANIFEST_MEDIA_TYPE);
      assert.deepEqual(result.subTags, []);
      const got = await client.getManifest(
        { registry: reg.host, repository: "push/single" },
        "1",
      );
      assert.equal(got.descriptor.digest, arm.descriptor.digest);
    });

    await t.step(
      "a reference that is not in the store is NotFoundError and sends nothing",
      async () => {
        const { client, sent } = recordingClient();
        await assert.rejects(
          pushImage(store, `${reg.host}/push/missing:1`, { client: client }),
          NotFoundError,
        );
        assert.equal(sent.length, 0);
      },
    );

    await t.step("a reference without a tag is refused", async () => {
      const { client, sent } = recordingClient();
      await assert.rejects(
        pushImage(store, `${reg.host}/push/os@${image.index.digest}`, {
          client: client,
        }),
        InvalidReferenceError,
      );
      assert.equal(sent.length, 0);
    });
  });
});

Deno.test("pushImage() and copyImage() hand their signal to every request, the final manifest PUT included", async () => {
  await using reg = await startRegistry();
  await withTempDir(async (dir) => {
    const store = await Store.open(`${dir}/store`);
    const files = await writeFiles(dir, { vmlinuz: randomBytes(4096) });
    const ref = `${reg.host}/abort/os:1.0`;
    await buildImage(store, [{
      arch: "amd64",
      layers: { kernel: files.vmlinuz },
    }], {
      tag: ref,
    });
    // Aborts the operation when its tag's manifest is being PUT. A request
    // without the operation's signal would get a 500 instead of the abort.
    const interrupting = (controller: AbortController) =>
      new RegistryClient({
        plainHttp: true,
        fetch: (input, init) => {
          const url = new URL(String(input));
          if (
            init?.method === "PUT" && url.pathname.endsWith("/manifests/1.0")
          ) {
            const signal = init.signal;
            if (!signal) {
              return Promise.resolve(new Response(null, { status: 500 }));
            }
            controller.abort(new DOMException("stop", "AbortError"));
            signal.throwIfAborted();
          }
          return fetch(input, init);
        },
      });
    const push = new AbortController();
    await assert.rejects(
      pushImage(store, ref, {
        client: interrupting(push),
        signal: push.signal,
      }),
      { name: "AbortError" },
    );
    const copy = new AbortController();
    await assert.rejects(
      copyImage(
        { store, reference: ref },
        `${reg.host}/abort/copy:1.0`,
        { client: interrupting(copy), signal: copy.signal },
      ),
      { name: "AbortError" },
    );
  });
});
