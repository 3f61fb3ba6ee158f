/**
 * A program that uses the package the way its users do: only through its
 * entry points (`@ironcore/image`, `@ironcore/image/oci`,
 * `@ironcore/image/serve`), resolved by an import map. `consumer_test.ts` runs it against a real registry.
 *
 * Usage:
 *   consumer.ts stream REF FILE   resolve REF, stream its amd64 kernel to FILE
 *   consumer.ts abort REF FILE    the same, cancelled in the middle
 *   consumer.ts missing REF       resolve a reference that does not exist
 *
 * @module
 */

import {
  ImageError,
  NotFoundError,
  openLayer,
  type Platform,
  type ProgressEvent,
  RegistryClient,
  resolveImage,
  writeLayerFile,
} from "@ironcore/image";
import { formatPlatform } from "@ironcore/image/oci";
import { type BootImageJson, createBootHandler } from "@ironcore/image/serve";

const [mode, reference, file] = Deno.args;
if (!reference || (mode !== "missing" && !file)) {
  console.error("usage: consumer.ts stream|abort|missing REF [FILE]");
  Deno.exit(2);
}
const platform: Platform = { os: "linux", architecture: "amd64" };
const client = new RegistryClient();

if (mode === "missing") {
  try {
    await resolveImage(client, reference, { platform });
    console.log("resolved: it should not exist");
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    console.log(`caught ${e.name} as ImageError`);
    if (e instanceof NotFoundError) console.log(`missing: ${e.reference}`);
  }
  Deno.exit(0);
}

// One call: the index, the amd64 manifest and its config, digest-checked.
const resolved = await resolveImage(client, reference, { platform });
const kernel = resolved.image.kernel;
if (!kernel) throw new Error(`${reference} has no kernel`);
console.log(`resolved: ${resolved.reference}`);
console.log(`platforms: ${resolved.platforms.map(formatPlatform).join(", ")}`);
console.log(`command line: ${resolved.image.config.commandLine}`);
console.log(`kernel: ${kernel.size} bytes, ${kernel.digest}`);

// The boot server's view of the same image, answered without a server.
const handler = createBootHandler({
  client,
  allow: [reference.split("/")[0]!],
});
const res = await handler(
  new Request(`http://boot.test/v1/images/${encodeURIComponent(reference)}`),
);
const json: BootImageJson = await res.json();
await handler.close();
console.log(`boot JSON: kernel ${json.layers.kernel?.digest}`);

const controller = new AbortController();
const events: ProgressEvent[] = [];
const onProgress = (e: ProgressEvent) => {
  events.push(e);
  // Cancel once some bytes, but not all, have arrived.
  if (mode === "abort" && e.done > 0 && e.done < kernel.size) {
    controller.abort();
  }
};
const signal = controller.signal;
try {
  const layer = await openLayer(client, {
    reference,
    layer: "kernel",
    platform,
  }, { signal, onProgress });
  const written = await writeLayerFile(layer, file!, { signal });
  console.log(`wrote ${written} bytes`);
} catch (e) {
  if (!signal.aborted) throw e;
  const last = events.at(-1)?.done ?? 0;
  console.log(`aborted after ${last} of ${kernel.size} bytes`);
}
const phases = new Set(events.map((e) => e.phase));
console.log(`progress: ${events.length} events, ${[...phases].join(" ")}`);
