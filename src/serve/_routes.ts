/**
 * What a request to the boot handler asks for: the health check, the JSON
 * of an image, or one of its layers, read from the path (under the
 * handler's base path) and the `platform` query, and checked against the
 * allow-list before anything is fetched.
 *
 * @module
 */

import { parsePlatform, type Platform } from "../oci/platform.ts";
import { parseReference, type Reference } from "../oci/reference.ts";
import type { LayerKind } from "../spec/media_types.ts";
import type { AllowList } from "./_allow_list.ts";
import { HttpError, messageOf, type Reply, textReply } from "./_reply.ts";

/** What a boot URL can ask for: a layer kind, or the image's config. */
export type BootLayer = LayerKind | "config";

/** Every {@linkcode BootLayer}, in the order error messages list them. */
export const BOOT_LAYERS: readonly BootLayer[] = [
  "kernel",
  "initramfs",
  "rootfs",
  "disk",
  "squashfs",
  "uki",
  "iso",
  "config",
];

/** Where image URLs start, under the base path. */
export const IMAGES_PREFIX = "/v1/images/";

/** What a request asks for. */
export type Route =
  /** An answer that needs nothing more: the health check, a 405. */
  | { kind: "reply"; reply: Reply }
  /** An image as JSON (without `layer`), or one of its layers. */
  | {
    kind: "image";
    ref: Reference;
    layer: BootLayer | undefined;
    platform: Platform | undefined;
  };

/** How the handler is mounted. */
export interface RouteOptions {
  /** The path prefix, without a trailing slash ("" for none). */
  basePath: string;
  /** The images served; `undefined` for every image. */
  allowList: AllowList | undefined;
}

function decodeSegment(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(
      400,
      `Malformed ${what} "${raw}": it has an invalid percent-encoding`,
    );
  }
}

function notAllowed(method: string, detail: string): Route {
  return {
    kind: "reply",
    reply: textReply(405, `Method ${method} not allowed${detail}`, "GET", {
      allow: "GET, HEAD",
    }),
  };
}

/** The reference and the layer (if any) of a path after the images prefix. */
function imagePath(
  rest: string,
  basePath: string,
): { refText: string; layer: BootLayer | undefined } {
  const segments = rest.split("/");
  let layerText: string | undefined;
  let refText: string;
  if (segments.length === 1) refText = segments[0]!;
  else {
    layerText = segments.pop()!;
    refText = segments.join("/");
    if (layerText === "") layerText = undefined;
  }
  refText = decodeSegment(refText, "reference");
  if (refText === "") {
    throw new HttpError(
      400,
      `Missing image reference: use ${basePath}${IMAGES_PREFIX}{reference}/{layer} with a URL-encoded reference`,
    );
  }
  if (layerText === undefined) return { refText, layer: undefined };
  const name = decodeSegment(layerText, "layer");
  if (!(BOOT_LAYERS as readonly string[]).includes(name)) {
    throw new HttpError(
      400,
      `Unknown layer "${name}": use one of ${
        BOOT_LAYERS.join(", ")
      } (for the image as JSON, URL-encode the reference or end the path with a slash)`,
    );
  }
  return { refText, layer: name as BootLayer };
}

/**
 * Reads what a request asks for.
 *
 * @param req The request.
 * @param url Its parsed URL.
 * @param options Base path and allow-list.
 * @returns The route.
 * @throws {HttpError} 404 outside the handler's paths, 400 for a malformed
 * reference, layer or platform, 403 for an image outside the allow-list.
 */
export function routeOf(
  req: Request,
  url: URL,
  options: RouteOptions,
): Route {
  const { basePath, allowList } = options;
  let path = url.pathname;
  if (basePath !== "") {
    if (path !== basePath && !path.startsWith(`${basePath}/`)) {
      throw new HttpError(404, `Not found: ${path} is outside ${basePath}`);
    }
    path = path.slice(basePath.length) || "/";
  }
  const readOnly = req.method === "GET" || req.method === "HEAD";
  if (path === "/healthz") {
    if (!readOnly) return notAllowed(req.method, "");
    return { kind: "reply", reply: textReply(200, "ok", req.method) };
  }
  if (!path.startsWith(IMAGES_PREFIX)) {
    throw new HttpError(
      404,
      `Not found: ${path}; use ${basePath}${IMAGES_PREFIX}{reference}/{layer}`,
    );
  }
  if (!readOnly) return notAllowed(req.method, ": use GET or HEAD");
  const { refText, layer } = imagePath(
    path.slice(IMAGES_PREFIX.length),
    basePath,
  );
  let ref: Reference;
  try {
    ref = parseReference(refText);
  } catch (e) {
    throw new HttpError(400, messageOf(e));
  }
  // Checked on the reference as parsed, which is what would be fetched:
  // no spelling of the path reaches a registry the list does not name.
  if (allowList && !allowList.allows(ref)) {
    throw new HttpError(403, allowList.refusal(ref));
  }
  const platformText = url.searchParams.get("platform");
  let platform: Platform | undefined;
  if (platformText !== null) {
    try {
      platform = parsePlatform(platformText);
    } catch (e) {
      throw new HttpError(400, messageOf(e));
    }
  }
  return { kind: "image", ref, layer, platform };
}
