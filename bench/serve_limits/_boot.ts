/**
 * The boot handler over a store holding one image whose squashfs layer is
 * the given file; every request is answered as a request for that layer.
 *
 * @module
 */

import { buildImage } from "../../src/build/build_image.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import {
  type BootRequestInfo,
  createBootHandler,
} from "../../src/serve/boot_handler.ts";
import { Store } from "../../src/store/store.ts";

/**
 * Builds the image next to the file and makes the handler.
 *
 * @param path The layer's file.
 * @returns A handler that answers every request with the layer.
 */
export async function layerHandler(
  path: string,
): Promise<(req: Request, info?: BootRequestInfo) => Promise<Response>> {
  const store = await Store.open(`${path}.store-${crypto.randomUUID()}`);
  // Nothing listens on port 9: the image is found in the store.
  const ref = "127.0.0.1:9/bench/os:1";
  await buildImage(store, [{ arch: "amd64", layers: { squashfs: path } }], {
    tag: ref,
  });
  const boot = createBootHandler({
    store,
    client: new RegistryClient({ retries: 0 }),
    platform: { os: "linux", architecture: "amd64" },
  });
  const url = `http://boot/v1/images/${encodeURIComponent(ref)}/squashfs`;
  return (req, info) =>
    boot(new Request(url, { method: req.method, headers: req.headers }), info);
}
