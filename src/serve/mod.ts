/**
 * Serving IronCore images to machines that boot over the network: a
 * `fetch`-style handler with plain URLs for every layer (for iPXE and UEFI
 * HTTP boot) and a JSON description of each image, streamed from a registry
 * or the local store and verified on the way.
 *
 * @example Answer a health check without a server
 * ```ts
 * import { createBootHandler } from "@ironcore/image/serve";
 * const handler = createBootHandler({});
 * const res = await handler(new Request("http://localhost/healthz"));
 * console.log(res.status, await res.text()); // 200 "ok\n"
 * await handler.close();
 * ```
 *
 * @module
 */

export {
  type AccessLogEntry,
  BOOT_LAYERS,
  type BootBlobJson,
  type BootBodySource,
  type BootHandler,
  type BootHandlerOptions,
  type BootImageJson,
  type BootLayer,
  type BootLayerJson,
  type BootRequestInfo,
  createBootHandler,
} from "./boot_handler.ts";
